"""Shared parts of the learned routers: attributes, the penalty, knob grids, ridge, memo, artifacts.

Also the synthetic fixtures the learned-router tests share: a bag-of-words hashing
embedder (deterministic, instant, and "semantic" enough that prompts sharing words are
close) and a three-topic training set where each specialist model wins its own topic.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from switchyard.catalog import Catalog
from switchyard.errors import ConfigError
from switchyard.routing.base import RouteRequest, RoutingContext, RoutingOptions, TrainingSet
from switchyard.routing.quality import (
    MISSING_ATTRIBUTE,
    PredictionMemo,
    _minmax,
    breakpoint_grid,
    choose_ridge_alpha,
    fit_ridge,
    lambda_grid,
    load_artifact,
    normalised_attribute,
    penalty_matrix,
    ridge_predict,
    save_artifact,
)

# --- shared synthetic fixtures ------------------------------------------------------------------
TOPICS = {
    "python": ["python", "function", "list", "loop", "class", "code", "bug", "import", "script", "variable"],
    "cooking": ["recipe", "bake", "oven", "flour", "sauce", "garlic", "pasta", "soup", "dinner", "spice"],
    "law": ["contract", "court", "lawyer", "clause", "tenant", "lease", "liability", "statute", "judge", "claim"],
}
FILLER = ["please", "help", "me", "with", "this", "today", "quickly", "about", "my", "question"]
# Mean quality of each model on each topic (tiny < specialists < big on their topic).
SKILL = {"tiny": {"python": 0.30, "cooking": 0.35, "law": 0.30},
         "coder": {"python": 0.95, "cooking": 0.20, "law": 0.20},
         "chef": {"python": 0.20, "cooking": 0.95, "law": 0.25},
         "big": {"python": 0.80, "cooking": 0.80, "law": 0.85}}
MODELS = list(SKILL)


def hash_embed(texts: Sequence[str]) -> np.ndarray:
    """Bag-of-words hashing into 384 dims (a fixed random vector per word), unit rows."""
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().replace(",", " ").replace(".", " ").replace("?", " ").split():
            seed = int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "big")
            out[i] += np.random.default_rng(seed).standard_normal(384).astype(np.float32)
        n = np.linalg.norm(out[i])
        out[i] = out[i] / n if n > 0 else out[i]
    return out


def make_prompts(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    topics = [list(TOPICS)[i % 3] for i in range(n)]
    prompts = []
    for i, t in enumerate(topics):
        words = list(rng.choice(TOPICS[t], 4, replace=False)) + list(rng.choice(FILLER, 3, replace=False))
        rng.shuffle(words)
        prompts.append(f"{' '.join(words)} number {i}")
    return prompts, topics


def synthetic_train(n: int = 240, seed: int = 0, noise: float = 0.05) -> TrainingSet:
    prompts, topics = make_prompts(n, seed)
    rng = np.random.default_rng(seed + 1)
    q = np.array([[SKILL[m][t] for m in MODELS] for t in topics]) + rng.normal(0, noise, (n, len(MODELS)))
    q = np.clip(q, 0, 1)
    return TrainingSet(prompts=prompts, models=list(MODELS), quality=q, cost=np.full(q.shape, 1e-4),
                       input_tokens=np.full(n, 50, dtype=np.int64), embeddings=hash_embed(prompts))


def synthetic_catalog(providers: dict | None = None, **extra_models: dict) -> Catalog:
    models = [
        {"id": "tiny", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.1, "params_b": 1,
         "release_date": "2024-06-01", "latency_ms": 100},
        {"id": "coder", "usd_per_mtok_input": 1, "usd_per_mtok_output": 2, "params_b": 8,
         "release_date": "2024-01-01", "latency_ms": 300, "description": "writes python code and fixes bugs"},
        {"id": "chef", "usd_per_mtok_input": 1, "usd_per_mtok_output": 2, "params_b": 8,
         "release_date": "2023-01-01", "latency_ms": 300, "description": "recipes, cooking, baking and sauces"},
        {"id": "big", "usd_per_mtok_input": 10, "usd_per_mtok_output": 30, "params_b": 400,
         "release_date": "2024-09-01", "latency_ms": 2000},
    ]
    for mid, spec in extra_models.items():
        models.append({"id": mid, **spec})
    provs = {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}, **(providers or {})}
    return Catalog.model_validate({"providers": provs, "models": [{"provider": "p", **m} for m in models]})


def requests_for(prompts: list[str], **opts: object) -> list[RouteRequest]:
    return [RouteRequest(id=f"r{i}", prompt=p, input_tokens=50, options=RoutingOptions(**opts))
            for i, p in enumerate(prompts)]


def context(knob: float | None = None) -> RoutingContext:
    return RoutingContext(knob=knob, embed_fn=hash_embed)


# --- attributes and the penalty -----------------------------------------------------------------------
def test_minmax_scales_rows_and_marks_missing() -> None:
    x = np.array([[1.0, 3.0, np.nan], [5.0, 5.0, 5.0], [np.nan, np.nan, np.nan]])
    out = _minmax(x)
    assert out[0].tolist() == [0.0, 1.0, MISSING_ATTRIBUTE]
    assert out[1].tolist() == [0.0, 0.0, 0.0]  # nothing to trade
    assert out[2].tolist() == [MISSING_ATTRIBUTE] * 3


def test_attributes_follow_the_catalog() -> None:
    cat = synthetic_catalog()
    reqs = requests_for(["a", "b"])
    ids = cat.ids()
    cost = normalised_attribute("cost", reqs, ids, cat)
    assert cost[0, ids.index("tiny")] == 0.0 and cost[0, ids.index("big")] == 1.0
    size = normalised_attribute("size", reqs, ids, cat)
    assert size[0, ids.index("big")] == 1.0 and 0 < size[0, ids.index("coder")] < 0.05
    age = normalised_attribute("age", reqs, ids, cat)
    assert age[0, ids.index("chef")] == 1.0 and age[0, ids.index("big")] == 0.0  # oldest is worst
    with pytest.raises(KeyError):
        normalised_attribute("colour", reqs, ids, cat)


def test_penalty_uses_each_requests_flags_or_the_default() -> None:
    cat = synthetic_catalog()
    ids = cat.ids()
    reqs = [RouteRequest(id="a", prompt="x", input_tokens=10),
            RouteRequest(id="b", prompt="x", input_tokens=10, options=RoutingOptions(flags={"latency": 2.0})),
            RouteRequest(id="c", prompt="x", input_tokens=10, options=RoutingOptions(flags={"bogus": 5.0}))]
    pen = penalty_matrix(reqs, ids, cat, {"cost": 1.0})
    assert pen[0, ids.index("big")] == pytest.approx(1.0)  # default flags: cost
    assert pen[1, ids.index("big")] == pytest.approx(2.0)  # latency weight 2, big is slowest
    assert pen[1, ids.index("tiny")] == 0.0
    assert np.all(pen[2] == 0.0)  # unknown flag names are dropped


# --- knob grids ----------------------------------------------------------------------------------------
def test_breakpoint_grid_spans_all_decisions() -> None:
    rng = np.random.default_rng(0)
    q = rng.uniform(0, 1, (300, 4))
    pen = np.tile(np.array([0.0, 0.2, 0.5, 1.0]), (300, 1))
    grid = breakpoint_grid(q, pen, 21)
    assert len(grid) >= 21 and grid == sorted(grid, reverse=True) and grid[-1] == 0.0
    pick = lambda lam: np.argmax(q - lam * pen, axis=1)  # noqa: E731
    # Largest lambda: everything on the cheapest model; lambda 0: everything on the best predicted.
    assert np.all(pick(grid[0]) == 0)
    assert np.array_equal(pick(grid[-1]), np.argmax(q, axis=1))
    # Interior points change decisions (the grid is not wasted on flat stretches).
    distinct = {tuple(pick(g)) for g in grid}
    assert len(distinct) >= 15


def test_breakpoint_grid_without_a_trade_falls_back() -> None:
    q = np.random.default_rng(1).uniform(0, 1, (50, 3))
    assert breakpoint_grid(q, np.zeros_like(q), 21) == lambda_grid(21)


# --- ridge -----------------------------------------------------------------------------------------------
def test_ridge_recovers_a_linear_target_and_skips_unknown_cells() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 10))
    w_true = rng.standard_normal((10, 2)) * 0.05
    y = np.clip(0.5 + x @ w_true, 0, 1)
    y_obs = y.copy()
    y_obs[::3, 1] = np.nan  # unknown, never "bad"
    alpha = choose_ridge_alpha(x, y_obs)
    w, b = fit_ridge(x, y_obs, alpha)
    assert np.abs(ridge_predict(x, w, b) - y).max() < 0.05
    assert alpha in (1.0, 10.0, 100.0, 1000.0)


# --- memo and artifacts ------------------------------------------------------------------------------------
def test_prediction_memo_computes_each_request_once() -> None:
    memo = PredictionMemo(max_items=3)
    calls: list[int] = []

    def compute(rs: Sequence[RouteRequest]) -> np.ndarray:
        calls.append(len(rs))
        return np.array([[float(len(r.prompt))] for r in rs])

    reqs = requests_for(["a", "bb", "ccc"])
    first = memo.get_or_compute(reqs, 1, compute)
    again = memo.get_or_compute(reqs, 1, compute)
    assert calls == [3] and np.array_equal(first, again) and first[:, 0].tolist() == [1.0, 2.0, 3.0]
    memo.get_or_compute(requests_for(["dddd"]) , 1, compute)  # id r0 again but another prompt: a new entry
    assert calls == [3, 1]
    memo.get_or_compute(reqs[:1], 1, compute)  # the oldest entry was evicted (max_items=3)
    assert calls == [3, 1, 1]


class _Evil:
    def __reduce__(self) -> tuple:
        return (print, ("pickled code ran",))


def test_artifacts_load_plain_data_only(tmp_path: Path) -> None:
    good = tmp_path / "ok.pt"
    save_artifact(good, {"kind": "tryage", "w": torch.ones(2), "models": ["a"]})
    assert load_artifact(good, "tryage")["models"] == ["a"]
    with pytest.raises(ConfigError, match="'tryage' artifact, not 'mf'"):
        load_artifact(good, "mf")
    evil = tmp_path / "evil.pt"
    torch.save({"kind": "tryage", "x": _Evil()}, evil)
    with pytest.raises(ConfigError, match="not a readable"):
        load_artifact(evil, "tryage")
    with pytest.raises(ConfigError, match="switchyard train tryage"):
        load_artifact(tmp_path / "missing.pt", "tryage")


def test_ages_use_release_dates() -> None:
    from switchyard.routing.quality import raw_attribute

    cat = synthetic_catalog()
    raw = raw_attribute("age", requests_for(["x"]), ["chef", "big"], cat, today=dt.date(2025, 1, 1))
    assert raw[0].tolist() == [(dt.date(2025, 1, 1) - dt.date(2023, 1, 1)).days,
                               (dt.date(2025, 1, 1) - dt.date(2024, 9, 1)).days]


def write_dataset(root: Path, n: int = 120, seed: int = 0, name: str = "synthetic") -> Path:
    """A small routing dataset in the FORMAT.md layout from the synthetic generator (half train)."""
    import csv
    import json

    root.mkdir(parents=True, exist_ok=True)
    train = synthetic_train(n, seed)
    prices = {"tiny": (0.1, 0.1), "coder": (1, 2), "chef": (1, 2), "big": (10, 30)}
    (root / "dataset.json").write_text(json.dumps({"name": name, "source": "synthetic test data", "license": "CC0",
                                                   "quality": "synthetic", "accept_threshold": 0.5}))
    with (root / "prompts.jsonl").open("w") as fh:
        for i, p in enumerate(train.prompts):
            fh.write(json.dumps({"prompt_id": f"p{i}", "prompt": p, "split": "train" if i % 2 == 0 else "test",
                                 "category": None, "input_tokens": 50}) + "\n")
    with (root / "models.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["model", "usd_per_mtok_input", "usd_per_mtok_output", "description"])
        for m, (pin, pout) in prices.items():
            w.writerow([m, pin, pout, ""])
    with (root / "outcomes.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["prompt_id", "model", "quality", "output_tokens", "cost_usd"])
        for i in range(n):
            for j, m in enumerate(MODELS):
                pin, pout = prices[m]
                w.writerow([f"p{i}", m, round(float(train.quality[i, j]), 4), 100, (50 * pin + 100 * pout) / 1e6])
    return root
