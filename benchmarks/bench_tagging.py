"""Benchmark 1: batched tagging + routing against one prompt at a time (offline tagger, tagrouter).

    python -m benchmarks.bench_tagging [--quick] [--n 2000]

Prompts: ``--n`` (default 2,000) drawn evenly from the four routing datasets. For each
batch size b in 1, 8, 32, 64, 128 the prompts are grouped exactly as a job's shards are
(``switchyard.jobs.plan_shards``: sorted by length, at most b prompts and at most
``shard_max_tokens`` summed tokens per batch), and each batch goes through the gpu
worker's code: ``tag_requests`` (the offline MiniLM tagger) then ``TagRouterPolicy.decide_batch``.
The table is fitted on 200 other prompts' real tags with random per-model quality (the
decision's cost does not depend on the values). The embedder's text cache is emptied
before every run, so no run profits from an earlier one. Extra, at b = 64: the same
batches in arrival order (not sorted by length), to show what sorting saves.

Torch runs one thread (``SWITCHYARD_TORCH_THREADS=1`` unless set), as in the embedded gpu
worker, which gets half of this machine's two cores: docs/tagging.md shows two OpenMP
threads on two shared cores run MiniLM 2-3x slower.

Reports prompts/s per batch size (median over repeats) and the same-run ratio b64 / b1.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.perf_common import dataset_prompts, median, parser, write_part

BATCH_SIZES = (1, 8, 32, 64, 128)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--n", type=int, default=None)
    args = p.parse_args(argv)
    n = args.n or (200 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 3)
    os.environ.setdefault("SWITCHYARD_TORCH_THREADS", "1")  # before torch is configured (see the docstring)

    from benchmarks.bench_decision import catalog_yaml
    from switchyard.catalog import Catalog
    from switchyard.config import Settings
    from switchyard.jobs import plan_shards
    from switchyard.pipeline.tag_and_route import tag_requests
    from switchyard.routing.base import RouteRequest, RoutingContext
    from switchyard.routing.tagrouter import TagRouterPolicy
    from switchyard.scoring import TagScorer
    from switchyard.tagging import get_tagger

    settings = Settings(data_dir=Path(tempfile.mkdtemp(prefix="sy-bench-")))  # no vocabulary: tags as written
    catalog = Catalog.from_yaml_text(catalog_yaml())
    tagger = get_tagger("offline")
    embedder = tagger.embedder  # type: ignore[attr-defined]
    prompts = dataset_prompts(n, seed=7)
    train = [t for t, _ in dataset_prompts(200, seed=8)]
    rng = np.random.default_rng(0)
    train_tags = tagger.tag_batch(train)
    table = TagScorer().fit(train_tags, catalog.ids(), rng.uniform(0, 1, (len(train), len(catalog.ids()))))
    policy = TagRouterPolicy(table)
    ctx = RoutingContext(knob=0.25)

    def run(batches: list[list[int]]) -> float:
        embedder._cache.clear()
        t0 = time.perf_counter()
        for batch in batches:
            texts = [prompts[i][0] for i in batch]
            tags, _ = tag_requests(settings, tagger, texts)
            reqs = [RouteRequest(id=str(i), prompt=t, input_tokens=prompts[i][1], tags=tg)
                    for i, t, tg in zip(batch, texts, tags, strict=True)]
            policy.decide_batch(reqs, catalog, ctx)
        return time.perf_counter() - t0

    items = [(i, tok) for i, (_, tok) in enumerate(prompts)]
    plans = {b: plan_shards(items, batch_size=b, max_tokens=settings.shard_max_tokens) for b in BATCH_SIZES}
    unsorted = [list(range(i, min(i + 64, n))) for i in range(0, n, 64)]
    runs: dict[str, list[float]] = {str(b): [] for b in BATCH_SIZES}
    runs["64_unsorted"] = []
    for _ in range(repeats):  # interleaved, so a noisy minute hits every batch size alike
        for b in BATCH_SIZES:
            runs[str(b)].append(n / run(plans[b]))
        runs["64_unsorted"].append(n / run(unsorted))
    rate = {k: round(median(v), 2) for k, v in runs.items()}
    # Same-run ratios: b64 over b1 within each repeat, then the median of those.
    ratios = [r64 / r1 for r64, r1 in zip(runs["64"], runs["1"], strict=True)]
    best = max(BATCH_SIZES, key=lambda b: rate[str(b)])
    result = {
        "tagging_speedup_b64_vs_b1": round(median(ratios), 2),
        "tagging_prompts_per_s": rate,
        "tagging_runs_prompts_per_s": {k: [round(x, 2) for x in v] for k, v in runs.items()},
        "tagging_best_batch": best,
        "tagging_sorted_vs_unsorted_b64": round(median([a / b for a, b in zip(runs["64"], runs["64_unsorted"],
                                                                                strict=True)]), 2),
        "tagging_setup": {"prompts": n, "repeats": repeats, "torch_threads": os.environ["SWITCHYARD_TORCH_THREADS"],
                          "tagger": "offline", "policy": "tagrouter",
                          "table_tags": len(table.tags), "shard_max_tokens": settings.shard_max_tokens,
                          "batches_per_size": {str(b): len(plans[b]) for b in BATCH_SIZES},
                          "mean_input_tokens": float(np.mean([t for _, t in prompts]))},
    }
    write_part("tagging", result)
    return result


if __name__ == "__main__":
    main()
