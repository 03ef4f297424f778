"""dispatch queue: one request -> its provider -> a stored result (transient errors retried)."""

from __future__ import annotations

from functools import lru_cache

from celery import Task

from switchyard.config import get_settings
from switchyard.pipeline.dispatch import Done, dispatch_request
from workers import runtime
from workers.app import app
from workers.limits import RedisLimiter
from workers.submit import enqueue_finalize, enqueue_judge, enqueue_plan


@lru_cache(maxsize=1)
def _limiter() -> RedisLimiter:
    # A slot is held for one provider call, which the timeout bounds: a killed worker's leases
    # lapse soon after, instead of starving the provider for minutes.
    return RedisLimiter(runtime.redis_client(), lease_s=get_settings().provider_timeout_s + 30)


@app.task(name="switchyard.dispatch", bind=True, acks_late=True, max_retries=None)
def dispatch(self: Task, job_id: str, request_id: int) -> str:
    outcome = dispatch_request(get_settings(), request_id, catalog=runtime.catalog(), limiter=_limiter())
    if isinstance(outcome, Done):
        if outcome.judge:
            enqueue_judge(job_id, request_id, f"r{request_id}")
        if outcome.replan:
            enqueue_plan(job_id, request_id)
        if outcome.finalize:
            enqueue_finalize(job_id)
        return outcome.state
    # Same task id on retry: the core already counted the attempt and capped the total.
    raise self.retry(countdown=outcome.countdown, max_retries=None)
