"""The user's commands, run as subprocesses on the zero-setup default: `switchyard run`
starts embedded Redis and workers, writes both files, and stops everything it started,
Ctrl-C included; `jobs list|show|resume` see and finish the stored job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.openai_server import OpenAIServer, Reply
from tests.support.system import short_tmpdir, wait_for, write_catalog


@pytest.fixture
def env(openai_server: OpenAIServer) -> Iterator[dict[str, str]]:
    data_dir = short_tmpdir()
    catalog = write_catalog(data_dir / "catalog.yaml", providers={
        "echo": {"kind": "openai", "base_url": openai_server.url, "max_concurrency": 4}}, models=[
        {"id": "cheap", "provider": "echo", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.2},
        {"id": "strong", "provider": "echo", "usd_per_mtok_input": 5, "usd_per_mtok_output": 15}])
    yield {**os.environ, "SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
           "SWITCHYARD_TAGGER": "null", "SWITCHYARD_RETRY_BASE_S": "0.2"}
    subprocess.run(["pkill", "-f", str(data_dir)], check=False)  # nothing should be left; be sure


def cli(env: dict[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "switchyard.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=env["SWITCHYARD_DATA_DIR"])


def processes_using(path: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", path], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pgrep" not in line]


def write_input(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_run_writes_results_and_errors_and_stops_what_it_started(env: dict[str, str]) -> None:
    data = Path(env["SWITCHYARD_DATA_DIR"])
    src = write_input(data / "in.jsonl", [json.dumps({"custom_id": "a", "prompt": "hello"}),
                                          json.dumps({"custom_id": "b", "prompt": "world"}),
                                          '{"custom_id": "c", "prompt": ',
                                          json.dumps({"custom_id": "d", "prompt": "again"})])
    r = cli(env, "run", str(src), "--out", "out/results.jsonl", "--errors", "out/errors.jsonl",
            "--policy", "cheapest")
    assert r.returncode == 0, r.stderr
    results = [json.loads(x) for x in (data / "out/results.jsonl").read_text().splitlines()]
    errors = [json.loads(x) for x in (data / "out/errors.jsonl").read_text().splitlines()]
    assert sorted(o["custom_id"] for o in results) == ["a", "b", "d"]
    assert [e["line"] for e in errors] == [3] and errors[0]["error"]["code"] == "invalid_json"
    assert "out/results.jsonl" in r.stderr and "out/errors.jsonl" in r.stderr  # says where they are
    assert processes_using(str(data)) == []  # embedded Redis and workers are gone
    listing = cli(env, "jobs", "list").stdout.split()
    job_id = listing[0]
    assert listing[1] == "completed"
    shown = json.loads(cli(env, "jobs", "show", job_id).stdout)
    assert shown["request_counts"] == {"total": 4, "completed": 3, "failed": 1}
    assert shown["states"] == {"invalid": 1, "succeeded": 3} and shown["id"] == job_id


@pytest.mark.slow
def test_ctrl_c_stops_everything_and_resume_finishes_without_redoing(env: dict[str, str],
                                                                     openai_server: OpenAIServer) -> None:
    data = Path(env["SWITCHYARD_DATA_DIR"])
    for i in range(6):  # slow answers, so the job is mid-flight when Ctrl-C arrives
        openai_server.script(f"slow {i}", [Reply(200, delay_s=1.5)])
    src = write_input(data / "in.jsonl", [json.dumps({"custom_id": f"s{i}", "prompt": f"slow {i}"})
                                          for i in range(6)])
    proc = subprocess.Popen([sys.executable, "-m", "switchyard.cli", "run", str(src), "--policy", "cheapest"],
                            env=env, cwd=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: len(openai_server.calls) >= 1, 120, "the first provider call")
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert proc.returncode != 0
    assert processes_using(str(data)) == [], err  # Ctrl-C stopped Redis and every worker
    job_id = cli(env, "jobs", "list").stdout.split()[0]
    calls_before = len(openai_server.calls)
    r = cli(env, "jobs", "resume", job_id, "--out", "resumed.jsonl", "--errors", "resumed-errors.jsonl")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in (data / "resumed.jsonl").read_text().splitlines()]
    assert sorted(o["custom_id"] for o in lines) == [f"s{i}" for i in range(6)]
    # Requests whose result was stored before Ctrl-C were not sent again.
    sent = [c.prompt for c in openai_server.calls]
    assert len(sent) - calls_before < 6 and all(sent.count(f"slow {i}") <= 2 for i in range(6))
