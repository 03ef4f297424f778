"""gpu queue: tag and route one shard in a single batch, then enqueue its dispatches."""

from __future__ import annotations

from celery import Task

from switchyard.config import get_settings
from switchyard.pipeline.tag_and_route import route_interactive as route_chat
from switchyard.pipeline.tag_and_route import route_shard
from workers import runtime
from workers.app import app
from workers.submit import enqueue_dispatch, enqueue_dispatches, enqueue_finalize, enqueue_plan


@app.task(name="switchyard.tag_and_route", bind=True, acks_late=True, max_retries=None)
def tag_and_route(self: Task, job_id: str, shard: int) -> int:
    settings = get_settings()
    result = route_shard(settings, job_id, shard, catalog=runtime.catalog())
    enqueue_dispatches(job_id, result.to_dispatch)
    if result.plan:
        enqueue_plan(job_id, -1 - shard)
    if result.finalize:
        enqueue_finalize(job_id)
    return len(result.to_dispatch)


@app.task(name="switchyard.route_interactive", bind=True, acks_late=True, max_retries=None)
def route_interactive(self: Task, job_id: str) -> int:
    # Interactive chat: coalesced with other waiting chat requests into one tagging batch.
    routed = route_chat(get_settings(), job_id, catalog=runtime.catalog())
    for owner_job, request_id, custom_id in routed:
        enqueue_dispatch(owner_job, request_id, custom_id, interactive=True)
    return len(routed)
