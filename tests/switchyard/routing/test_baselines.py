"""Baselines: cheapest, best, fixed, random mixing and kNN on embeddings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchyard.catalog import Catalog, Model, ProviderConfig
from switchyard.routing.base import RouteRequest, RoutingContext, RoutingOptions, TrainingSet, get_policy
from switchyard.routing.baselines import KnnPolicy, eligibility_matrix, predicted_costs


def catalog() -> Catalog:
    prov = ProviderConfig(name="p", kind="replay", options={"dataset": "unused"})
    return Catalog(providers={"p": prov}, models=[
        Model(id=m, provider="p", usd_per_mtok_input=p, usd_per_mtok_output=p, expected_output_tokens=100)
        for m, p in (("strong", 10.0), ("weak", 0.1), ("other", 1.0))])


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def training_set(n: int = 200) -> TrainingSet:
    """Two clusters of prompts: on cluster A weak is as good as strong, on cluster B it fails."""
    rng = np.random.default_rng(0)
    centers = unit(rng.normal(size=(2, 16)))
    cluster = np.arange(n) % 2
    emb = unit(centers[cluster] + 0.1 * rng.normal(size=(n, 16))).astype(np.float32)
    q = np.zeros((n, 3))
    q[:, 0] = 0.9  # strong
    q[:, 1] = np.where(cluster == 0, 0.9, 0.1)  # weak
    q[:, 2] = 0.5  # other
    q[3, 0] = np.nan  # unknown is skipped, not bad
    return TrainingSet(prompts=[f"p{i}" for i in range(n)], models=["strong", "weak", "other"], quality=q,
                       cost=np.ones_like(q), input_tokens=np.full(n, 100), embeddings=emb)


def requests(train: TrainingSet, n: int = 40) -> list[RouteRequest]:
    assert train.embeddings is not None
    rng = np.random.default_rng(1)
    cluster_of_train = train.embeddings[:2]
    out = []
    for i in range(n):
        e = unit(cluster_of_train[i % 2] + 0.1 * rng.normal(size=16)).astype(np.float32)
        out.append(RouteRequest(id=f"q{i}", prompt=f"q{i}", input_tokens=100, embedding=e))
    return out


def models(policy: object, reqs: list[RouteRequest], knob: float | None = None) -> list[str]:
    return [d.model for d in policy.decide_batch(reqs, catalog(), RoutingContext(knob=knob))]  # type: ignore[attr-defined]


def test_single_point_baselines() -> None:
    train = training_set()
    reqs = requests(train, 4)
    assert set(models(get_policy("cheapest"), reqs)) == {"weak"}
    best = get_policy("best")
    best.fit(train, catalog(), RoutingContext())  # type: ignore[attr-defined]
    assert set(models(best, reqs)) == {"strong"}
    assert set(models(get_policy("fixed:other"), reqs)) == {"other"}
    # a fixed model that a request may not use falls back, and says so
    d = get_policy("fixed:other").decide_batch(
        [RouteRequest(id="x", prompt="x", input_tokens=100, options=RoutingOptions(deny=["other"]))],
        catalog(), RoutingContext())[0]
    assert d.fallback and d.model == "weak"


def test_random_mixing_moves_requests_from_weak_to_strong_as_p_grows() -> None:
    train = training_set()
    pol = get_policy("random")
    pol.fit(train, catalog(), RoutingContext())  # type: ignore[attr-defined]
    reqs = [RouteRequest(id=f"r{i}", prompt="x", input_tokens=100) for i in range(400)]
    grid = pol.knob_grid(21)
    assert len(grid) == 21 and grid[0] == 0.0 and grid[-1] == 1.0
    prev: set[int] = set()
    for p in grid:
        chosen = models(pol, reqs, p)
        assert set(chosen) <= {"strong", "weak"}
        strong = {i for i, m in enumerate(chosen) if m == "strong"}
        assert prev <= strong  # monotone: nobody goes back to weak
        assert abs(len(strong) / 400 - p) < 0.08
        prev = strong
    assert len(prev) == 400


def test_knn_routes_by_neighbourhood() -> None:
    train = training_set()
    pol = get_policy("knn", k=10)
    assert isinstance(pol, KnnPolicy)
    pol.fit(train, catalog(), RoutingContext())
    reqs = requests(train)
    pred = pol.predict(reqs, RoutingContext())
    np.testing.assert_allclose(pred[0], [0.9, 0.9, 0.5], atol=1e-9)  # cluster A
    np.testing.assert_allclose(pred[1], [0.9, 0.1, 0.5], atol=1e-9)  # cluster B
    at0 = models(pol, reqs, 0.0)
    assert at0[0::2] == ["weak"] * 20  # as good as strong and 100x cheaper
    assert at0[1::2] == ["strong"] * 20
    grid = pol.knob_grid(21)
    assert len(grid) >= 21 and grid == sorted(grid, reverse=True) and grid[-1] == 0.0
    assert set(models(pol, reqs, grid[0])) == {"weak"}  # the top of the grid sends everything cheap
    d = pol.decide_batch(reqs[:1], catalog(), RoutingContext(knob=0.0))[0]
    assert d.knob == 0.0 and "nearest" in d.reason and d.ranked[0][1] == pytest.approx(0.9)


def test_knn_respects_constraints_and_round_trips(tmp_path: Path) -> None:
    train = training_set()
    pol = KnnPolicy(k=10)
    pol.fit(train, catalog(), RoutingContext())
    reqs = requests(train, 2)
    reqs[0].options = RoutingOptions(deny=["weak"])
    reqs[1].options = RoutingOptions(allow=["other", "weak"])
    assert models(pol, reqs, 0.0) == ["strong", "other"]
    pol.save(tmp_path / "knn.npz")
    again = KnnPolicy()
    again.load(tmp_path / "knn.npz")
    fresh = requests(train)
    assert models(again, fresh, 0.0) == models(pol, requests(train), 0.0)


def test_knn_leave_one_out_never_uses_the_prompt_itself() -> None:
    train = training_set(20)
    train.quality[:, 1] = 0.0
    train.quality[5, 1] = 1.0  # a single outlier: its own prediction must not see it
    pol = KnnPolicy(k=1)
    pol.fit(train, catalog(), RoutingContext())
    assert pol._train_pred is not None and pol._train_pred[5, 1] == 0.0


def test_batch_helpers() -> None:
    reqs = [RouteRequest(id="a", prompt="x", input_tokens=1000),
            RouteRequest(id="b", prompt="x", input_tokens=1000, options=RoutingOptions(deny=["strong"]))]
    ids = ["strong", "weak", "other"]
    elig = eligibility_matrix(reqs, catalog(), ids)
    assert elig.tolist() == [[True, True, True], [False, True, True]]
    cost = predicted_costs(reqs, catalog(), ids)
    np.testing.assert_allclose(cost[0], [(1000 + 100) * p / 1e6 for p in (10.0, 0.1, 1.0)])
