"""Soak: one 20,000-request job through the deployment mode, watched for leaks and stalls.

    python benchmarks/soak.py                          # 20,000 requests, 100 ms provider latency
    python benchmarks/soak.py --n 2000 --out /tmp/s.json

What runs (nothing embedded): the machine's Redis (``--redis``, a spare db number that is
flushed first) and PostgreSQL (a scratch database, dropped afterwards); one gpu worker
and two dispatch workers, each a separate ``switchyard worker`` process, as a deployment
would start them. The provider is the replay provider on ``routerdc_7model`` with
``latency_ms`` injected per call; the job routes every prompt with ``--policy`` (random
by default: all seven models get traffic) after ``--tagger`` (null by default: this
benchmark measures the pipeline, not the tagger).

Recorded every ``--every`` seconds: requests done, queue depth (ready messages per queue
plus unacked) and the RSS of each worker (main process plus its pool children). Written
to ``benchmarks/results/soak.json``: wall time, requests/s, RSS per worker at start
(after warm-up: 5% of the job done), at the end and at peak, and the time series.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SWITCHYARD_SHARED_DATA", REPO.parent / "shared" / "data")) / "routing"
QUEUES = ("interactive", "gpu", "dispatch", "maintenance")


def write_inputs(work: Path, dataset: Path, n: int, latency_ms: int, concurrency: int) -> tuple[Path, Path]:
    from switchyard.datasets import load_dataset

    prompts = [p.prompt for p in load_dataset(dataset).prompts]
    src = work / "soak.jsonl"
    with src.open("w") as fh:
        for i in range(n):
            fh.write(json.dumps({"custom_id": f"s{i}", "prompt": prompts[i % len(prompts)]}) + "\n")
    with (dataset / "models.csv").open(newline="") as fh:
        models = [(row["model"], row["usd_per_mtok_input"], row["usd_per_mtok_output"]) for row in csv.DictReader(fh)]
    catalog = {"providers": {"replay": {"kind": "replay", "max_concurrency": concurrency,
                                        "options": {"dataset": str(dataset), "latency_ms": latency_ms}}},
               "models": [{"id": m.replace("/", "_"), "upstream": m, "provider": "replay",
                           "usd_per_mtok_input": float(i), "usd_per_mtok_output": float(o)} for m, i, o in models]}
    path = work / "catalog.yaml"
    path.write_text(yaml.safe_dump(catalog))
    return src, path


def queue_depth(r: Any) -> dict[str, int]:
    """Ready messages per queue (kombu keeps one list per priority step) and unacked ones."""
    depth = dict.fromkeys(QUEUES, 0)
    for key in r.scan_iter(count=1000):
        name = key.decode(errors="replace")
        base = name.split("\x06\x16")[0]
        if base in depth and r.type(key) == b"list":
            depth[base] += int(r.llen(key))
    depth["unacked"] = int(r.hlen("unacked"))
    return depth


def rss_mb(proc: psutil.Process) -> float:
    try:
        procs = [proc, *proc.children(recursive=True)]
        return round(sum(p.memory_info().rss for p in procs) / 2**20, 1)
    except psutil.NoSuchProcess:
        return float("nan")


def start_workers(env: dict[str, str], work: Path, dispatch_threads: int) -> dict[str, subprocess.Popen[bytes]]:
    exe = [sys.executable, "-m", "switchyard.cli", "worker", "--loglevel", "WARNING"]
    specs = {"gpu": [*exe, "--queues", "interactive,gpu", "--name", "soak-gpu"],
             "dispatch1": [*exe, "--queues", "maintenance,dispatch", "--concurrency", str(dispatch_threads),
                           "--name", "soak-dispatch1"],
             "dispatch2": [*exe, "--queues", "maintenance,dispatch", "--concurrency", str(dispatch_threads),
                           "--name", "soak-dispatch2"]}
    log = (work / "workers.log").open("ab")
    return {name: subprocess.Popen(cmd, env=env, cwd=REPO, stdout=log, stderr=log) for name, cmd in specs.items()}


def wait_ready(n_workers: int, timeout_s: float = 180) -> None:
    """Until every worker answers a control ping (imports done, pool started, consuming)."""
    from workers.app import producer

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(producer().control.ping(timeout=1.0)) >= n_workers:
            return
    raise TimeoutError("workers did not answer a ping")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--latency-ms", type=int, default=100)
    ap.add_argument("--dispatch-threads", type=int, default=16)
    ap.add_argument("--provider-concurrency", type=int, default=64)
    ap.add_argument("--dataset", default="routerdc_7model")
    ap.add_argument("--policy", default="random")
    ap.add_argument("--tagger", default="null")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    ap.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--every", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "soak.json")
    args = ap.parse_args()

    import psycopg
    import redis

    r = redis.Redis.from_url(args.redis)
    r.flushdb()
    work = Path(tempfile.mkdtemp(prefix="sysoak"))
    src, catalog = write_inputs(work, DATA / args.dataset, args.n, args.latency_ms, args.provider_concurrency)
    db = f"sy_soak_{uuid.uuid4().hex[:8]}"
    admin = args.postgres.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    env = {**os.environ, "SWITCHYARD_BROKER_URL": args.redis, "SWITCHYARD_DATABASE_URL": args.postgres.rsplit("/", 1)[0]
           + f"/{db}", "SWITCHYARD_DATA_DIR": str(work), "SWITCHYARD_CATALOG_PATH": str(catalog),
           "SWITCHYARD_TAGGER": args.tagger, "SWITCHYARD_POLICY": args.policy, "TOKENIZERS_PARALLELISM": "false",
           "SWITCHYARD_DISPATCH_CONCURRENCY": str(args.dispatch_threads), "SWITCHYARD_TORCH_THREADS": "1"}
    os.environ.update(env)
    from switchyard.cli.run import submit
    from switchyard.config import get_settings, reset_settings
    from switchyard.pipeline.control import get_job
    from switchyard.store.db import dispose_engines, init_db
    from switchyard.store.models import TERMINAL_JOB

    reset_settings()
    settings = get_settings()
    init_db(settings)
    workers = start_workers(env, work, args.dispatch_threads)
    ps = {name: psutil.Process(p.pid) for name, p in workers.items()}
    series: list[dict[str, Any]] = []
    try:
        wait_ready(len(workers))
        rss_idle = {name: rss_mb(p) for name, p in ps.items()}
        t0 = time.monotonic()
        job_id = submit(settings, src, policy=None, knob=None)
        t_submitted = time.monotonic() - t0
        rss_warm: dict[str, float] | None = None
        while True:
            job = get_job(settings, job_id)
            done = job.n_succeeded + job.n_failed + job.n_invalid
            sample = {"t_s": round(time.monotonic() - t0, 1), "done": done, "queues": queue_depth(r),
                      "rss_mb": {name: rss_mb(p) for name, p in ps.items()}}
            series.append(sample)
            print(json.dumps(sample), flush=True)
            if rss_warm is None and done >= 0.05 * args.n:
                rss_warm = sample["rss_mb"]
            if job.status in TERMINAL_JOB:
                break
            if time.monotonic() - t0 > args.timeout or any(p.poll() is not None for p in workers.values()):
                raise RuntimeError(f"soak stopped: job {job.status}, {done}/{args.n} done, "
                                   f"workers alive: {[n for n, p in workers.items() if p.poll() is None]}")
            time.sleep(args.every)
        wall = time.monotonic() - t0
        rss_end = {name: rss_mb(p) for name, p in ps.items()}
        peak = {name: max(s["rss_mb"][name] for s in series) for name in ps}
        result = {
            "n_requests": args.n, "latency_ms": args.latency_ms, "dataset": args.dataset, "policy": args.policy,
            "tagger": args.tagger, "dispatch_workers": 2, "dispatch_threads": args.dispatch_threads, "gpu_workers": 1,
            "provider_concurrency": args.provider_concurrency, "broker": args.redis, "database": "postgresql",
            "cpu_count": os.cpu_count(), "job_status": job.status, "succeeded": job.n_succeeded,
            "failed": job.n_failed, "invalid": job.n_invalid, "submit_s": round(t_submitted, 1),
            "wall_s": round(wall, 1), "requests_per_s": round(args.n / wall, 1),
            # "last_dispatch": the last sample before the job was terminal (the finalizer, on a
            # dispatch worker's maintenance queue, renders the files after it).
            "rss_mb": {name: {"idle": rss_idle[name], "start": (rss_warm or rss_idle)[name],
                              "last_dispatch": series[-2]["rss_mb"][name] if len(series) > 1 else rss_end[name],
                              "end": rss_end[name], "peak": peak[name]} for name in ps},
            "max_queue_depth": {q: max(s["queues"][q] for s in series) for q in (*QUEUES, "unacked")},
            "series": series,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=1))
    finally:
        for p in workers.values():
            p.terminate()
        for p in workers.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        dispose_engines()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        r.flushdb()


if __name__ == "__main__":
    main()
