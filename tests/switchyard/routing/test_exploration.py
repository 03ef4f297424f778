"""Exploration: only the chosen model's outcome is observed online, so a share of decisions
is Thompson-sampled and a never-chosen model can still earn its first outcome rows."""

from __future__ import annotations

from switchyard.catalog import Catalog, Model, ProviderConfig
from switchyard.routing.base import RouteRequest, RoutingContext
from switchyard.routing.tagrouter import TagRouterPolicy
from switchyard.scoring import TagCounts, TagScorer


def catalog() -> Catalog:
    prov = ProviderConfig(name="p", kind="replay", options={"dataset": "unused"})
    return Catalog(providers={"p": prov}, models=[
        Model(id=m, provider="p", usd_per_mtok_input=price, usd_per_mtok_output=price)
        for m, price in (("a", 1.0), ("b", 2.0), ("newcomer", 1.5))])


def policy() -> TagRouterPolicy:
    counts = TagCounts()
    counts.add([["python"]] * 40, ["a"] * 20 + ["b"] * 20, verdicts=["win"] * 20 + ["loss"] * 20)
    return TagRouterPolicy(TagScorer().table(counts))


def decide(rate: float, n: int = 200) -> list[str]:
    reqs = [RouteRequest(id=str(i), prompt="p", tags=["python"], input_tokens=10) for i in range(n)]
    ctx = RoutingContext(knob=0.0, exploration_rate=rate, seed=0)
    return [d.model for d in policy().decide_batch(reqs, catalog(), ctx)]


def test_without_exploration_an_unseen_model_is_never_chosen() -> None:
    assert set(decide(0.0)) == {"a"}


def test_exploration_gives_an_unseen_model_a_chance_and_says_so() -> None:
    reqs = [RouteRequest(id=str(i), prompt="p", tags=["python"], input_tokens=10) for i in range(200)]
    ctx = RoutingContext(knob=0.0, exploration_rate=0.5, seed=1)
    decisions = policy().decide_batch(reqs, catalog(), ctx)
    explored = [d for d in decisions if d.details["explored"]]
    assert 60 < len(explored) < 140  # about half
    assert any(d.model == "newcomer" for d in explored)
    assert all(d.model == "a" for d in decisions if not d.details["explored"])
    assert all("Thompson" in d.reason for d in explored if d.model != "a")
