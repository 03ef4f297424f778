"""Enqueueing with deterministic task ids, so a repeated enqueue is recognisable as such."""

from __future__ import annotations

from switchyard.config import get_settings
from switchyard.store.db import session_scope
from switchyard.store.models import Job
from workers.app import producer


def enqueue_job(job_id: str) -> int:
    """Enqueue every gpu shard of a stored job. Returns the number of shards."""
    with session_scope(get_settings()) as s:
        job = s.get(Job, job_id)
        n = job.n_shards if job else 0
    for shard in range(n):
        enqueue_shard(job_id, shard)
    return n


def enqueue_shard(job_id: str, shard: int) -> None:
    producer().send_task("switchyard.tag_and_route", args=[job_id, shard], task_id=f"{job_id}:shard:{shard}")


def enqueue_dispatch(job_id: str, request_id: int, custom_id: str, *, interactive: bool = False) -> None:
    producer().send_task("switchyard.dispatch", args=[job_id, request_id], task_id=f"{job_id}:{custom_id}",
                         priority=0 if interactive else 5)


def enqueue_dispatches(job_id: str, items: list[tuple[int, str]]) -> None:
    """A shard's dispatch tasks through one pooled producer connection (not one acquire per task)."""
    app = producer()
    with app.producer_or_acquire() as prod:
        for request_id, custom_id in items:
            app.send_task("switchyard.dispatch", args=[job_id, request_id], task_id=f"{job_id}:{custom_id}",
                          priority=5, producer=prod)


def enqueue_interactive(job_id: str) -> None:
    producer().send_task("switchyard.route_interactive", args=[job_id], task_id=f"{job_id}:interactive",
                         priority=0)


def enqueue_finalize(job_id: str) -> None:
    producer().send_task("switchyard.finalize", args=[job_id], task_id=f"{job_id}:finalize")


def enqueue_judge(job_id: str, request_id: int, custom_id: str) -> None:
    producer().send_task("switchyard.judge", args=[job_id, request_id], task_id=f"{job_id}:{custom_id}:judge")


def enqueue_plan(job_id: str, wave: int) -> None:
    """The budget planner for a job; ``wave`` only makes the task id recognisable."""
    producer().send_task("switchyard.plan_budget", args=[job_id], task_id=f"{job_id}:plan:{wave}")
