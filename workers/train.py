"""maintenance queue: train a learned router (tryage, mf, ...) on a routing dataset."""

from __future__ import annotations

from switchyard.config import get_settings
from switchyard.routing.quality import train_policy
from workers.app import app


@app.task(name="switchyard.train_policy", acks_late=True)
def train(name: str, dataset_dir: str) -> str:
    # Deterministic (seeded) and writes its artifact atomically: a redelivery just retrains.
    return str(train_policy(name, dataset_dir, get_settings()))
