"""A real Switchyard system for the pipeline benchmarks: embedded Redis, SQLite, Celery workers.

The same machinery as the tests (``tests/support/system.py``): nothing is mocked; the
only stand-ins are at the provider boundary (the replay provider, or the local
OpenAI-protocol server of ``tests/support/openai_server.py``).
"""

from __future__ import annotations

import collections
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.system import System, running_system, short_tmpdir, write_catalog


@contextmanager
def job_system(providers: dict[str, Any], models: list[dict[str, Any]], env: dict[str, str]) -> Iterator[System]:
    data_dir = short_tmpdir("sybench")
    catalog = write_catalog(data_dir / "catalog.yaml", providers=providers, models=models)
    full = {"SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
            "SWITCHYARD_TAGGER": "null", **env}
    try:
        with running_system(full) as system:
            yield system
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def write_lines(system: System, lines: list[dict[str, Any]]) -> Path:
    path = system.data_dir / f"in-{len(lines)}-{time.monotonic_ns()}.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def run_job(system: System, lines: list[dict[str, Any]], *, timeout_s: float = 3600,
            policy: str | None = None) -> dict[str, Any]:
    """Submit through the real queues and time it: intake, last routed request, terminal state."""
    from sqlalchemy import func
    from sqlmodel import select

    from switchyard.cli.run import submit
    from switchyard.pipeline.control import get_job
    from switchyard.store.db import session_scope
    from switchyard.store.models import TERMINAL_JOB, Request

    path = write_lines(system, lines)
    pids = process_pids(system)
    cpu0 = {k: cpu_seconds(v) for k, v in pids.items()}
    own0 = time.process_time()
    t0 = time.perf_counter()
    job_id = submit(system.settings, path, policy=policy, knob=None)
    t_submit = time.perf_counter() - t0
    deadline = time.monotonic() + timeout_s
    while get_job(system.settings, job_id).status not in TERMINAL_JOB:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} not done within {timeout_s}s")
        time.sleep(0.05)
    wall = time.perf_counter() - t0
    cpu = {k: cpu_seconds(v) - cpu0[k] for k, v in pids.items()}
    cpu["producer (this process)"] = time.process_time() - own0
    job = get_job(system.settings, job_id)
    with session_scope(system.settings) as s:
        first, last_routed, last_done = s.exec(select(func.min(Request.created_at), func.max(Request.routed_at),
                                                      func.max(Request.finished_at))
                                               .where(Request.job_id == job_id)).one()
    return {"job_id": job_id, "status": str(job.status), "n": len(lines), "succeeded": job.n_succeeded,
            "failed": job.n_failed, "wall_s": round(wall, 3), "submit_s": round(t_submit, 3),
            "routing_done_s": round((last_routed - first).total_seconds(), 3) if last_routed else None,
            "dispatch_done_s": round((last_done - first).total_seconds(), 3) if last_done else None,
            "cpu_ms_per_request": {k: round(1000 * v / len(lines), 3) for k, v in cpu.items()}}


def worker_pids(system: System) -> dict[str, int]:
    return {name: p.pid for name, p in system.embedded.procs.items()}


def redis_memory(system: System) -> dict[str, float]:
    import redis

    info = redis.Redis(unix_socket_path=str(system.embedded.redis.socket)).info("memory")
    return {"used_mb": round(info["used_memory"] / 2**20, 2), "peak_mb": round(info["used_memory_peak"] / 2**20, 2)}


def db_size_mb(system: System) -> float:
    db = Path(system.settings.data_dir) / "switchyard.db"
    files = [db, db.with_name(db.name + "-wal")]
    return round(sum(f.stat().st_size for f in files if f.exists()) / 2**20, 2)


# --- profiling with py-spy (samples live worker processes, threads and pool children) ---------
@contextmanager
def py_spy(pids: dict[str, int], out_dir: Path, rate: int = 50) -> Iterator[dict[str, Path]]:
    """Record collapsed stacks of each pid (with its subprocesses) while the block runs."""
    exe = shutil.which("py-spy") or str(Path(__import__("sys").executable).with_name("py-spy"))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {name: out_dir / f"{name}.folded" for name in pids}
    procs = [subprocess.Popen([exe, "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
                               "--rate", str(rate), "--nonblocking", "-o", str(files[name])],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, pid in pids.items()]
    try:
        yield files
    finally:
        for p in procs:
            p.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


# Where a sample's time goes: the first matching category, checked in this order over its frames.
CATEGORIES = (
    ("provider call", ("providers/replay.py", "providers/openai.py", "httpx", "httpcore")),
    ("database (sqlalchemy/sqlite)", ("sqlalchemy", "sqlite3", "sqlmodel", "psycopg")),
    ("redis client / limiter", ("redis/", "workers/limits.py")),
    ("celery/kombu messaging", ("kombu", "celery", "billiard", "vine")),
    ("json / serialisation", ("json/",)),
    ("routing + tagging core", ("switchyard/routing", "switchyard/tagging", "switchyard/scoring")),
)


def summarise(folded: Path, top: int = 12) -> dict[str, Any]:
    """Shares of the samples by category (inclusive, first match wins) and the top self frames."""
    if not folded.exists():
        return {"samples": 0, "error": "py-spy wrote no profile (ptrace not permitted?)"}
    cats: collections.Counter[str] = collections.Counter()
    selfs: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():  # a truncated last line (py-spy stopped mid-write)
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        joined = stack
        for name, needles in CATEGORIES:
            if any(nd in joined for nd in needles):
                cats[name] += n
                break
        else:
            cats["other python (task bodies, pools, threads)"] += n
        selfs[frames[-1][:160]] += n
    return {"samples": total,
            "shares": {k: round(v / max(total, 1), 3) for k, v in cats.most_common()},
            "top_self_frames": [[f, round(v / max(total, 1), 3)] for f, v in selfs.most_common(top)]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its (live) children so far."""
    import os

    tick = os.sysconf("SC_CLK_TCK")
    from benchmarks.perf_common import children

    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def process_pids(system: System) -> dict[str, int]:
    """Worker processes plus the embedded redis-server."""
    pids = worker_pids(system)
    if system.embedded.redis.proc is not None:
        pids["redis"] = system.embedded.redis.proc.pid
    return pids
