"""The beat schedule, from Settings. ``celery -A scheduler.beat beat`` runs it."""

from __future__ import annotations

from switchyard.config import get_settings
from workers.app import app

app.conf.beat_schedule = {
    "refresh-scores": {
        "task": "switchyard.refresh_scores",
        "schedule": get_settings().refresh_interval_s,
        "options": {"queue": "maintenance", "expires": get_settings().refresh_interval_s},
    },
    "expire-jobs": {
        "task": "switchyard.expire_jobs",
        "schedule": 60.0,
        "options": {"queue": "maintenance", "expires": 60.0},
    },
}
