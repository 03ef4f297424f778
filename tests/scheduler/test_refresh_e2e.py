"""The TagRouter learning loop on real processes: a job routes, feedback is recorded, the
real Celery beat schedules refresh_scores on a real worker, and the next job routes on
the new table."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.pipeline.outcome import Feedback, record_feedback
from switchyard.store.scores import current_table, list_versions
from tests.support.openai_server import OpenAIServer
from tests.support.system import System, running_system, short_tmpdir, wait_for, write_catalog

PROMPTS = {"py1": "Write a Python function that reverses a linked list.",
           "py2": "Debug this Python code: for i in range(10) print(i)",
           "py3": "Write a Python class for a bank account with deposit and withdraw."}


@pytest.fixture(scope="module")
def system(openai_server_module: OpenAIServer) -> Iterator[System]:
    data_dir = short_tmpdir()
    catalog = write_catalog(data_dir / "catalog.yaml", providers={
        "echo": {"kind": "openai", "base_url": openai_server_module.url, "max_concurrency": 8}}, models=[
        {"id": "cheap", "provider": "echo", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.2},
        {"id": "strong", "provider": "echo", "usd_per_mtok_input": 5, "usd_per_mtok_output": 15}])
    env = {"SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
           "SWITCHYARD_TAGGER": "offline", "SWITCHYARD_POLICY": "tagrouter", "SWITCHYARD_REFRESH_INTERVAL_S": "1",
           "SWITCHYARD_REFRESH_SETTLE_S": "0"}
    with running_system(env, beat=True) as sys_:
        yield sys_


@pytest.fixture(scope="module")
def openai_server_module() -> Iterator[OpenAIServer]:
    srv = OpenAIServer().start()
    yield srv
    srv.stop()


def auto_lines(model: str = "switchyard/auto") -> list[dict[str, object]]:
    return [{"custom_id": k, "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": model, "messages": [{"role": "user", "content": v}], "max_tokens": 8}}
            for k, v in PROMPTS.items()]


@pytest.mark.slow
def test_feedback_refresh_by_beat_changes_the_next_route(system: System) -> None:
    # 1. No table yet: tagrouter falls back to the cheapest model, and says so.
    job1, outs, errs = system.run_job(auto_lines(), knob=0.0)
    assert errs == [] and {o["switchyard"]["model"] for o in outs} == {"cheap"}
    assert all("no tag score table" in o["switchyard"]["reason"] for o in outs)
    assert all(o["switchyard"]["tags"] for o in outs)  # the offline tagger tagged them
    # 2. The strong model answers the same prompts; a judge prefers it.
    job2, _, _ = system.run_job(auto_lines("strong"))
    for cid in PROMPTS:
        record_feedback(system.settings, Feedback(verdict="loss", source="judge", job_id=job1, custom_id=cid))
        record_feedback(system.settings, Feedback(verdict="win", source="judge", job_id=job2, custom_id=cid))
    # 3. Nobody calls refresh: the real beat process schedules it on the maintenance worker.
    wait_for(lambda: current_table(system.settings) is not None, 60, "a promoted score version")
    versions = list_versions(system.settings)
    assert versions[0]["status"] == "promoted" and versions[0]["metrics"]["sources"] == {"judge": 6}
    # 4. The next job routes the same kind of prompt to the model that won on its tags.
    _, outs3, errs3 = system.run_job(auto_lines(), knob=0.0)
    assert errs3 == []
    for o in outs3:
        sy = o["switchyard"]
        assert sy["model"] == "strong" and sy["policy"] == "tagrouter"
        assert "best score on tags" in sy["reason"]
        assert set(sy["details"]["S"]) == {"cheap", "strong"} and sy["details"]["theta"] == 0.0
        assert sy["details"]["S"]["strong"] > sy["details"]["S"]["cheap"]


def test_beat_schedule_comes_from_settings(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("from scheduler.beat import app; e = app.conf.beat_schedule['refresh-scores']; "
            "print(e['task'], e['schedule'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "SWITCHYARD_REFRESH_INTERVAL_S": "42"}).stdout
    assert out.split() == ["switchyard.refresh_scores", "42.0"]
