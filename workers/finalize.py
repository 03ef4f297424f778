"""maintenance queue: write a finished job's output and error files, set its end status."""

from __future__ import annotations

from switchyard.config import get_settings
from switchyard.pipeline.finalize import finalize_job
from workers.app import app


@app.task(name="switchyard.finalize", acks_late=True)
def finalize(job_id: str) -> str | None:
    return finalize_job(get_settings(), job_id)
