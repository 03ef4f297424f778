"""Offline evaluation: APGR maths, the report's shape, train-only learning, tuning folds, online replay.

Most tests run on a small synthetic dataset written in the FORMAT.md layout, with a
keyword tagger and hashed embeddings, so they need no model weights.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from switchyard.datasets import load_dataset
from switchyard.evaluation import (
    MIN_POINTS,
    Candidate,
    Point,
    Reference,
    VocabParams,
    apgr_metrics,
    best_candidate,
    bootstrap_apgr,
    cross_validate,
    evaluate,
    online_replay,
    oracle,
    plot_report,
    prepare,
    reference,
    single_models,
    validation_dataset,
    write_decisions,
)

TOPICS = ("python", "poetry", "history")
# per topic: the quality of (premium, budget, free)
QUALITY = {"python": (0.9, 0.3, 0.1), "poetry": (0.8, 0.8, 0.2), "history": (0.7, 0.6, 0.65)}
PRICES = {"premium": 10.0, "budget": 1.0, "free": 0.1}


def _split(pid: str) -> str:
    return "train" if hashlib.sha256(pid.encode()).digest()[0] < 128 else "test"


# a python prompt of the test split, where premium would be the pick: its premium outcome is missing
MISSING = next(f"p{i}" for i in range(0, 300, 3) if _split(f"p{i}") == "test")


def write_dataset(root: Path, n: int = 240, seed: int = 0, missing: bool = True) -> Path:
    """A dataset where the topic decides which model is worth its price."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps({
        "name": "synthetic", "source": "test", "license": "CC0", "quality": "made up", "accept_threshold": 0.5}))
    with (root / "models.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "usd_per_mtok_input", "usd_per_mtok_output", "description"])
        for m, p in PRICES.items():
            w.writerow([m, p, p, ""])
    with (root / "prompts.jsonl").open("w") as fp, (root / "outcomes.csv").open("w", newline="") as fo:
        w = csv.writer(fo)
        w.writerow(["prompt_id", "model", "quality", "output_tokens", "cost_usd"])
        for i in range(n):
            topic = TOPICS[i % 3]
            pid = f"p{i}"
            split = _split(pid)
            fp.write(json.dumps({"prompt_id": pid, "prompt": f"a {topic} question number {i}", "split": split,
                                 "category": topic, "input_tokens": 50}) + "\n")
            for j, (m, p) in enumerate(PRICES.items()):
                if missing and pid == MISSING and m == "premium":
                    continue  # no outcome: unknown, never chosen
                q = float(np.clip(QUALITY[topic][j] + rng.normal(0, 0.1), 0, 1))
                w.writerow([pid, m, f"{q:.4f}", 100, f"{150 * p / 1e6:.8f}"])
    return root


def tag_fn(texts: Sequence[str]) -> list[list[str]]:
    return [[t for t in TOPICS if t in s] + ["question"] for s in texts]


def embed_fn(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for i, s in enumerate(texts):
        for k, t in enumerate(TOPICS):
            if t in s:
                out[i, k] = 1.0
        h = np.frombuffer(hashlib.sha256(s.encode()).digest(), dtype=np.uint8)[:8].astype(np.float32)
        out[i, 10:18] = 0.05 * h / 255.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "synthetic")


def data_of(path: Path | object, cache: Path | None = None, **kw: object):
    return prepare(path, tag_fn=tag_fn, embed_fn=embed_fn, tagger="kw", cache_dir=cache, **kw)  # type: ignore[arg-type]


# --- APGR on synthetic points --------------------------------------------------------------
REF = Reference(weak="w", strong="s", c_weak=1.0, c_strong=11.0, q_weak=0.5, q_strong=0.9)


def pts(xy: list[tuple[float, float]]) -> list[Point]:
    """Points from (x, PGR) pairs under REF."""
    return [Point(knob=i, cost_usd=REF.c_weak + x * (REF.c_strong - REF.c_weak),
                  quality=REF.q_weak + y * (REF.q_strong - REF.q_weak), accept_rate=0.0, share={})
            for i, (x, y) in enumerate(xy)]


def test_random_mixing_scores_one_half() -> None:
    m = apgr_metrics(pts([(x, x) for x in np.linspace(0, 1, 21)]), REF)
    assert m["apgr"] == pytest.approx(0.5, abs=1e-6)
    assert m["cpt80"] == pytest.approx(0.8, abs=1e-6)
    assert m["cpt95"] == pytest.approx(0.95, abs=1e-6)
    assert m["quality_at_strong_cost"] == pytest.approx(0.9)
    # the two end points alone: mixing them is the same line
    assert apgr_metrics(pts([(0, 0), (1, 1)]), REF)["apgr"] == pytest.approx(0.5, abs=1e-6)


def test_strong_quality_at_zero_cost_scores_one() -> None:
    m = apgr_metrics(pts([(0, 1), (0.5, 1), (1, 1)]), REF)
    assert m["apgr"] == pytest.approx(1.0, abs=1e-6)
    assert m["cpt80"] == 0.0 and m["cpt95"] == 0.0


def test_envelope_is_upper_hull_and_never_decreases() -> None:
    # a dip below the chord and a drop after the peak do not count against the router
    m = apgr_metrics(pts([(0, 0), (0.2, 0.1), (0.5, 0.9), (1, 0.7)]), REF)
    # hull: (0,0)-(0.5,0.9) then flat at 0.9
    assert m["apgr"] == pytest.approx(0.5 * 0.9 / 2 + 0.5 * 0.9, abs=1e-3)
    assert m["cpt80"] == pytest.approx(0.8 / 0.9 * 0.5, abs=1e-3)
    assert m["cpt95"] is None
    assert m["quality_at_strong_cost"] == pytest.approx(0.5 + 0.9 * 0.4)
    # nothing left of the cheapest point
    assert apgr_metrics(pts([(0.5, 1.0), (1, 1)]), REF)["apgr"] == pytest.approx(0.5, abs=1e-3)


def test_flat_costs_and_degenerate_references() -> None:
    flat = Reference(weak="w", strong="s", c_weak=1.0, c_strong=1.0, q_weak=0.4, q_strong=0.6)
    p = [Point(knob=0, cost_usd=1.0, quality=q, accept_rate=0, share={}) for q in (0.5, 0.65)]
    m = apgr_metrics(p, flat)
    assert m["apgr"] == pytest.approx(1.25) and m["cpt95"] == 0.0 and m["quality_at_strong_cost"] == 0.65
    same = Reference(weak="w", strong="w", c_weak=1.0, c_strong=1.0, q_weak=0.5, q_strong=0.5)
    assert apgr_metrics(p, same)["apgr"] is None


def test_reference_picks_cheapest_as_weak_and_best_test_quality_as_strong() -> None:
    models = {"a": {"cost_usd": 5.0, "quality": 0.7}, "b": {"cost_usd": 1.0, "quality": 0.5},
              "c": {"cost_usd": 9.0, "quality": 0.8}}
    ref = reference(models)
    assert (ref.weak, ref.strong, ref.c_weak, ref.q_strong) == ("b", "c", 1.0, 0.8)


# --- the harness on a dataset ----------------------------------------------------------------
def test_report_shape_and_consistency(dataset: Path, tmp_path: Path) -> None:
    data = data_of(dataset, tmp_path / "cache")
    report, _ = evaluate(data, ["tagrouter", "knn", "best", "cheapest"])
    json.dumps(report, allow_nan=False)  # strict JSON
    assert report["dataset"] == "synthetic" and report["split"] == "test"
    assert set(report["models"]) == set(PRICES)
    for v in report["models"].values():
        assert set(v) >= {"cost_usd", "quality", "accept_rate"}
    assert set(report["oracle"]) == {"cost_usd", "quality"}
    assert set(report["policies"]) == {"tagrouter", "knn", "best", "cheapest", "random"}
    for name, pol in report["policies"].items():
        assert set(pol) == {"apgr", "cpt80", "cpt95", "quality_at_strong_cost", "points"}
        n_expected = 1 if name in ("best", "cheapest") else MIN_POINTS
        assert len(pol["points"]) >= n_expected
        for p in pol["points"]:
            assert set(p) == {"knob", "cost_usd", "quality", "accept_rate", "share"}
            assert sum(p["share"].values()) == pytest.approx(1.0)
            assert set(p["share"]) == set(PRICES)
    # single models are the fixed points of the curve
    assert report["policies"]["best"]["points"][0]["quality"] == pytest.approx(
        report["models"][report["reference"]["strong"]]["quality"], abs=0.02)
    assert report["policies"]["cheapest"]["points"][0]["cost_usd"] == pytest.approx(
        report["models"]["free"]["cost_usd"], rel=0.02)
    # the oracle bounds every point from above
    assert all(p["quality"] <= report["oracle"]["quality"] + 1e-9
               for pol in report["policies"].values() for p in pol["points"])
    # the topic decides: tagrouter must beat random mixing clearly here
    assert report["policies"]["tagrouter"]["apgr"] > report["policies"]["random"]["apgr"] + 0.1
    assert report["policies"]["tagrouter"]["apgr"] > 0.8


def test_bootstrap_is_paired_and_separates_a_real_gap(dataset: Path, tmp_path: Path) -> None:
    data = data_of(dataset, tmp_path / "cache")
    _, points = evaluate(data, ["tagrouter"], variants={"twin": ("tagrouter", {})})
    boot = bootstrap_apgr(data, points, pairs=[("tagrouter", "twin"), ("tagrouter", "random")], n_boot=200)
    same = boot["tagrouter - twin"]
    # The same choices on the same resampled prompts: exactly no difference, never "better".
    assert (same["mean"], same["lo"], same["hi"], same["p_better"]) == (0.0, 0.0, 0.0, 0.0)
    # Tags decide quality in this dataset, so TagRouter beats random mixing on nearly every resample.
    gap = boot["tagrouter - random"]
    assert gap["p_better"] > 0.9 and gap["lo"] < gap["mean"] < gap["hi"] and gap["mean"] > 0.1


def test_missing_outcomes_are_never_chosen(dataset: Path, tmp_path: Path) -> None:
    data = data_of(dataset, tmp_path / "cache")
    i = [r.id for r in data.requests].index(MISSING)
    assert data.requests[i].options.allow == ["budget", "free"]
    assert all(r.options.allow is None for r in data.requests if r.id != MISSING)
    _, points = evaluate(data, ["tagrouter", "knn", "best"], include_random=True)
    others = [r.id for r in data.requests].index(next(r.id for r in data.requests if "python" in r.prompt
                                                      and r.id != MISSING))
    assert points["best"][0].choices[others] == "premium"  # premium is what it would have picked
    for plist in points.values():
        for p in plist:
            assert p.choices[i] != "premium"


def test_decisions_file_recomputes_every_point(dataset: Path, tmp_path: Path) -> None:
    data = data_of(dataset, tmp_path / "cache")
    report, points = evaluate(data, ["tagrouter"])
    out = tmp_path / "decisions.jsonl"
    write_decisions(out, data, points)
    ds = load_dataset(dataset)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == sum(len(v) for v in points.values())
    for line in lines:
        pol = report["policies"][line["policy"]]
        point = next(p for p in pol["points"] if p["knob"] == line["knob"])
        q = [ds.quality[ds.index_of(pid), ds.model_ids.index(m)] for pid, m in line["choices"].items()]
        c = [ds.cost[ds.index_of(pid), ds.model_ids.index(m)] for pid, m in line["choices"].items()]
        assert np.mean(q) == pytest.approx(point["quality"])
        assert np.sum(c) == pytest.approx(point["cost_usd"])
        assert set(line["choices"]) == {r.id for r in data.requests}


def test_plot_is_written(dataset: Path, tmp_path: Path) -> None:
    data = data_of(dataset, tmp_path / "cache")
    report, _ = evaluate(data, ["tagrouter"])
    plot_report(report, tmp_path / "fig" / "curve.png")
    assert (tmp_path / "fig" / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # equal prices (routerdc): no cost axis, a bar chart instead
    flat = {**report, "models": {m: {**v, "cost_usd": 1.0} for m, v in report["models"].items()}}
    plot_report(flat, tmp_path / "fig" / "flat.png")
    assert (tmp_path / "fig" / "flat.png").read_bytes()[:4] == b"\x89PNG"


def test_oracle_and_single_models(dataset: Path, tmp_path: Path) -> None:
    data = data_of(dataset, tmp_path / "cache")
    q, c = data.test_quality, data.test_cost
    o = oracle(data)
    assert o["quality"] == pytest.approx(np.nanmax(q, axis=1).mean())
    assert o["cost_usd"] <= np.nansum(c[:, 0]) + 1e-12
    sm = single_models(data)
    assert sm["budget"]["quality"] == pytest.approx(np.nanmean(q[:, 1]))


# --- learning sees the train split only ------------------------------------------------------
def poisoned_copy(src: Path, dst: Path) -> Path:
    """A copy whose test-split qualities are inverted (1 - q): a router that peeked would change."""
    shutil.copytree(src, dst)
    test_ids = {json.loads(x)["prompt_id"] for x in (src / "prompts.jsonl").read_text().splitlines()
                if json.loads(x)["split"] == "test"}
    rows = list(csv.DictReader((src / "outcomes.csv").open()))
    with (dst / "outcomes.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            if r["prompt_id"] in test_ids:
                r = {**r, "quality": f"{1 - float(r['quality']):.4f}"}
            w.writerow(r)
    return dst


def test_routers_cannot_peek_at_test_outcomes(dataset: Path, tmp_path: Path) -> None:
    poisoned = poisoned_copy(dataset, tmp_path / "poisoned")
    clean_data = data_of(dataset, tmp_path / "cache")
    bad_data = data_of(poisoned, tmp_path / "cache")
    assert not np.allclose(clean_data.test_quality, bad_data.test_quality, equal_nan=True)  # the poison is real
    np.testing.assert_array_equal(clean_data.train.quality, bad_data.train.quality)
    _, clean = evaluate(clean_data, ["tagrouter", "knn", "best"])
    _, bad = evaluate(bad_data, ["tagrouter", "knn", "best"])
    for name in clean:
        assert [p.choices for p in clean[name]] == [p.choices for p in bad[name]], name
        assert [p.knob for p in clean[name]] == [p.knob for p in bad[name]], name
    # and what fit() received holds train prompts only
    ds = load_dataset(dataset)
    train_ids = {p.prompt_id for p in ds.prompts if p.split == "train"}
    assert set(clean_data.train.prompts) == {p.prompt for p in ds.prompts if p.prompt_id in train_ids}
    assert not {r.id for r in clean_data.requests} & train_ids


# --- tuning folds --------------------------------------------------------------------------
def test_validation_folds_partition_train_and_blank_test(dataset: Path) -> None:
    ds = load_dataset(dataset)
    train = set(ds.split_indices("train").tolist())
    seen: set[int] = set()
    for f in range(4):
        v = validation_dataset(ds, fold=f, n_folds=4)
        val = set(v.split_indices("test").tolist())
        assert val <= train and not val & seen
        seen |= val
        assert set(v.split_indices("train").tolist()) == train - val
        hold = [i for i, p in enumerate(v.prompts) if p.split == "holdout"]
        assert hold and np.isnan(v.quality[hold]).all() and np.isnan(v.cost[hold]).all()
    assert seen == train
    with pytest.raises(ValueError):
        validation_dataset(ds, fold=4, n_folds=4)


def test_cross_validation_never_reads_the_test_split(dataset: Path, tmp_path: Path) -> None:
    cands = {"tr_k5": Candidate("tagrouter", {"config": _cfg(5)}),
             "tr_k50_mc3": Candidate("tagrouter", {"config": _cfg(50)}, VocabParams(min_count=3)),
             "knn": Candidate("knn", {"k": 5})}
    kw = {"n_folds": 3, "tag_fn": tag_fn, "tagger": "kw", "cache_dir": tmp_path / "cache"}
    res = cross_validate(load_dataset(dataset), cands, **kw)  # type: ignore[arg-type]
    assert set(res) == set(cands)
    assert all(len(r["folds"]) == 3 and r["mean_apgr"] is not None for r in res.values())
    poisoned = cross_validate(load_dataset(poisoned_copy(dataset, tmp_path / "p")), cands, **kw)  # type: ignore[arg-type]
    assert {n: r["folds"] for n, r in res.items()} == {n: r["folds"] for n, r in poisoned.items()}
    assert best_candidate(res, list(cands)) in cands
    assert best_candidate({"a": {"mean_apgr": None}, "b": {"mean_apgr": 0.1}}, ["a", "b"]) == "b"


def _cfg(k: float):
    from switchyard.scoring import ScorerConfig

    return ScorerConfig(prior_strength=k)


# --- online replay -----------------------------------------------------------------------------
def test_online_replay_learns_from_its_own_choices(tmp_path: Path) -> None:
    path = write_dataset(tmp_path / "big", n=900, missing=False)
    data = data_of(path, tmp_path / "cache")
    empty = online_replay(data, start="empty", refresh_every=25, knob=0.0, exploration_rate=0.2, seed=1)
    warm = online_replay(data, start="train", refresh_every=25, knob=0.0, exploration_rate=0.0)
    for rep in (empty, warm):
        assert rep["requests"] == len(data.requests)
        assert rep["windows"][-1]["requests"] == len(data.requests)
        assert [w["table_version"] for w in rep["windows"]] == list(range(1, len(rep["windows"]) + 1))
        json.dumps(rep, allow_nan=False)
    first, later = empty["windows"][0], empty["windows"][len(empty["windows"]) // 2:]
    # from nothing: the first window is routed blind, exploration finds the models, quality rises
    assert first["models_seen"] <= 3
    assert np.mean([w["quality"] for w in later]) > first["quality"] + 0.05
    # from the imported train split it is good from the start
    assert warm["windows"][0]["quality"] > first["quality"]
    assert warm["windows"][0]["models_seen"] == 3
    assert warm["quality"] >= empty["quality"]
    # without feedback, an empty start would route everything to the cheapest model forever
    assert empty["static"]["quality"] < empty["quality"]
    assert warm["static"]["quality"] > 0.7 and 0 <= empty["last_tenth_quality"] <= 1
    with pytest.raises(ValueError):
        online_replay(data, start="nonsense")
