"""Start and stop a real Switchyard system for a test: Redis (embedded or external),
SQL (SQLite file or a fresh PostgreSQL database) and real Celery worker processes."""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from switchyard.config import Settings, get_settings, reset_settings
from switchyard.store.db import dispose_engines, init_db

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("SWITCHYARD_SHARED_DATA", REPO.parent / "shared" / "data"))


def short_tmpdir(prefix: str = "sy") -> Path:
    # Unix socket paths must stay under ~100 bytes: pytest's tmp_path can be longer.
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


def write_catalog(path: Path, providers: dict[str, Any], models: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"providers": providers, "models": models}))
    return path


@contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one test module, dropped afterwards."""
    import psycopg

    name = f"sy_{uuid.uuid4().hex[:10]}"
    admin = base_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class System:
    settings: Settings
    data_dir: Path
    embedded: Any = None  # switchyard.embedded.Embedded: tests stop, kill and restart its processes

    def run_job(self, lines: list[dict[str, Any] | str], *, timeout_s: float = 300, policy: str | None = None,
                knob: float | None = None, budget_usd: float | None = None, metadata: dict[str, Any] | None = None
                ) -> tuple[str, list[dict[str, Any]], list[dict[str, Any]]]:
        """Submit lines through the real queues, wait, and return (job id, outputs, errors)."""
        from switchyard.cli.run import submit
        from switchyard.pipeline.control import get_job
        from switchyard.pipeline.finalize import iter_lines
        from switchyard.store.models import TERMINAL_JOB

        path = self.data_dir / f"in-{uuid.uuid4().hex[:6]}.jsonl"
        path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
        job_id = submit(self.settings, path, policy=policy, knob=knob, budget_usd=budget_usd, metadata=metadata)
        wait_for(lambda: get_job(self.settings, job_id).status in TERMINAL_JOB, timeout_s, f"job {job_id}")
        outs, errs = [], []
        for is_output, line in iter_lines(self.settings, job_id):
            (outs if is_output else errs).append(line)
        return job_id, outs, errs


def wait_for(cond: Any, timeout_s: float, what: str, every_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(every_s)
    raise TimeoutError(f"{what} not done within {timeout_s}s")


@contextmanager
def running_system(env: dict[str, str], *, gpu: bool = True, dispatch: bool = True,
                   beat: bool = False) -> Iterator[System]:
    """Set SWITCHYARD_* env, start embedded Redis (unless a broker URL is given) and workers."""
    from switchyard.embedded import Embedded

    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    reset_settings()
    settings = get_settings()
    data_dir = Path(settings.data_dir).resolve()
    init_db(settings)
    emb = Embedded(settings)
    try:
        emb.start(gpu=gpu, dispatch=dispatch, beat=beat)
        yield System(settings, data_dir, emb)
    finally:
        emb.stop()
        dispose_engines()
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        reset_settings()

