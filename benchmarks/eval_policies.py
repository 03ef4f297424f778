"""Every routing policy on every routing dataset: tune on train, report on test.

    python benchmarks/eval_policies.py                      # all four datasets
    python benchmarks/eval_policies.py --datasets routellm_gsm8k --max-per-split 0

For each dataset under ``--data`` (default ``../shared/data/routing``):

1. Large datasets are subsampled to a seeded ``--max-per-split`` prompts per split
   (default 4,000; routellm_mmlu has 7k/7k, routerdc_7model 10k/10k) so tagging and
   the sweeps stay tractable on a 2-core CPU. Every policy sees the same subset.
2. **Tuning, on train only.** :func:`switchyard.evaluation.validation_dataset` turns
   each of 5 folds of the train split in turn into a validation "test" split (the real
   test split's outcomes are blanked). By cross-validated APGR we pick GLIDER's alpha
   and key source for ``glider``, ``glider+tagrouter`` and ``glider+tryage``: a
   composite keeps alpha = 0 (its base) unless a setting beats the base on the same
   folds by two standard errors (see :func:`tune_glider`). The Arch-Router route table
   is derived from train outcomes (below).
3. **Test.** :func:`switchyard.evaluation.evaluate` fits every policy on the whole train
   split and sweeps its knob on the test split. One report JSON and one PNG per dataset
   (``policies_<dataset>.json``/``.png``) go to ``--out-dir``, with Tryage's Pareto front
   of predicted quality against cost (``policies_<dataset>_pareto_cost.png``); the
   summary (APGR, CPT, quality at the strong model's cost, tuned settings, timings)
   goes to ``--out-dir/policies.json``.

Arch-Router on a benchmark: routes need a config. We use one dataset-agnostic route
list (:data:`EVAL_ROUTES`: math, code, multiple choice, Chinese, writing, everything
else as ``other``) and fill each route's model list from **train** outcomes: the
model with the best mean quality on the train prompts that the embedding backend sends
to that route (default model: the best on all of train). Arch has no knob: one point.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.datasets import RoutingDataset, load_dataset
from switchyard.evaluation import (
    EvalData,
    apgr_metrics,
    evaluate,
    fit_policy,
    plot_report,
    prepare,
    reference,
    single_models,
    sweep,
    validation_dataset,
)
from switchyard.routing.arch import ArchPolicy, EmbeddingBackend, RouteConfig
from switchyard.routing.base import RouteRequest, RoutingContext, get_policy
from switchyard.routing.glider import GliderPolicy, train_keys

REPO = Path(__file__).resolve().parents[1]
DATASETS = ["routellm_gsm8k", "alpaca_eval_ae2", "routellm_mmlu", "routerdc_7model"]
POLICIES = ["random", "cheapest", "best", "knn", "tagrouter", "arch", "tryage", "mf", "cascade", "glider",
            "glider+tagrouter", "glider+tryage"]
ALPHAS = GliderPolicy.alpha_grid()
KEY_MODES = ["catalog", "train"]
ARCH_THRESHOLD = 0.10  # the embedding backend's threshold chosen on tests/.../arch_cases_dev.yaml
EVAL_ROUTES = [
    {"name": "math", "description": "solving math problems, arithmetic, algebra, word problems and calculations"},
    {"name": "code", "description": "writing or explaining code, programming functions and algorithms"},
    {"name": "multiple_choice", "description": "answering multiple-choice exam questions with lettered options"},
    {"name": "chinese", "description": "questions written in Chinese, Chinese language and culture"},
    {"name": "writing", "description": "open-ended writing, advice, explanations, stories, emails and chat"},
]

log = logging.getLogger("eval_policies")


def subset(ds: RoutingDataset, max_per_split: int, seed: int = 0) -> RoutingDataset:
    """The same dataset restricted to a seeded subset of at most ``max_per_split`` prompts per split."""
    if max_per_split <= 0:
        return ds
    keep: list[int] = []
    rng = np.random.default_rng(seed)
    for split in ("train", "test"):
        idx = ds.split_indices(split)
        keep.extend(np.sort(rng.permutation(idx)[:max_per_split]).tolist() if len(idx) > max_per_split
                    else idx.tolist())
    if len(keep) == len(ds.prompts):
        return ds
    keep = sorted(keep)
    meta = {**ds.meta, "subset": {"max_per_split": max_per_split, "seed": seed, "of": len(ds.prompts)}}
    return RoutingDataset(ds.path, meta, [ds.prompts[i] for i in keep], ds.models, ds.quality[keep],
                          ds.cost[keep], ds.output_tokens[keep])


def derive_routes(data: EvalData) -> RouteConfig:
    """Arch-Router routes for a benchmark: each route's model = the best mean train quality
    on the train prompts the embedding backend assigns to it; default = best on all of train."""
    backend = EmbeddingBackend(threshold=ARCH_THRESHOLD, embed_fn=data.embed_fn)
    base = RouteConfig.model_validate({"routes": EVAL_ROUTES})
    pol = ArchPolicy(base, backend=backend)
    train = data.train
    reqs = [RouteRequest(id=f"t{i}", prompt=p, input_tokens=int(train.input_tokens[i]))
            for i, p in enumerate(train.prompts)]
    decisions = pol.decide_batch(reqs, data.catalog, RoutingContext())
    routes = np.array([d.details.get("route") or "other" for d in decisions])
    with np.errstate(invalid="ignore"):
        means = np.nanmean(train.quality, axis=0)
    default = train.models[int(np.nanargmax(means))]
    out = []
    for r in EVAL_ROUTES:
        rows = routes == r["name"]
        if rows.sum() < 10:  # too few train prompts to pick a model: the route goes to the default
            models = [default]
        else:
            with np.errstate(invalid="ignore"):
                m = np.nanmean(train.quality[rows], axis=0)
            models = [train.models[int(np.nanargmax(m))]]
        out.append({**r, "models": models})
    return RouteConfig.model_validate({"routes": out, "default_model": default})


def tune_glider(ds: RoutingDataset, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """alpha and key source per GLIDER variant by cross-validation on the train split.

    Each of ``--folds`` folds of train is in turn the validation "test" split
    (:func:`validation_dataset`); each base is fitted once per fold. A composite keeps
    alpha = 0 (the base itself) unless some setting beats it on the same folds by at
    least two standard errors of the paired per-fold differences (mean gain >= 2 SE);
    among those, the largest mean gain wins. So a noisy gain on a few validation prompts
    does not buy a composite that hurts. ``glider`` alone has only the key source to pick
    (best mean).
    """
    names = [("glider+tagrouter", "tagrouter"), ("glider+tryage", "tryage"), ("glider", None)]
    grid = {n: [(a, k) for k in KEY_MODES for a in ([1.0] if b is None else ALPHAS)
                if not (a == 0.0 and k != KEY_MODES[0])] for n, b in names}
    scores: dict[str, dict[tuple[float, str], list[float]]] = {n: {c: [] for c in grid[n]} for n, _ in names}
    for fold in range(args.folds):
        vdata = prepare(validation_dataset(ds, fold=fold, n_folds=args.folds, seed=args.seed), tagger=args.tagger,
                        cache_dir=Path(args.cache_dir))
        ref = reference(single_models(vdata))
        keys_train = train_keys(vdata.train)
        for name, base_name in names:
            base = fit_policy(get_policy(base_name), vdata) if base_name else None
            for a, keys in grid[name]:
                g = GliderPolicy(base=base, alpha=a, keys=keys, artifact=Path("/nonexistent"))
                g.train_key_text = dict(keys_train)
                if base is None:
                    g._catalog = vdata.catalog
                    g.set_grid_from_train(vdata.train, vdata.catalog, RoutingContext(embed_fn=vdata.embed_fn))
                v = apgr_metrics(sweep(g, vdata, n_points=args.points), ref)["apgr"]
                scores[name][(a, keys)].append(float(v) if v is not None else float("nan"))
        log.info("  tuning fold %d/%d done", fold + 1, args.folds)
    tuned: dict[str, dict[str, Any]] = {}
    for name, _ in names:
        base_vals = np.array(scores[name].get((0.0, KEY_MODES[0]), []), dtype=np.float64)
        rows: list[dict[str, Any]] = []
        for (a, keys), vals in scores[name].items():
            arr = np.array(vals, dtype=np.float64)
            row: dict[str, Any] = {"alpha": a, "keys": keys, "val_apgr_mean": round(float(np.nanmean(arr)), 6),
                                   "val_apgr": [round(x, 6) for x in vals]}
            if len(base_vals) == len(arr) and a > 0:
                diff = arr - base_vals
                row["gain_mean"] = round(float(diff.mean()), 6)
                row["gain_se"] = round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 6) if len(diff) > 1 else None
            rows.append(row)
        if len(base_vals):
            sig = [r for r in rows if r.get("gain_se") is not None and r["gain_mean"] > 0
                   and r["gain_mean"] >= 2 * r["gain_se"]]
            pick = max(sig, key=lambda r: r["gain_mean"]) if sig else next(r for r in rows if r["alpha"] == 0.0)
        else:
            pick = max(rows, key=lambda r: r["val_apgr_mean"])
        tuned[name] = {"alpha": pick["alpha"], "keys": pick["keys"], "validation": rows}
        log.info("  %s: alpha=%g keys=%s (mean val APGR %.4f)", name, pick["alpha"], pick["keys"],
                 pick["val_apgr_mean"])
    return tuned


def run_dataset(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.perf_counter()
    ds = subset(load_dataset(path), args.max_per_split, args.seed)
    cache = Path(args.cache_dir)
    log.info("%s: %d prompts (%s)", ds.name, len(ds.prompts), ds.meta.get("subset", "full"))
    tuned = tune_glider(ds, args) if not args.skip_tune else {}
    routes = derive_routes(prepare(ds, tagger="none", cache_dir=cache))
    data = prepare(ds, tagger=args.tagger, cache_dir=cache)
    kwargs: dict[str, dict[str, Any]] = {n: {"alpha": v["alpha"], "keys": v["keys"]} for n, v in tuned.items()}
    kwargs["arch"] = {"config": routes, "threshold": ARCH_THRESHOLD}
    timings: dict[str, float] = {}
    report: dict[str, Any] = {}
    for name in args.policies:
        t = time.perf_counter()
        rep, _ = evaluate(data, [name], include_random=False, n_points=args.points,
                          policy_kwargs={name: kwargs.get(name, {})})
        timings[name] = round(time.perf_counter() - t, 1)
        if not report:
            report = rep
        else:
            report["policies"].update(rep["policies"])
        r = rep["policies"][name]
        log.info("  %-18s APGR %s  CPT80 %s  (%.0fs)", name, _f(r["apgr"]), _f(r["cpt80"]), timings[name])
    report["run"] = {"subset": ds.meta.get("subset"), "train_prompts": len(data.train_idx),
                     "test_prompts": len(data.test_idx), "tagger": args.tagger, "points": args.points,
                     "seed": args.seed, "seconds": round(time.perf_counter() - t0, 1), "policy_seconds": timings}
    report["tuning"] = {n: {k: v for k, v in t.items()} for n, t in tuned.items()}
    report["arch_routes"] = routes.model_dump()
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report["pareto_cost"] = pareto(data, out_dir / f"policies_{ds.name}_pareto_cost.png")
    (out_dir / f"policies_{ds.name}.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    plot_report(report, out_dir / f"policies_{ds.name}.png", title=f"{ds.name}: every policy (test split)")
    return report


def pareto(data: EvalData, path: Path) -> dict[str, Any]:
    """Tryage's Pareto front of predicted quality against cost on the test requests."""
    from switchyard.routing.tryage import TryagePolicy, pareto_sweep, plot_pareto

    pol = fit_policy(get_policy("tryage"), data)
    assert isinstance(pol, TryagePolicy)
    rep = pareto_sweep(pol, data.requests, data.catalog, RoutingContext(embed_fn=data.embed_fn), "cost")
    plot_pareto(rep, path, title=f"{data.dataset.name}: Tryage predicted quality vs cost (test prompts)")
    return rep


