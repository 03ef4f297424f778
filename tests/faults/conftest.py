"""Fault tests: real worker processes, a real Redis and real SQL; a fault is injected and
the invariant is checked afterwards."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from switchyard.pipeline.control import get_job
from switchyard.pipeline.finalize import iter_lines
from tests.support.openai_server import OpenAIServer
from tests.support.system import System, short_tmpdir, write_catalog


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def upstream() -> Iterator[OpenAIServer]:
    srv = OpenAIServer().start()
    yield srv
    srv.stop()


def fault_env(upstream: OpenAIServer, *, provider_kind: str = "openai", max_concurrency: int = 8,
              **extra: str) -> dict[str, str]:
    data_dir = short_tmpdir("syf")
    catalog = write_catalog(data_dir / "catalog.yaml", providers={
        "echo": {"kind": provider_kind, "base_url": upstream.url, "max_concurrency": max_concurrency}}, models=[
        {"id": "cheap", "provider": "echo", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.2}])
    return {"SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
            "SWITCHYARD_TAGGER": "null", "SWITCHYARD_POLICY": "cheapest", "SWITCHYARD_RETRY_BASE_S": "0.2",
            "SWITCHYARD_RETRY_MAX_S": "2", "SWITCHYARD_PROVIDER_TIMEOUT_S": "5", "SWITCHYARD_REDELIVERY_CHECK_S": "1",
            **extra}


def prompt_lines(n: int, tag: str) -> list[dict[str, Any]]:
    return [{"custom_id": f"r{i}", "prompt": f"{tag} {i}"} for i in range(n)]


def submit(system: System, lines: list[dict[str, Any]]) -> str:
    from switchyard.cli.run import submit as cli_submit

    path = system.data_dir / "input.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return cli_submit(system.settings, path, policy=None, knob=None)


def unacked(system: System) -> int:
    import redis

    return int(redis.Redis(unix_socket_path=str(Path(system.data_dir) / "redis.sock")).hlen("unacked"))


def check_invariant(system: System, job_id: str, lines: list[dict[str, Any]], upstream: OpenAIServer,
                    *, max_calls_per_prompt: int = 1) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every line ends in exactly one output or error line; counts agree; no extra provider calls."""
    job = get_job(system.settings, job_id)
    outs = [line for ok, line in iter_lines(system.settings, job_id) if ok]
    errs = [line for ok, line in iter_lines(system.settings, job_id) if not ok]
    ids = Counter([o["custom_id"] for o in outs] + [e["custom_id"] for e in errs])
    assert sorted(ids) == sorted(x["custom_id"] for x in lines) and set(ids.values()) == {1}
    assert job.status in ("completed", "cancelled", "expired", "failed")
    assert (job.n_succeeded, job.n_failed + job.n_invalid, job.n_total) == (len(outs), len(errs), len(lines))
    if job.output_path:
        assert len(Path(job.output_path).read_text().splitlines()) == len(outs)
    calls = Counter(c.prompt for c in upstream.calls if c.status == 200)
    assert max(calls.values(), default=0) <= max_calls_per_prompt, calls.most_common(3)
    return outs, errs


@pytest.fixture(autouse=True)
def _no_env_leak() -> Iterator[None]:
    before = {k: v for k, v in os.environ.items() if k.startswith("SWITCHYARD_")}
    yield
    for k in [k for k in os.environ if k.startswith("SWITCHYARD_")]:
        if k not in before:
            del os.environ[k]
