"""The budget planner: frontier, greedy by quality per dollar, unaffordable remainders, and the
issue's bar on two real datasets (offline, with a keyword tagger so it runs in seconds)."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from switchyard.budget import Option, frontier, plan, simulate
from switchyard.evaluation import (
    budget_sweep,
    fit_policy,
    knob_best_at,
    prepare,
    reference,
    single_models,
    sweep,
)
from switchyard.routing.base import get_policy
from switchyard.tagging.keywords import KeywordTagger


def keyword_tags(texts: Sequence[str]) -> list[list[str]]:
    return KeywordTagger().tag_batch(texts)


def hashed_embeddings(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in re.findall(r"[a-z0-9]+", t.lower()):
            out[i, int(hashlib.blake2b(w.encode(), digest_size=4).hexdigest(), 16) % 384] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def o(model: str, score: float, cost: float) -> Option:
    return Option(model, score, cost)


def test_frontier_drops_dominated_and_non_concave_options() -> None:
    f = frontier([o("a", 0.1, 1), o("b", 0.05, 2), o("c", 0.5, 3), o("d", 0.52, 10), o("e", 0.2, 1.5),
                  o("f", float("nan"), 0.1)])
    # b costs more than a for less; e lies under the chord a -> c; f has no score.
    assert [x.model for x in f] == ["a", "c", "d"]


def test_plan_buys_the_best_quality_per_dollar_first() -> None:
    cands = [[o("weak", 0.5, 1.0), o("strong", 0.9, 11.0)],  # +0.4 for $10
             [o("weak", 0.5, 1.0), o("strong", 0.6, 2.0)],  # +0.1 for $1: better per dollar
             [o("weak", 0.2, 1.0), o("strong", 0.9, 3.0)]]  # +0.7 for $2: best
    p = plan(cands, budget=6.0)
    assert [c.model for c in p.choice if c] == ["weak", "strong", "strong"]
    assert p.cost == pytest.approx(6.0) and p.unaffordable == []
    assert [c.model for c in plan(cands, budget=100).choice if c] == ["strong"] * 3


def test_plan_marks_the_remainder_unaffordable_in_line_order() -> None:
    cands = [[o("weak", 0.5, 1.0)]] * 5
    p = plan(cands, budget=3.5)
    assert p.unaffordable == [3, 4] and p.cost == 3.0


def test_simulate_replans_on_actual_costs_and_never_overspends_by_more_than_one_request() -> None:
    # Actual costs run 50% over the prediction: re-planning must catch it.
    cands = [[o("weak", 0.5, 1.0), o("strong", 0.9, 3.0)] for _ in range(40)]
    res = simulate(cands, 60.0, lambda i, m: (1.5 if m == "weak" else 4.5, 0.5 if m == "weak" else 0.9),
                   wave_min=5)
    assert res.cost <= 60.0 + 4.5 and res.waves > 3
    assert res.served + res.failed == 40 and res.failed > 0  # the overrun left some lines unaffordable


@pytest.mark.parametrize("name", ["alpaca_eval_ae2", "routellm_gsm8k"])
def test_half_the_strong_cost_buys_at_least_the_best_knob_point(shared_data: Path, name: str) -> None:
    """The issue's bar: at a budget of half the strong model's test cost, the budgeted job
    (tagrouter's candidate lists, planned, replayed with re-planning) reaches the quality of
    the best point of tagrouter's own knob curve that costs no more."""
    data = prepare(shared_data / "routing" / name, tagger="kw", tag_fn=keyword_tags, embed_fn=hashed_embeddings,
                   cache_dir=None, canonical=False)
    ref = reference(single_models(data))
    budget = 0.5 * ref.c_strong
    policy = fit_policy(get_policy("tagrouter"), data)
    knob_best = knob_best_at(sweep(policy, data), budget)
    got = budget_sweep(policy, data, [budget])[0]
    assert knob_best is not None and got["failed"] <= 0.01 * len(data.requests)  # unserved count as 0
    assert got["cost_usd"] <= budget + float(np.nanmax(data.test_cost))
    # Measured: alpaca 0.1730 vs 0.1715, gsm8k 0.7428 vs 0.7284 (docs/judging.md; alpaca's margin is
    # within one test prompt's weight, 1/396).
    assert got["quality"] >= knob_best, (got, knob_best)


def test_eval_cli_budget_curve(tmp_path: Path) -> None:
    from tests.switchyard.test_evaluation import write_dataset

    ds = write_dataset(tmp_path / "ds")
    out, plot = tmp_path / "r.json", tmp_path / "c.png"
    r = subprocess.run([sys.executable, "-m", "switchyard.cli", "eval", str(ds), "-p", "cheapest", "--no-random",
                        "--tagger", "none", "--budget", "0", "--budget", "0.005", "--out", str(out), "--plot",
                        str(plot), "--cache-dir", str(tmp_path / "cache")], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    rows = json.loads(out.read_text())["budget"]["cheapest"]
    assert len(rows) == 13 and all(row["cost_usd"] <= row["budget_usd"] + 2e-4 for row in rows)
    assert (tmp_path / "c_budget.png").stat().st_size > 1000
