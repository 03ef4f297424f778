"""cascade: cheapest rung first, escalating while the ridge estimate is below tau."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchyard.routing.base import RouteRequest, get_policy
from switchyard.routing.cascade import CascadePolicy
from tests.switchyard.routing.test_quality import (
    context,
    make_prompts,
    requests_for,
    synthetic_catalog,
    synthetic_train,
)


@pytest.fixture(scope="module")
def fitted() -> CascadePolicy:
    p = CascadePolicy()
    p.fit(synthetic_train(), synthetic_catalog(), context())
    return p


def test_ladder_skips_pricier_models_that_are_not_better(fitted: CascadePolicy) -> None:
    cat = synthetic_catalog()
    r = RouteRequest(id="x", prompt="x", input_tokens=50)
    # coder and chef cost the same; the better-on-average one (chef) is the rung, the other is skipped.
    assert fitted.ladder(r, cat, cat.ids()) == ["tiny", "chef", "big"]
    assert fitted.ladder(r, cat, ["tiny", "coder", "big"]) == ["tiny", "coder", "big"]


def test_tau_moves_requests_up_the_ladder(fitted: CascadePolicy) -> None:
    prompts, topics = make_prompts(60, seed=8)
    cat = synthetic_catalog()
    low = fitted.decide_batch(requests_for(prompts), cat, context(knob=0.0))
    assert {d.model for d in low} == {"tiny"} and low[0].details["rung"] == 0
    high = fitted.decide_batch(requests_for(prompts), cat, context(knob=1.01))
    assert {d.model for d in high} == {"big"} and "top rung" in high[0].reason
    mid = fitted.decide_batch(requests_for(prompts), cat, context(knob=0.7))
    by_topic = {t: [d.model for d, tt in zip(mid, topics, strict=True) if tt == t] for t in set(topics)}
    # The chef rung's estimate is high on cooking only: cooking stops there, the rest escalates to big.
    assert np.mean([m == "chef" for m in by_topic["cooking"]]) > 0.9
    assert np.mean([m == "big" for m in by_topic["python"] + by_topic["law"]]) > 0.9
    d = mid[0]
    assert [s["model"] for s in d.details["ladder"]] == ["tiny", "chef", "big"] and d.knob == 0.7


def test_knob_grid_is_ascending_from_zero(fitted: CascadePolicy) -> None:
    grid = fitted.knob_grid(21)
    assert len(grid) >= 21 and grid == sorted(grid) and grid[0] == 0.0
    assert grid[-1] > max(float(x) for x in fitted._train_rungs)  # type: ignore[union-attr]


def test_eligibility_and_artifact(fitted: CascadePolicy, tmp_path: Path) -> None:
    cat = synthetic_catalog()
    ds = fitted.decide_batch(requests_for(["recipe flour bake"], deny=["tiny"]), cat, context(knob=0.0))
    assert ds[0].model == "chef"  # the cheapest allowed rung
    fitted.save(tmp_path / "c.pt")
    loaded = get_policy("cascade", artifact=tmp_path / "c.pt")
    prompts, _ = make_prompts(12, seed=2)
    a = [d.model for d in fitted.decide_batch(requests_for(prompts), cat, context(knob=0.6))]
    b = [d.model for d in loaded.decide_batch(requests_for(prompts), cat, context(knob=0.6))]
    assert a == b and loaded.knob_grid(21) == fitted.knob_grid(21)
    none = CascadePolicy(artifact=tmp_path / "missing.pt").decide_batch(requests_for(["x"]), cat, context())[0]
    assert none.fallback and "switchyard train cascade" in none.reason
