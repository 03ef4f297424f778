"""Beat task: end jobs whose completion window has passed (OpenAI's ``expired``)."""

from __future__ import annotations

from switchyard.config import get_settings
from switchyard.pipeline.control import expire_overdue
from workers.app import app
from workers.submit import enqueue_finalize


@app.task(name="switchyard.expire_jobs", acks_late=True, ignore_result=True)
def expire_jobs() -> list[str]:
    done = expire_overdue(get_settings())
    for job_id in done:
        enqueue_finalize(job_id)
    return done
