"""TagRouter against kNN and random mixing on every routing dataset: tune on train, report on test.

    python benchmarks/eval_all.py                       # all four datasets, results + figures + docs table
    python benchmarks/eval_all.py --datasets alpaca_eval_ae2 --folds 3

For each dataset under ``--data`` (default ``../shared/data/routing``), on **all** its
prompts (no subsampling):

1. **Tuning, on the train split only.** 5-fold cross-validation
   (:func:`switchyard.evaluation.cross_validate`; the test split is blanked in every
   fold's copy) picks, by mean validation APGR:
   - ``tagrouter``: the prior strength ``k`` and the tag weighting of
     :class:`~switchyard.scoring.ScorerConfig`, and the vocabulary's ``min_count`` /
     alignment threshold (:data:`TAGROUTER_GRID`, 20 candidates);
   - ``knn``: its ``k`` (:data:`KNN_GRID`, 6 candidates, its only knob besides θ), so
     both sides are tuned on the same folds and the comparison is fair.
2. **Test.** :func:`switchyard.evaluation.evaluate` fits the tuned policies on the whole
   train split and sweeps their knob (21 values) on the test split, next to
   ``tagrouter@defaults`` and ``knn@k20`` (untuned), ``random`` mixing, ``best`` and
   ``cheapest``. ``--extra`` adds other registered policies at their defaults.
3. **Online.** :func:`switchyard.evaluation.online_replay` streams the test split through
   the tuned tagrouter, from the imported train split and from empty tables.

Writes ``--out`` (default ``benchmarks/results/eval.json``), one PNG per dataset to
``--figures`` (default ``docs/figures/eval_<dataset>.png``), and regenerates the results
section of ``docs/evaluation.md`` between its ``BEGIN RESULTS`` / ``END RESULTS`` markers.
Embeddings and tags are cached in ``--cache`` (tagging 37k prompts on a 2-core CPU takes
about 40 minutes the first time).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from switchyard.datasets import load_dataset
from switchyard.evaluation import (
    Candidate,
    VocabParams,
    best_candidate,
    bootstrap_apgr,
    cost_to_match,
    cross_validate,
    evaluate,
    online_replay,
    plot_report,
    prepare,
    reference,
    tagger_fingerprint,
)
from switchyard.scoring import ScorerConfig

REPO = Path(__file__).resolve().parents[1]
DATASETS = ["alpaca_eval_ae2", "routellm_gsm8k", "routellm_mmlu", "routerdc_7model"]
VOCABS = {"mc2": VocabParams(min_count=2, merge_threshold=0.85, align_threshold=0.6),
          "mc5": VocabParams(min_count=5, merge_threshold=0.85, align_threshold=0.45)}
# Aggregation "mean" and "sum" on the default vocabulary (16), plus the mean on the coarser
# vocabulary (6): 22 candidates. Every vocabulary carries topic tags (tagging/topics.py).
TAGROUTER_GRID = {
    f"tagrouter_k{k}_{v}_{w}_{a}": Candidate(
        "tagrouter", {"config": ScorerConfig(prior_strength=k, weighting=w, aggregate=a)}, VOCABS[v])
    for v, ks, aggs in (("mc2", (5, 20, 100, 400), ("mean", "sum")), ("mc5", (20, 100, 400), ("mean",)))
    for k in ks for w in ("idf", "log_count") for a in aggs}
KNN_GRID = {f"knn_k{k}": Candidate("knn", {"k": k}) for k in (10, 20, 50, 100, 200, 400)}
BEGIN, END = "<!-- BEGIN RESULTS (benchmarks/eval_all.py) -->", "<!-- END RESULTS -->"

log = logging.getLogger("eval_all")


def _plain(c: Candidate) -> dict[str, Any]:
    kw = {k: (v.to_json() if isinstance(v, ScorerConfig) else v) for k, v in c.kwargs.items()}
    return {"policy": c.policy, "kwargs": kw, "vocab": c.vocab.__dict__}


def run_dataset(path: Path, *, cache: Path, folds: int, extra: list[str], seed: int) -> dict[str, Any]:
    name = path.name
    t0 = time.perf_counter()
    ds = load_dataset(path)
    log.info("%s: cross-validating %d candidates on the train split", name, len(TAGROUTER_GRID) + len(KNN_GRID))
    cv = cross_validate(ds, {**TAGROUTER_GRID, **KNN_GRID}, n_folds=folds, seed=seed, cache_dir=cache,
                        log_fn=lambda m: log.info("%s: %s", name, m))
    best_tr = best_candidate(cv, list(TAGROUTER_GRID))
    best_knn = best_candidate(cv, list(KNN_GRID))
    t_cv = time.perf_counter() - t0
    log.info("%s: chose %s and %s", name, best_tr, best_knn)
    tr = TAGROUTER_GRID[best_tr]
    data = prepare(ds, cache_dir=cache, vocab=tr.vocab, seed=seed)
    variants: dict[str, tuple[str, dict[str, Any]]] = {
        "tagrouter": ("tagrouter", dict(tr.kwargs)),
        "knn": ("knn", dict(KNN_GRID[best_knn].kwargs)),
        "knn@k20": ("knn", {"k": 20}),
        "random": ("random", {}), "best": ("best", {}), "cheapest": ("cheapest", {}),
    }
    report, points = evaluate(data, [], seed=seed, include_random=False, variants=variants)
    if tr.vocab != VOCABS["mc2"] or tr.kwargs["config"] != ScorerConfig():
        dflt = prepare(ds, cache_dir=cache, vocab=VOCABS["mc2"], seed=seed)
        rep_d, _ = evaluate(dflt, [], seed=seed, include_random=False,
                            variants={"tagrouter@defaults": ("tagrouter", {"config": ScorerConfig()})})
        report["policies"]["tagrouter@defaults"] = rep_d["policies"]["tagrouter@defaults"]
    for pol in extra:
        try:
            rep_x, _ = evaluate(data, [pol], seed=seed, include_random=False)
            report["policies"][pol] = rep_x["policies"][pol]
        except Exception as e:  # another policy's failure must not sink the run
            log.warning("%s: policy %s failed: %s", name, pol, e)
    ref = reference(report["models"])
    match = {n: cost_to_match(p, ref.q_strong) for n, p in points.items()}
    online = run_online(data, tr, seed)
    boot = bootstrap_apgr(data, points, pairs=[("tagrouter", "knn"), ("tagrouter", "random")], seed=seed)
    return {
        "bootstrap": boot,
        "report": report,
        "tuning": {"folds": folds, "seed": seed, "results": cv, "chosen": {"tagrouter": best_tr, "knn": best_knn},
                   "candidates": {n: _plain(c) for n, c in {**TAGROUTER_GRID, **KNN_GRID}.items()}},
        "reference": {"weak": ref.weak, "strong": ref.strong, "q_strong": ref.q_strong, "c_strong": ref.c_strong,
                      "q_weak": ref.q_weak, "c_weak": ref.c_weak},
        "cost_to_match_strong": {n: (None if c is None else {"cost_usd": c, "ratio": c / ref.c_strong})
                                 for n, c in match.items()},
        "online": online,
        "sizes": {"train": len(data.train_idx), "test": len(data.test_idx), "models": len(data.models),
                  "vocabulary": len(data.vocabulary) if data.vocabulary is not None else 0,
                  "topic_levels": (data.vocabulary.topics.levels
                                   if data.vocabulary is not None and data.vocabulary.topics else [])},
        "timing_s": {"tuning": round(t_cv, 1), "total": round(time.perf_counter() - t0, 1)},
    }


def run_online(data: Any, tr: Candidate, seed: int) -> dict[str, Any]:
    """The test split as a shuffled stream through the tuned tagrouter, from train and from empty."""
    online = {start: online_replay(data, start=start, refresh_every=max(25, len(data.requests) // 40),
                                   exploration_rate=0.05, seed=seed, config=tr.kwargs["config"], order="shuffle")
              for start in ("train", "empty")}
    for o in online.values():  # keep the curve's main columns
        o["windows"] = [{k: w[k] for k in ("requests", "quality", "cost_usd", "cumulative_quality",
                                            "cumulative_cost_usd", "strong_share", "models_seen")}
                        for w in o["windows"]]
    return online


def rerun_online(results: dict[str, Any], data_root: Path, cache: Path, seed: int) -> None:
    """Recompute only the online replays of saved results (tuned settings from the saved tuning)."""
    for name, res in results["datasets"].items():
        tun = res["tuning"]
        tr = TAGROUTER_GRID[tun["chosen"]["tagrouter"]]
        data = prepare(data_root / name, cache_dir=cache, vocab=tr.vocab, seed=seed)
        res["online"] = run_online(data, tr, seed)
        log.info("%s: online replay redone", name)


# --- the docs table -----------------------------------------------------------------------
def _f(x: Any, spec: str = ".3f") -> str:
    return "–" if x is None else format(x, spec)


ORDER = ["tagrouter", "tagrouter@defaults", "knn", "knn@k20", "random", "best", "cheapest"]


def _others(name: str, test_prompts: int) -> dict[str, dict[str, Any]]:
    """Other policies' summaries from ``benchmarks/eval_policies.py`` (``results/policies.json``),
    only when that run used the same full test split (it subsamples large datasets)."""
    path = REPO / "benchmarks" / "results" / "policies.json"
    try:
        run = json.loads(path.read_text(encoding="utf-8")).get(name, {})
    except (OSError, ValueError):
        return {}
    if run.get("run", {}).get("subset") is not None or run.get("run", {}).get("test_prompts") != test_prompts:
        return {}
    return {k: v for k, v in run.get("policies", {}).items() if k not in ORDER}


def render(results: dict[str, Any], figures_rel: str = "figures") -> str:
    out = [BEGIN, "",
           "_Generated by `python benchmarks/eval_all.py` from `benchmarks/results/eval.json`; do not edit by hand._",
           "", f"Tagger: offline (source fingerprint `{results.get('tagger', {}).get('fingerprint', '?')}`).", "",
           "Test-split APGR (both learned routers tuned on train only):", "",
           "| dataset | tagrouter (tuned) | tagrouter@defaults | knn (tuned k) | knn@k20 | random "
           "| tagrouter − knn, 95% CI² | P(tagrouter > knn)² |",
           "|---|---|---|---|---|---|---|---|"]
    for name, res in results["datasets"].items():
        pol = res["report"]["policies"]
        k = res["tuning"]["candidates"][res["tuning"]["chosen"]["knn"]]["kwargs"]["k"]
        cells = [_f(pol.get(n, {}).get("apgr")) for n in ("tagrouter", "tagrouter@defaults")]
        cells += [f"{_f(pol['knn']['apgr'])} (k = {k})", _f(pol["knn@k20"]["apgr"]), _f(pol["random"]["apgr"])]
        b = res.get("bootstrap", {}).get("tagrouter - knn")
        cells += [f"{b['mean']:+.3f} [{b['lo']:+.3f}, {b['hi']:+.3f}]", f"{b['p_better']:.2f}"] if b else ["–", "–"]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    out += ["", "² Paired bootstrap over the test prompts (1,000 resamples, `evaluation.bootstrap_apgr`): "
            "every sweep point of both routers and the weak/strong references are recomputed on each "
            "resample. \"–\": a run from before topic tags and the bootstrap (see the dataset's section).", ""]
    for name, res in results["datasets"].items():
        rep, ref, tun = res["report"], res["reference"], res["tuning"]
        chosen_tr = tun["candidates"][tun["chosen"]["tagrouter"]]
        out += [f"### {name}", "",
                f"{res['sizes']['train']} train / {res['sizes']['test']} test prompts, "
                f"{res['sizes']['models']} models, "
                f"{res['sizes']['vocabulary']} canonical tags. Weak (cheapest) = `{ref['weak']}` "
                f"(quality {ref['q_weak']:.4f}, ${ref['c_weak']:.4f}); strong (best on test) = `{ref['strong']}` "
                f"(quality {ref['q_strong']:.4f}, ${ref['c_strong']:.4f}); oracle {rep['oracle']['quality']:.4f} at "
                f"${rep['oracle']['cost_usd']:.4f}.", "",
                f"Tuned on train (5-fold CV): tagrouter k = {chosen_tr['kwargs']['config']['prior_strength']:g}, "
                f"w_t = {chosen_tr['kwargs']['config']['weighting']}, "
                f"aggregate = {chosen_tr['kwargs']['config'].get('aggregate', 'mean')}, "
                f"vocabulary min_count = {chosen_tr['vocab']['min_count']}, align threshold = "
                f"{chosen_tr['vocab']['align_threshold']}, topic levels = "
                f"{_levels(res, chosen_tr['vocab'].get('topic_levels'))}; knn k = "
                f"{tun['candidates'][tun['chosen']['knn']]['kwargs']['k']}. "
                f"Validation APGR: tagrouter {tun['results'][tun['chosen']['tagrouter']]['mean_apgr']:.3f}, "
                f"knn {tun['results'][tun['chosen']['knn']]['mean_apgr']:.3f}.", "",
                "| policy | APGR | CPT(80%) | CPT(95%) | quality at strong cost | max quality | "
                "cost to reach strong quality |",
                "|---|---|---|---|---|---|---|"]
        names = [n for n in ORDER if n in rep["policies"]] + [n for n in rep["policies"] if n not in ORDER]
        for n in names:
            p = rep["policies"][n]
            mq = max(pt["quality"] for pt in p["points"])
            m = res["cost_to_match_strong"].get(n)
            match = "never" if m is None else f"{100 * m['ratio']:.0f}% (${m['cost_usd']:.3f})"
            if n not in res["cost_to_match_strong"]:
                match = "–"
            out.append(f"| {n} | {_f(p['apgr'])} | {_f(p['cpt80'], '.2f')} | {_f(p['cpt95'], '.2f')} | "
                       f"{_f(p['quality_at_strong_cost'], '.4f')} | {mq:.4f} | {match} |")
        others = _others(name, res["sizes"]["test"])
        for n, p in others.items():
            out.append(f"| {n}¹ | {_f(p.get('apgr'))} | {_f(p.get('cpt80'), '.2f')} | {_f(p.get('cpt95'), '.2f')} | "
                       f"{_f(p.get('quality_at_strong_cost'), '.4f')} | – | – |")
        if others:
            out += ["", "¹ from `benchmarks/eval_policies.py` (`benchmarks/results/policies.json`), same test split, "
                    "each policy at its own defaults or tuning."]
        on = res["online"]
        tr_, em = on["train"], on["empty"]
        out += ["", f"Online replay (`--online`): the test split shuffled into a stream, tuned tagrouter at θ = "
                f"{tr_['knob']:g}, tables refreshed every {tr_['refresh_every']} requests from the chosen model's "
                "outcome only, 5% Thompson exploration.", "",
                "| start | quality | cost | first tenth → last tenth of the stream | same θ, no feedback |",
                "|---|---|---|---|---|",
                f"| imported train split | {tr_['quality']:.4f} | ${tr_['cost_usd']:.4f} | "
                f"{tr_['first_tenth_quality']:.4f} → {tr_['last_tenth_quality']:.4f} | "
                f"{tr_['static']['quality']:.4f} at ${tr_['static']['cost_usd']:.4f} |",
                f"| empty tables | {em['quality']:.4f} | ${em['cost_usd']:.4f} | "
                f"{em['first_tenth_quality']:.4f} → {em['last_tenth_quality']:.4f} | "
                f"{em['static']['quality']:.4f} at ${em['static']['cost_usd']:.4f} |",
                "", f"![{name}]({figures_rel}/eval_{name}.png)", ""]
    out.append(END)
    return "\n".join(out)


def _levels(res: dict[str, Any], asked: list[int] | None) -> str:
    """The topic levels actually fitted (a level needs 5 train prompts per topic), or "none"."""
    fitted = res.get("sizes", {}).get("topic_levels", asked)
    return "none" if not fitted else "/".join(str(k) for k in fitted)


def write_docs(results: dict[str, Any], doc: Path) -> None:
    table = render(results)
    text = doc.read_text(encoding="utf-8") if doc.is_file() else f"# Offline evaluation\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(head + table + tail, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "routing")
    ap.add_argument("--datasets", nargs="*", default=DATASETS)
    ap.add_argument("--cache", type=Path, default=REPO / ".switchyard" / "cache")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "eval.json")
    ap.add_argument("--figures", type=Path, default=REPO / "docs" / "figures")
    ap.add_argument("--doc", type=Path, default=REPO / "docs" / "evaluation.md")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--extra", nargs="*", default=[], help="other registered policies to add at their defaults")
    ap.add_argument("--online-only", action="store_true",
                    help="recompute only the online replays of the saved results, then the docs")
    ap.add_argument("--docs-only", action="store_true",
                    help="re-render the figures and the docs from --out, evaluate nothing")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.online_only:
        saved = json.loads(args.out.read_text())
        rerun_online(saved, args.data, args.cache, args.seed)
        args.out.write_text(json.dumps(saved, indent=1), encoding="utf-8")
        write_docs(saved, args.doc)
        return
    if args.docs_only:
        saved = json.loads(args.out.read_text())
        for name, res in saved["datasets"].items():
            plot_report(res["report"], args.figures / f"eval_{name}.png")
        write_docs(saved, args.doc)
        return
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {"datasets": {}}
    results["tagger"] = {"name": "offline", "fingerprint": tagger_fingerprint("offline")}
    for name in args.datasets:
        res = run_dataset(args.data / name, cache=args.cache, folds=args.folds, extra=args.extra, seed=args.seed)
        results["datasets"][name] = res
        results["datasets"] = {n: results["datasets"][n] for n in DATASETS if n in results["datasets"]}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1), encoding="utf-8")
        plot_report(res["report"], args.figures / f"eval_{name}.png")
        p = res["report"]["policies"]
        log.info("%s: APGR tagrouter %.3f, knn %.3f, random %.3f (%.0fs)", name, p["tagrouter"]["apgr"] or 0,
                 p["knn"]["apgr"] or 0, p["random"]["apgr"] or 0, res["timing_s"]["total"])
    write_docs(results, args.doc)


if __name__ == "__main__":
    main()
