"""Beat task: fold new outcomes into a new score table version (see switchyard.pipeline.refresh)."""

from __future__ import annotations

from typing import Any

from switchyard.config import get_settings
from switchyard.pipeline.refresh import refresh_scores as refresh
from workers.app import app


@app.task(name="switchyard.refresh_scores", acks_late=True, ignore_result=True)
def refresh_scores() -> dict[str, Any]:
    # Idempotent and locked in the core: a redelivered or overlapping run folds nothing twice.
    return refresh(get_settings()).to_json()
