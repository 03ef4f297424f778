"""TagDecider: cheapest model within θ of the best S, constraints, defaults and what a decision records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchyard.catalog import Catalog, Model, ProviderConfig
from switchyard.routing.base import RouteRequest, RoutingContext, RoutingOptions, TrainingSet, get_policy
from switchyard.routing.tagrouter import TagRouterPolicy
from switchyard.scoring import ScorerConfig, TagCounts, TagScorer, cheapest_within

# price per 1M tokens (input = output); expected output 100 tokens
PRICES = {"big": 10.0, "mid": 1.0, "small": 0.1}


def catalog(prices: dict[str, float] = PRICES) -> Catalog:
    prov = ProviderConfig(name="p", kind="replay", options={"dataset": "unused"})
    return Catalog(providers={"p": prov}, models=[
        Model(id=m, provider="p", usd_per_mtok_input=p, usd_per_mtok_output=p, expected_output_tokens=100)
        for m, p in prices.items()])


def rows(tag: str, model: str, win: int, loss: int) -> list[dict]:
    return [{"tags": [tag], "model": model, "verdict": "win"}] * win + \
        [{"tags": [tag], "model": model, "verdict": "loss"}] * loss


def table() -> TagRouterPolicy:
    """On "python" big is best, mid is close, small is poor; on "poetry" small is as good as big."""
    c = TagCounts()
    c.add_outcomes(rows("python", "big", 90, 10) + rows("python", "mid", 80, 20) + rows("python", "small", 20, 80))
    c.add_outcomes(rows("poetry", "big", 60, 40) + rows("poetry", "mid", 40, 60) + rows("poetry", "small", 62, 38))
    return TagRouterPolicy(TagScorer(ScorerConfig(prior_strength=5)).table(c, version=3))


def req(tags: list[str], i: int = 0, **opts: object) -> RouteRequest:
    return RouteRequest(id=f"r{i}", prompt="p", tags=tags, input_tokens=100, options=RoutingOptions(**opts))


def decide(policy: TagRouterPolicy, requests: list[RouteRequest], theta: float | None = None):
    return policy.decide_batch(requests, catalog(), RoutingContext(knob=theta))


def test_theta_trades_quality_for_cost() -> None:
    pol = table()
    assert [d.model for d in decide(pol, [req(["python"])], theta=0.0)] == ["big"]
    assert [d.model for d in decide(pol, [req(["python"])], theta=0.4)] == ["mid"]  # close enough, 10x cheaper
    assert [d.model for d in decide(pol, [req(["python"])], theta=5.0)] == ["small"]  # anything goes
    # other tags, other knowledge: on poetry small is best, so it is chosen even at θ = 0
    d = decide(pol, [req(["poetry"])], theta=0.0)[0]
    assert d.model == "small"
    # the per-request knob overrides the context's
    assert decide(pol, [req(["python"], knob=0.0)], theta=5.0)[0].model == "big"


def test_matches_the_cost_rule_on_raw_arrays() -> None:
    pol = table()
    assert pol.table is not None
    s, _ = pol.table.aggregate([["python"]])
    cost = np.array([[cat.predicted_cost(100) for cat in catalog()]])
    theta = 0.4
    j = cheapest_within(s, cost, np.ones_like(s, bool), theta * pol.table.spread)[0]
    assert decide(pol, [req(["python"])], theta=theta)[0].model == pol.table.models[j]


def test_decision_records_tags_scores_theta_and_a_reason() -> None:
    d = decide(table(), [req(["python", "unheard-of"])], theta=0.4)[0]
    assert d.policy == "tagrouter"
    assert d.tags == ["python", "unheard-of"]
    assert d.details["known_tags"] == ["python"]
    assert set(d.details["S"]) == {"big", "mid", "small"}
    assert d.details["S"]["big"] > d.details["S"]["mid"] > d.details["S"]["small"]
    assert d.knob == 0.4 and d.details["theta"] == 0.4
    assert d.details["table_version"] == 3
    assert [m for m, _ in d.ranked] == ["big", "mid", "small"]
    assert "\n" not in d.reason and "mid" in d.reason and "big" in d.reason and "python" in d.reason
    assert d.predicted_cost_usd == pytest.approx(catalog().get("mid").predicted_cost(100))
    js = d.to_json()
    assert js["details"]["S"] and js["knob"] == 0.4


def test_max_cost_and_allow_deny_are_respected() -> None:
    pol = table()
    big_cost = catalog().get("big").predicted_cost(100)
    mid_cost = catalog().get("mid").predicted_cost(100)
    d = decide(pol, [req(["python"], max_cost_usd=(big_cost + mid_cost) / 2)], theta=0.0)[0]
    assert d.model == "mid"  # the best within budget
    assert decide(pol, [req(["python"], deny=["big"])], theta=0.0)[0].model == "mid"
    assert decide(pol, [req(["python"], allow=["small"])], theta=0.0)[0].model == "small"
    assert decide(pol, [req(["python"], allow=["big", "small"])], theta=0.4)[0].model == "big"
    assert "mid" not in decide(pol, [req(["python"], deny=["mid"])], theta=0.4)[0].details["S"]


def test_no_known_tag_uses_the_best_global_score_per_dollar_within_theta() -> None:
    c = TagCounts()
    # global records: big wins 90%, mid 55%, small 2%; prices 10 : 1 : 0.1
    c.add_outcomes(rows("x", "big", 90, 10) + rows("x", "mid", 55, 45) + rows("x", "small", 2, 98))
    pol = TagRouterPolicy(TagScorer(ScorerConfig(prior_strength=1)).table(c))
    for tags in ([], ["never seen"]):
        wide = decide(pol, [req(tags)], theta=10.0)[0]
        # every model qualifies: mid has the best win probability per dollar (0.55/1 > 0.9/10 > 0.02/0.1),
        # though small is cheaper (the θ rule on scores alone would pick small)
        assert wide.model == "mid"
        assert wide.details["default"] is True and "per dollar" in wide.reason
        # θ = 0: only the best global model qualifies
        assert decide(pol, [req(tags)], theta=0.0)[0].model == "big"
    # with equal prices the best global record wins at any θ
    d = pol.decide_batch([req([])], catalog({"big": 1.0, "mid": 1.0, "small": 1.0}), RoutingContext(knob=10.0))[0]
    assert d.model == "big"
    # a known tag is not the default
    assert decide(pol, [req(["x"])], theta=10.0)[0].details["default"] is False


def test_without_a_table_it_falls_back_to_the_cheapest() -> None:
    pol = TagRouterPolicy(source=lambda: None)
    d = decide(pol, [req(["python"])])[0]
    assert d.fallback and d.model == "small" and "no tag score table" in d.reason


def test_a_model_without_outcomes_is_never_chosen_on_scores() -> None:
    c = TagCounts()
    c.add_outcomes(rows("python", "mid", 10, 90))
    pol = TagRouterPolicy(TagScorer().table(c))
    # big and small have no outcome at all: only mid is scored
    assert {d.model for d in decide(pol, [req(["python"], i) for i in range(5)], theta=0.0)} == {"mid"}


def training_set() -> TrainingSet:
    rng = np.random.default_rng(0)
    n = 300
    tags = [["python"] if i % 2 else ["poetry"] for i in range(n)]
    q = np.zeros((n, 3))
    for i, t in enumerate(tags):  # big always good; small good on poetry only; mid in between
        q[i] = [0.9, 0.6, 0.85 if t == ["poetry"] else 0.1]
    q = np.clip(q + rng.normal(0, 0.05, q.shape), 0, 1)
    q[0, 2] = np.nan  # unknown, not bad
    return TrainingSet(prompts=[f"p{i}" for i in range(n)], models=["big", "mid", "small"], quality=q,
                       cost=np.ones_like(q), input_tokens=np.full(n, 100), tags=tags)


def test_fit_learns_from_the_training_set_and_grid_spans_the_cost_range(tmp_path: Path) -> None:
    pol = get_policy("tagrouter", config=ScorerConfig())
    assert isinstance(pol, TagRouterPolicy)
    grid_before = pol.knob_grid(21)
    assert len(grid_before) == 21 and grid_before[-1] == 0.0
    pol.fit(training_set(), catalog(), RoutingContext())
    assert pol.table is not None and pol.table.n[pol.table.tags.index("poetry"), 2] == 149
    assert decide(pol, [req(["poetry"])], theta=0.0)[0].model == "big"
    assert decide(pol, [req(["poetry"])], theta=0.3)[0].model == "small"
    assert decide(pol, [req(["python"])], theta=0.3)[0].model == "big"
    grid = pol.knob_grid(21)
    assert len(grid) >= 21 and grid == sorted(grid, reverse=True) and grid[-1] == 0.0
    reqs = [req(["python"], 0), req(["poetry"], 1)]
    assert {d.model for d in decide(pol, reqs, theta=grid[0])} == {"small"}
    # save / load keeps every decision
    pol.save(tmp_path / "t.json")
    again = TagRouterPolicy(config=ScorerConfig())
    again.load(tmp_path / "t.json")
    for theta in grid:
        assert [d.model for d in decide(again, reqs, theta)] == [d.model for d in decide(pol, reqs, theta)]


def test_fit_needs_tags() -> None:
    ts = training_set()
    ts.tags = None
    with pytest.raises(ValueError, match="tags"):
        TagRouterPolicy(config=ScorerConfig()).fit(ts, catalog(), RoutingContext())


def test_exploration_can_try_a_dearer_model_that_was_never_chosen() -> None:
    c = TagCounts()
    c.add_outcomes(rows("python", "small", 50, 50))  # only the cheapest model has a record
    pol = TagRouterPolicy(TagScorer().table(c))
    reqs = [req(["python"], i) for i in range(300)]
    # a generous θ: without exploration everything stays on the cheap model
    assert {d.model for d in pol.decide_batch(reqs, catalog(), RoutingContext(knob=1.0))} == {"small"}
    ds = pol.decide_batch(reqs, catalog(), RoutingContext(knob=1.0, exploration_rate=0.5, seed=3))
    explored = [d for d in ds if d.details["explored"]]
    assert {"big", "mid"} <= {d.model for d in explored}  # Thompson draws ignore θ's cost tolerance
    assert all(d.model == "small" for d in ds if not d.details["explored"])