def _f(x: object) -> str:
    return "-" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def summary(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, rep in reports.items():
        out[name] = {
            "run": rep["run"], "tuning": {k: {"alpha": v["alpha"], "keys": v["keys"]}
                                          for k, v in rep.get("tuning", {}).items()},
            "arch_routes": {r["name"]: r["models"] for r in rep["arch_routes"]["routes"]}
            | {"default": rep["arch_routes"]["default_model"]},
            "policies": {p: {k: v[k] for k in ("apgr", "cpt80", "cpt95", "quality_at_strong_cost")}
                         for p, v in rep["policies"].items()},
        }
    return out


def table(summ: dict[str, Any]) -> str:
    names = list(summ)
    pols = list(dict.fromkeys(p for s in summ.values() for p in s["policies"]))
    lines = ["| policy | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for p in pols:
        cells = [_f(summ[n]["policies"].get(p, {}).get("apgr")) for n in names]
        lines.append(f"| {p} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "routing"))
    ap.add_argument("--datasets", nargs="*", default=DATASETS)
    ap.add_argument("--policies", nargs="*", default=POLICIES)
    ap.add_argument("--max-per-split", type=int, default=4000, help="0 = every prompt")
    ap.add_argument("--points", type=int, default=21)
    ap.add_argument("--tagger", default="offline")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-tune", action="store_true")
    ap.add_argument("--folds", type=int, default=5, help="cross-validation folds of train for tuning GLIDER")
    ap.add_argument("--cache-dir", default=str(REPO / ".switchyard" / "cache"))
    ap.add_argument("--out-dir", default=str(REPO / "benchmarks" / "results"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("switchyard").setLevel(logging.WARNING)
    out_path = Path(args.out_dir) / "policies.json"
    summ: dict[str, Any] = json.loads(out_path.read_text()) if out_path.is_file() else {}
    for name in args.datasets:
        rep = run_dataset(Path(args.data) / name, args)
        summ.update(summary({rep["dataset"]: rep}))
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(summ, indent=1), encoding="utf-8")
    print(table(summ))


if __name__ == "__main__":
    main()
