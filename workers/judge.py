"""judge queue: one sampled request -> the judge model's verdict -> an outcome row (source=judge)."""

from __future__ import annotations

from celery import Task

from switchyard.config import get_settings
from switchyard.pipeline.judge import JudgeDone, judge_request
from workers import runtime
from workers.app import app


@app.task(name="switchyard.judge", bind=True, acks_late=True, max_retries=None)
def judge(self: Task, job_id: str, request_id: int) -> str:
    out = judge_request(get_settings(), request_id, catalog=runtime.catalog(), attempt=self.request.retries + 1)
    if isinstance(out, JudgeDone):
        return f"{out.status}: {out.reason}" if out.reason else out.status
    # The core caps the attempts; the same task id is kept on retry.
    raise self.retry(countdown=out.countdown, max_retries=None)
