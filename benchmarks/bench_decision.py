"""Benchmark 2: the routing decision alone, from canonical tags to the chosen model.

    python -m benchmarks.bench_decision [--quick]

A TagRouter table of 2,000 canonical tags x 12 models (counts drawn at random, as a
refresh would leave them), 2,000 requests with 2-6 tags each (Zipf-distributed over the
table, one in ten tags unknown to it), decided in shards of 64 as the gpu worker does.
The table is served the way the worker serves it: promoted in a SQLite store and read
through ``current_table`` (cached per version), and the benchmark counts the SQL
statements issued per batch while deciding (target: none).

Reports, as medians over repeats, µs per prompt for:
- ``decision``: ``TagRouterPolicy.decide_batch`` (scores, eligibility, cost rule, and the
  explained ``RouteDecision`` each request carries);
- ``core``: the vectorised part only (``ScoreTable.aggregate`` + ``cheapest_within``),
  i.e. tags -> chosen model index without building the decision records.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import event

from benchmarks.perf_common import median, parser, write_part

N_TAGS, N_MODELS = 2000, 12


def catalog_yaml(n_models: int = N_MODELS) -> str:
    lines = ["providers:", "  p: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}", "models:"]
    for j in range(n_models):
        price = round(0.05 * 1.6**j, 4)
        lines.append(f"  - {{id: m{j:02d}, provider: p, usd_per_mtok_input: {price}, "
                     f"usd_per_mtok_output: {round(price * 3, 4)}}}")
    return "\n".join(lines) + "\n"


def synthetic_counts(rng: np.random.Generator) -> Any:
    from switchyard.scoring import GLOBAL_TAG, TagCounts

    tags = [GLOBAL_TAG] + [f"tag-{i:04d}" for i in range(N_TAGS)]
    models = [f"m{j:02d}" for j in range(N_MODELS)]
    arr = np.zeros((len(tags), N_MODELS, 5))
    skill = rng.normal(0, 0.5, (len(tags), N_MODELS)) + np.linspace(-0.5, 0.5, N_MODELS)[None, :]
    n = rng.poisson(rng.uniform(2, 60, (len(tags), 1)), (len(tags), N_MODELS)).astype(float)
    p_win = 1 / (1 + np.exp(-skill))
    arr[:, :, 0] = np.round(n * p_win)
    arr[:, :, 2] = n - arr[:, :, 0]
    arr[0] = arr[1:].sum(axis=0)  # the global row counts every outcome
    return TagCounts(tags, models, arr)


def requests(rng: np.random.Generator, n: int) -> list[Any]:
    from switchyard.routing.base import RouteRequest

    weights = 1 / np.arange(1, N_TAGS + 1) ** 0.8
    weights /= weights.sum()
    out = []
    for i in range(n):
        k = int(rng.integers(2, 7))
        tags = [f"tag-{t:04d}" for t in rng.choice(N_TAGS, size=k, replace=False, p=weights)]
        if rng.random() < 0.1:
            tags.append(f"unknown-{i}")
        out.append(RouteRequest(id=str(i), prompt="", input_tokens=int(rng.integers(20, 2000)), tags=tags))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__).parse_args(argv)
    repeats = args.repeats or (2 if args.quick else 7)
    n_prompts, shard = 2000, 64
    from switchyard.catalog import Catalog
    from switchyard.config import Settings
    from switchyard.routing.base import RoutingContext
    from switchyard.routing.baselines import eligibility_matrix, predicted_costs
    from switchyard.routing.tagrouter import TagRouterPolicy
    from switchyard.scoring import cheapest_within
    from switchyard.store.db import get_engine, init_db, session_scope
    from switchyard.store.scores import clear_cache, current_table, promote, write_version

    rng = np.random.default_rng(0)
    catalog = Catalog.from_yaml_text(catalog_yaml())
    reqs = requests(rng, n_prompts)
    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="sy-bench-")))
    init_db(settings)
    with session_scope(settings) as s:
        v = write_version(s, synthetic_counts(rng), parent=None, watermark=0, status="candidate", metrics={},
                          note="benchmark")
        promote(s, v.version)
    clear_cache()
    policy = TagRouterPolicy(source=lambda: current_table(settings))
    ctx = RoutingContext(knob=0.25)
    batches = [reqs[i:i + shard] for i in range(0, len(reqs), shard)]
    policy.decide_batch(batches[0], catalog, ctx)  # warm: build the table once, as the first batch of a worker

    statements: list[str] = []
    event.listen(get_engine(settings), "before_cursor_execute", lambda *a: statements.append(a[2]))

    def run_decisions() -> float:
        t0 = time.perf_counter()
        for b in batches:
            policy.decide_batch(b, catalog, ctx)
        return time.perf_counter() - t0

    table = current_table(settings)
    assert table is not None
    models = catalog.ids()

    def run_core() -> float:
        t0 = time.perf_counter()
        for b in batches:
            s, _ = table.aggregate([r.tags for r in b])  # [B, M]
            elig = eligibility_matrix(b, catalog, models)
            cost = predicted_costs(b, catalog, models)
            cheapest_within(s, cost, elig, 0.25 * table.spread)
        return time.perf_counter() - t0

    dec = [run_decisions() for _ in range(repeats)]
    n_statements = len(statements)  # during the timed decisions only
    core = [run_core() for _ in range(repeats)]
    us = 1e6 / n_prompts
    result = {
        "decision_us_per_prompt": round(median(dec) * us, 2),
        "decision_core_us_per_prompt": round(median(core) * us, 2),
        "decision_runs_us_per_prompt": [round(x * us, 2) for x in dec],
        "decision_core_runs_us_per_prompt": [round(x * us, 2) for x in core],
        "decision_sql_statements_per_batch": n_statements / (len(batches) * repeats),
        "decision_setup": {"tags": N_TAGS, "models": N_MODELS, "prompts": n_prompts, "batch": shard,
                           "repeats": repeats, "mean_tags_per_prompt": float(np.mean([len(r.tags) for r in reqs]))},
    }
    write_part("decision", result)
    return result


if __name__ == "__main__":
    main()
