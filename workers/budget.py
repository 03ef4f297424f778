"""maintenance queue: plan a budgeted job's next wave and enqueue its dispatches."""

from __future__ import annotations

from switchyard.config import get_settings
from switchyard.pipeline.budget import plan_job
from workers import runtime
from workers.app import app
from workers.submit import enqueue_dispatch, enqueue_finalize


@app.task(name="switchyard.plan_budget", acks_late=True)
def plan_budget(job_id: str) -> str:
    # Idempotent: a compare-and-set on the job's wave number lets one planner release each wave.
    result = plan_job(get_settings(), job_id, catalog=runtime.catalog())
    for request_id, custom_id in result.to_dispatch:
        enqueue_dispatch(job_id, request_id, custom_id)
    if result.finalize:
        enqueue_finalize(job_id)
    return result.reason
