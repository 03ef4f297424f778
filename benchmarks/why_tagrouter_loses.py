"""Where TagRouter loses to kNN, measured on the train split only (5-fold cross-validation).

    python benchmarks/why_tagrouter_loses.py        # after benchmarks/eval_all.py

For the two-model datasets the routing decision is a ranking of prompts by predicted
gain (strong minus weak quality). Per validation fold this prints, for the tuned
tagrouter and the tuned kNN of ``benchmarks/results/eval.json``:

- the Pearson correlation of the predicted gain with the realised gain;
- the validation APGR;
- for ``routellm_mmlu``, tagrouter with the dataset's own subject label (``category``)
  as the only tag: how far better tags would go.

Writes ``benchmarks/results/why.json``. No test outcome is read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.datasets import load_dataset
from switchyard.evaluation import (
    VocabParams,
    apgr_metrics,
    prepare,
    reference,
    single_models,
    sweep,
    validation_dataset,
)
from switchyard.routing.base import RoutingContext, get_policy
from switchyard.scoring import ScorerConfig

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "routing"
CACHE = REPO / ".switchyard" / "cache"


def _gain_corr(pred: np.ndarray, quality: np.ndarray) -> float:
    return float(np.corrcoef(pred[:, 0] - pred[:, 1], quality[:, 0] - quality[:, 1])[0, 1])


def analyse(name: str, chosen: dict[str, Any], folds: int = 5) -> dict[str, Any]:
    ds = load_dataset(DATA / name)
    tr = chosen["tagrouter"]
    cfg = ScorerConfig(**tr["kwargs"]["config"])
    vocab = VocabParams(**tr["vocab"])
    out: dict[str, list[float]] = {}
    for f in range(folds):
        vds = validation_dataset(ds, fold=f, n_folds=folds)
        data = prepare(vds, cache_dir=CACHE, vocab=vocab)
        ref = reference(single_models(data))
        ctx = RoutingContext()
        tag = get_policy("tagrouter", config=cfg)
        tag.fit(data.train, data.catalog, ctx)  # type: ignore[attr-defined]
        assert tag.table is not None  # type: ignore[attr-defined]
        s_tag = tag.table.aggregate([r.tags for r in data.requests])[0]  # type: ignore[attr-defined]
        knn = get_policy("knn", **chosen["knn"]["kwargs"])
        knn.fit(data.train, data.catalog, ctx)  # type: ignore[attr-defined]
        s_knn = knn.predict(data.requests, ctx)  # type: ignore[attr-defined]
        q = data.test_quality
        out.setdefault("corr_tagrouter", []).append(_gain_corr(s_tag, q))
        out.setdefault("corr_knn", []).append(_gain_corr(s_knn, q))
        out.setdefault("apgr_tagrouter", []).append(apgr_metrics(sweep(tag, data), ref)["apgr"] or 0.0)
        out.setdefault("apgr_knn", []).append(apgr_metrics(sweep(knn, data), ref)["apgr"] or 0.0)
        if any(p.category for p in ds.prompts):
            cats = {p.prompt: [(p.category or "none").replace("_", " ")] for p in ds.prompts}

            def by_category(texts: Sequence[str], cats: dict[str, list[str]] = cats) -> list[list[str]]:
                return [cats[t] for t in texts]

            cdata = prepare(vds, cache_dir=CACHE, tagger="category", tag_fn=by_category,
                            vocab=VocabParams(min_count=1, merge_threshold=1.01, align_threshold=1.01))
            cat = get_policy("tagrouter", config=cfg)
            cat.fit(cdata.train, cdata.catalog, ctx)  # type: ignore[attr-defined]
            s_cat = cat.table.aggregate([r.tags for r in cdata.requests])[0]  # type: ignore[attr-defined]
            out.setdefault("corr_tagrouter_category_tags", []).append(_gain_corr(s_cat, cdata.test_quality))
            out.setdefault("apgr_tagrouter_category_tags", []).append(
                apgr_metrics(sweep(cat, cdata), ref)["apgr"] or 0.0)
    return {k: {"mean": float(np.mean(v)), "folds": [round(x, 4) for x in v]} for k, v in out.items()}


def main() -> None:
    results = json.loads((REPO / "benchmarks" / "results" / "eval.json").read_text())
    why = {}
    for name in ("routellm_gsm8k", "routellm_mmlu"):
        tun = results["datasets"][name]["tuning"]
        chosen = {k: tun["candidates"][v] for k, v in tun["chosen"].items()}
        why[name] = analyse(name, chosen)
        print(name, json.dumps({k: round(v["mean"], 4) for k, v in why[name].items()}))
    (REPO / "benchmarks" / "results" / "why.json").write_text(json.dumps(why, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
