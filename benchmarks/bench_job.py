"""Benchmarks 4 and 5 (workers): a bulk job at the provider's limit, and the workers' peak memory.

    python -m benchmarks.bench_job [--quick] [--full] [--concurrency 64] [--sizes 1000,10000]

The provider is the local OpenAI-protocol HTTP server of ``tests/support/openai_server.py``
answering every call after a fixed 100 ms. Its catalog entry allows ``C`` calls in flight
(``max_concurrency``, enforced fleet-wide by the Redis limiter) and the dispatch worker runs
``C`` threads, so the ideal wall time is ``N x 0.1 s / C``; the figure is wall / ideal for
N = 10,000 (target <= 1.3). Every N runs on a fresh system (embedded Redis, SQLite, one gpu
and one dispatch worker) so the DB size and Redis memory recorded after it belong to that
job alone. ``--full`` adds N = 50,000 (about 80 s ideal at C = 64, several minutes here).

Peak RSS (the kernel's high-water mark, VmHWM) of each worker process and its pool
children is read at the end of each job. The scaling plot goes to
``docs/figures/perf_job_scaling.png``.
"""

from __future__ import annotations

from typing import Any

from benchmarks.perf_common import FIGURES, parser, peak_rss_mb, write_part

LATENCY_S = 0.1


def job_lines(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"r{i}", "prompt": f"bulk request {i}: say something short"} for i in range(n)]


def one_size(n: int, c: int) -> dict[str, Any]:
    from benchmarks.perf_system import db_size_mb, job_system, redis_memory, run_job, worker_pids
    from tests.support.openai_server import OpenAIServer

    server = OpenAIServer(latency_s=LATENCY_S).start()
    providers = {"upstream": {"kind": "openai", "base_url": server.url, "max_concurrency": c}}
    models = [{"id": "cheap", "provider": "upstream", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.2},
              {"id": "strong", "provider": "upstream", "usd_per_mtok_input": 5, "usd_per_mtok_output": 15}]
    env = {"SWITCHYARD_DISPATCH_CONCURRENCY": str(c), "SWITCHYARD_POLICY": "tagrouter"}
    try:
        with job_system(providers, models, env) as system:
            run_job(system, job_lines(min(n, c)))  # warm: imports, catalog, HTTP connections
            server.peak_in_flight = 0
            run = run_job(system, job_lines(n))
            rss = {name: peak_rss_mb(pid) for name, pid in worker_pids(system).items()}
            ideal = n * LATENCY_S / c
            run.update(ideal_s=round(ideal, 3), wall_over_ideal=round(run["wall_s"] / ideal, 3),
                       provider_peak_in_flight=server.peak_in_flight, db_mb=db_size_mb(system),
                       redis=redis_memory(system), worker_peak_rss_mb=rss)
    finally:
        server.stop()
    return run


def plot(rows: list[dict[str, Any]], c: int) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["n"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ns, [r["wall_s"] for r in rows], "o-", label="measured wall time")
    ax1.plot(ns, [r["ideal_s"] for r in rows], "--", label=f"ideal N x 0.1 s / {c}")
    ax1.plot(ns, [1.3 * r["ideal_s"] for r in rows], ":", label="target 1.3 x ideal")
    ax1.set_xscale("log")
    ax1.set_yscale("log")
    ax1.set_xlabel("requests in the job (N)")
    ax1.set_ylabel("wall time (s)")
    ax1.legend()
    ax1.set_title(f"Job at the provider's limit (100 ms, C = {c})")
    ax2.plot(ns, [r["db_mb"] for r in rows], "o-", label="SQLite DB + WAL (MB)")
    ax2.plot(ns, [r["redis"]["peak_mb"] for r in rows], "s-", label="Redis peak memory (MB)")
    ax2.plot(ns, [max(v["max_process"] for v in r["worker_peak_rss_mb"].values()) for r in rows], "^-",
             label="largest worker peak RSS (MB)")
    ax2.set_xscale("log")
    ax2.set_xlabel("requests in the job (N)")
    ax2.set_ylabel("MB")
    ax2.legend()
    ax2.set_title("Storage and memory after the job")
    fig.tight_layout()
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / "perf_job_scaling.png"
    fig.savefig(path, dpi=110)
    return str(path.relative_to(FIGURES.parents[1]))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--sizes", default=None, help="comma-separated N values")
    args = p.parse_args(argv)
    c = args.concurrency
    if args.sizes:
        sizes = [int(x) for x in args.sizes.split(",")]
    else:
        sizes = [1000, 2000] if args.quick else [1000, 10_000] + ([50_000] if args.full else [])
    rows = [one_size(n, c) for n in sizes]
    headline = next((r for r in rows if r["n"] == 10_000), rows[-1])
    workers = headline["worker_peak_rss_mb"]
    result = {
        "job_wall_over_ideal": headline["wall_over_ideal"],
        "job_headline_n": headline["n"],
        "worker_peak_rss_mb": max(v["max_process"] for v in workers.values()),
        "worker_peak_rss_by_kind_mb": {k: {"max_process": v["max_process"], "tree_sum": v["tree_sum"]}
                                       for k, v in workers.items()},
        "job_scaling": rows,
        "job_plot": plot(rows, c),
        "job_setup": {"concurrency": c, "latency_s": LATENCY_S, "sizes": sizes, "tagger": "null",
                      "policy": "tagrouter (no table: cheapest)", "database": "SQLite (WAL)",
                      "broker": "embedded Redis", "dispatch_threads": c, "gpu_workers": 1},
    }
    write_part("job", result)
    return result


if __name__ == "__main__":
    main()
