"""Benchmark 3: pipeline overhead per request through the real Celery + Redis queues.

    python -m benchmarks.bench_pipeline [--quick] [--n 5000] [--no-profile]

A job of ``--n`` requests (short-form lines, prompts from ``routerdc_7model``) goes through
the whole pipeline on the zero-setup system: intake (validation, bulk INSERT, shards of
64), the ``gpu`` queue (one prefork worker: the ``null`` tagger and ``tagrouter``, which
with no table yet takes its documented fallback), the ``dispatch`` queue (one thread-pool
worker, ``SWITCHYARD_DISPATCH_CONCURRENCY`` threads) calling the ``replay`` provider at zero
latency, the per-request accounting and the finalizer writing results.jsonl. So every
figure is pure pipeline overhead: no model, no network wait.

requests/s = n / wall time from submit to the job's terminal state; median over repeats
(a fresh job each, same system). A last repeat runs under py-spy (worker processes and
their pool children sampled at 50 Hz), and the samples are split by where they fall:
database, Celery/kombu, Redis, provider, core.
"""

from __future__ import annotations

import os
from typing import Any

from benchmarks.perf_common import OUT_DIR, ROUTING, median, parser, write_part

DATASET = "routerdc_7model"


def replay_catalog() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from switchyard.datasets import load_dataset

    ds = load_dataset(ROUTING / DATASET)
    providers = {"replay": {"kind": "replay", "max_concurrency": 10_000,
                            "options": {"dataset": str(ROUTING / DATASET), "latency_ms": 0}}}
    models = [{"id": m.model, "provider": "replay", "usd_per_mtok_input": m.usd_per_mtok_input,
               "usd_per_mtok_output": m.usd_per_mtok_output} for m in ds.models]
    return providers, models


def lines(n: int) -> list[dict[str, Any]]:
    from switchyard.datasets import load_dataset

    ds = load_dataset(ROUTING / DATASET)
    return [{"custom_id": f"r{i}", "prompt": ds.prompts[i % len(ds.prompts)].prompt} for i in range(n)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--no-profile", action="store_true")
    args = p.parse_args(argv)
    n = args.n or (1000 if args.quick else 5000)
    repeats = args.repeats or (1 if args.quick else 3)
    from benchmarks.perf_system import job_system, py_spy, run_job, summarise, worker_pids

    providers, models = replay_catalog()
    env = {"SWITCHYARD_POLICY": "tagrouter",
           "SWITCHYARD_DISPATCH_CONCURRENCY": os.environ.get("SWITCHYARD_DISPATCH_CONCURRENCY", "16")}
    runs: list[dict[str, Any]] = []
    profile: dict[str, Any] = {}
    with job_system(providers, models, env) as system:
        run_job(system, lines(64))  # warm: workers import, load the catalog and the replay dataset
        for _ in range(repeats):
            runs.append(run_job(system, lines(n)))
        if not args.no_profile:
            with py_spy(worker_pids(system), OUT_DIR / "pipeline_profile") as files:
                profiled = run_job(system, lines(n))
            profile = {name: summarise(path) for name, path in files.items()}
            profile["run"] = profiled
    rates = [r["n"] / r["wall_s"] for r in runs]
    result = {
        "pipeline_requests_per_s": round(median(rates), 1),
        "pipeline_runs": runs,
        "pipeline_profile": profile,
        "pipeline_setup": {"requests": n, "repeats": repeats, "tagger": "null", "policy": "tagrouter (no table)",
                           "provider": "replay, 0 ms", "dispatch_threads": int(env["SWITCHYARD_DISPATCH_CONCURRENCY"]),
                           "gpu_workers": 1, "dispatch_workers": 1, "database": "SQLite (WAL)",
                           "broker": "embedded Redis (unix socket)"},
    }
    write_part("pipeline", result)
    return result


if __name__ == "__main__":
    main()
