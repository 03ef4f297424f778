"""Tryage: predicted quality per model traded against flag-weighted attributes, knob lambda."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from switchyard.config import Settings
from switchyard.routing.base import RouteRequest, RoutingOptions, ScoringPolicy, get_policy
from switchyard.routing.quality import TrainConfig, train_policy
from switchyard.routing.tryage import TryagePolicy, pareto_front, pareto_sweep
from tests.switchyard.routing.test_quality import (
    MODELS,
    context,
    hash_embed,
    make_prompts,
    requests_for,
    synthetic_catalog,
    synthetic_train,
    write_dataset,
)

FAST = TrainConfig(epochs=60, patience=8)


@pytest.fixture(scope="module")
def fitted() -> TryagePolicy:
    p = TryagePolicy(ensemble=2, flags={"cost": 1.0}, train_config=FAST)
    p.fit(synthetic_train(), synthetic_catalog(), context())
    return p


@pytest.fixture(scope="module")
def held_out() -> tuple[list[str], list[str]]:
    return make_prompts(60, seed=99)


def test_registered_and_a_scoring_policy() -> None:
    p = get_policy("tryage")
    assert isinstance(p, TryagePolicy) and isinstance(p, ScoringPolicy)
    assert p.knob_name == "lambda"


def test_predicts_each_specialist_on_its_topic(fitted: TryagePolicy, held_out: tuple[list[str], list[str]]) -> None:
    prompts, topics = held_out
    models, q = fitted.predict(requests_for(prompts), context())
    assert models == MODELS
    col = {m: j for j, m in enumerate(models)}
    topics_arr = np.array(topics)
    py, ck = topics_arr == "python", topics_arr == "cooking"
    assert (q[py, col["coder"]] > q[py, col["chef"]]).mean() > 0.9
    assert (q[ck, col["chef"]] > q[ck, col["coder"]]).mean() > 0.9
    assert abs(q[py, col["coder"]].mean() - 0.95) < 0.15 and abs(q[:, col["tiny"]].mean() - 0.32) < 0.15


def test_lambda_trades_quality_for_cost(fitted: TryagePolicy, held_out: tuple[list[str], list[str]]) -> None:
    prompts, topics = held_out
    cat = synthetic_catalog()
    best = [d.model for d in fitted.decide_batch(requests_for(prompts), cat, context(knob=0.0))]
    expect = {"python": "coder", "cooking": "chef", "law": "big"}
    assert np.mean([b == expect[t] for b, t in zip(best, topics, strict=True)]) > 0.9
    cheap = fitted.decide_batch(requests_for(prompts), cat, context(knob=50.0))
    assert {d.model for d in cheap} == {"tiny"}
    d = cheap[0]
    assert d.policy == "tryage" and d.knob == 50.0 and d.ranked[0][0] == "tiny" and not d.fallback
    assert set(d.details["predicted_quality"]) == set(MODELS) and d.details["flags"] == {"cost": 1.0}


def test_request_flags_change_the_choice(fitted: TryagePolicy) -> None:
    cat = synthetic_catalog()
    prompts, _ = make_prompts(30, seed=5)
    cooking = [p for p, t in zip(prompts, make_prompts(30, seed=5)[1], strict=True) if t == "cooking"]
    by_cost = fitted.decide_batch(requests_for(cooking), cat, context(knob=0.3))
    by_age = fitted.decide_batch(requests_for(cooking, flags={"age": 1.0}), cat, context(knob=0.3))
    assert {d.model for d in by_cost} == {"chef"}  # cheap and best on cooking
    assert {d.model for d in by_age} == {"big"}  # chef is the oldest model: the age flag moves it away
    assert by_age[0].details["flags"] == {"age": 1.0}


def test_eligibility_and_untrained_models(fitted: TryagePolicy) -> None:
    cat = synthetic_catalog(newcomer={"usd_per_mtok_input": 0.0, "usd_per_mtok_output": 0.0})
    prompts, _ = make_prompts(9, seed=3)
    ds = fitted.decide_batch(requests_for(prompts, deny=["big", "coder"]), cat, context(knob=0.0))
    assert all(d.model in ("tiny", "chef") for d in ds)  # never denied, never the unscored newcomer
    only_new = fitted.decide_batch(requests_for(prompts[:2], allow=["newcomer"]), cat, context())
    assert all(d.fallback and d.model == "newcomer" and "no eligible model has a quality prediction" in d.reason
               for d in only_new)


def test_knob_grid_spans_cheapest_to_best(fitted: TryagePolicy, held_out: tuple[list[str], list[str]]) -> None:
    grid = fitted.knob_grid(21)
    assert len(grid) >= 21 and grid == sorted(grid, reverse=True) and grid[-1] == 0.0
    cat = synthetic_catalog()
    prompts, _ = held_out
    first = fitted.decide_batch(requests_for(prompts), cat, context(knob=grid[0]))
    assert {d.model for d in first} == {"tiny"}
    shares = [np.mean([d.model == "tiny" for d in fitted.decide_batch(requests_for(prompts), cat, context(knob=k))])
              for k in grid]
    assert shares[-1] == 0.0 and len(set(shares)) >= 4  # the sweep passes through mixed operating points


def test_artifact_roundtrip_and_lazy_load(fitted: TryagePolicy, tmp_path: Path) -> None:
    path = tmp_path / "tryage.pt"
    fitted.save(path)
    loaded = TryagePolicy(artifact=path, flags={"cost": 1.0})
    prompts, _ = make_prompts(12, seed=7)
    assert loaded.ready()  # loads on first use
    a = fitted.predict(requests_for(prompts), context())[1]
    b = loaded.predict(requests_for(prompts), context())[1]
    assert np.allclose(a, b, atol=1e-6)
    missing = TryagePolicy(artifact=tmp_path / "none.pt")
    d = missing.decide_batch(requests_for(prompts[:1]), synthetic_catalog(), context())[0]
    assert d.fallback and "switchyard train tryage" in d.reason and d.model == "tiny"  # the cheapest


def test_training_is_seeded() -> None:
    train, cat = synthetic_train(90), synthetic_catalog()
    prompts, _ = make_prompts(6, seed=11)
    preds = []
    for _ in range(2):
        p = TryagePolicy(ensemble=1, flags={"cost": 1.0}, train_config=FAST)
        p.fit(train, cat, context())
        preds.append(p.predict(requests_for(prompts), context())[1])
    assert np.array_equal(preds[0], preds[1])


@pytest.mark.parametrize("estimator", ["ridge", "blend"])
def test_other_estimators(estimator: str, held_out: tuple[list[str], list[str]]) -> None:
    p = TryagePolicy(estimator=estimator, ensemble=1, flags={"cost": 1.0}, train_config=FAST)  # type: ignore[arg-type]
    p.fit(synthetic_train(), synthetic_catalog(), context())
    prompts, topics = held_out
    ds = p.decide_batch(requests_for(prompts), synthetic_catalog(), context(knob=0.0))
    expect = {"python": "coder", "cooking": "chef", "law": "big"}
    assert np.mean([d.model == expect[t] for d, t in zip(ds, topics, strict=True)]) > 0.8


def test_pareto_front() -> None:
    attr = np.array([1.0, 2.0, 2.0, 3.0, 0.5, np.nan])
    qual = np.array([0.5, 0.7, 0.6, 0.65, 0.2, 0.99])
    assert pareto_front(attr, qual).tolist() == [4, 0, 1]  # (3.0, 0.65) is dominated by (2.0, 0.7)


def test_pareto_sweep_of_size(fitted: TryagePolicy, held_out: tuple[list[str], list[str]]) -> None:
    rep = pareto_sweep(fitted, requests_for(held_out[0]), synthetic_catalog(), context(), "size")
    pts = rep["points"]
    assert rep["flag"] == "size" and len(pts) >= 10
    # Growing lambda never buys a larger mean size, and the front runs from small to large.
    sizes = [p["attribute"] for p in pts]  # lambda descending
    assert all(a <= b + 1e-9 for a, b in itertools.pairwise(sizes))
    front = rep["front"]
    by = {p["label"]: p for p in pts + rep["models"]}
    assert by[front[0]]["attribute"] == pytest.approx(1.0)  # all on "tiny" (1B)
    assert [by[f]["quality"] for f in front] == sorted(by[f]["quality"] for f in front)
    with pytest.raises(ValueError, match="unknown flag"):
        pareto_sweep(fitted, requests_for(["x"]), synthetic_catalog(), context(), "colour")


def test_train_policy_writes_the_artifact_the_live_policy_loads(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds")
    settings = Settings(data_dir=tmp_path / "data")
    path = train_policy("tryage", ds, settings, embed_fn=hash_embed)
    assert path == tmp_path / "data" / "artifacts" / "tryage.pt" and path.is_file()
    live = TryagePolicy(artifact=path, flags={"cost": 1.0})
    d = live.decide_batch([RouteRequest(id="x", prompt="python function loop code bug", input_tokens=50,
                                        options=RoutingOptions())], synthetic_catalog(), context(knob=0.0))[0]
    assert not d.fallback and d.model in ("coder", "big")
