"""Flower, started against the test broker with basic auth, sees the job's tasks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Api, free_port
from tests.api.test_openai_client import client, line, wait_batch

AUTH = ("ops", "s3cret")


@pytest.fixture
def flower(api: Api) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "SWITCHYARD_DATA_DIR": str(api.system.data_dir),
           "SWITCHYARD_CATALOG_PATH": str(api.system.settings.catalog_path)}
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers.app", "flower", f"--port={port}",
                             "--address=127.0.0.1", f"--basic-auth={AUTH[0]}:{AUTH[1]}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthcheck", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
    time.sleep(2.0)  # let Flower's event consumer attach before the job runs
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def test_flower_shows_the_jobs_tasks_and_refuses_strangers(api: Api, flower: str, tmp_path: Path) -> None:
    c = client(api)
    src = tmp_path / "f.jsonl"
    src.write_text("\n".join(line(f"f{i}", f"flower {i}") for i in range(3)) + "\n")
    b = c.batches.create(input_file_id=c.files.create(file=src.open("rb"), purpose="batch").id,
                         endpoint="/v1/chat/completions", completion_window="24h")
    assert wait_batch(c, b.id).status == "completed"
    assert httpx.get(f"{flower}/api/tasks").status_code == 401
    seen: dict[str, dict[str, object]] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        tasks = httpx.get(f"{flower}/api/tasks", auth=AUTH, params={"limit": 1000}).json()
        seen = {tid: t for tid, t in tasks.items() if tid.startswith(b.id)}
        if len(seen) >= 5 and all(t["state"] == "SUCCESS" for t in seen.values()):
            break
        time.sleep(0.5)
    # Deterministic task ids: one shard, three dispatches and the finalize of this batch.
    assert set(seen) == {f"{b.id}:shard:0", f"{b.id}:f0", f"{b.id}:f1", f"{b.id}:f2", f"{b.id}:finalize"}
    assert {t["name"] for t in seen.values()} == {"switchyard.tag_and_route", "switchyard.dispatch",
                                                  "switchyard.finalize"}
    workers = httpx.get(f"{flower}/api/workers", auth=AUTH, params={"refresh": "1"}).json()
    assert any(name.startswith("dispatch@") for name in workers), json.dumps(list(workers))
