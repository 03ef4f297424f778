"""mf: RouteLLM-style matrix factorisation (prompt projection x model embedding), knob lambda."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchyard.routing.base import ScoringPolicy, get_policy
from switchyard.routing.mf import MFPolicy
from switchyard.routing.quality import TrainConfig
from tests.switchyard.routing.test_quality import (
    context,
    hash_embed,
    make_prompts,
    requests_for,
    synthetic_catalog,
    synthetic_train,
)


@pytest.fixture(scope="module")
def fitted() -> MFPolicy:
    p = MFPolicy(rank=16, flags={"cost": 1.0}, train_config=TrainConfig(epochs=120, patience=15, lr=5e-3))
    p.fit(synthetic_train(), synthetic_catalog(), context())
    return p


def test_registered_with_a_lambda_knob() -> None:
    p = get_policy("mf")
    assert isinstance(p, MFPolicy) and isinstance(p, ScoringPolicy) and p.knob_name == "lambda"


def test_factorisation_separates_the_specialists(fitted: MFPolicy) -> None:
    prompts, topics = make_prompts(60, seed=42)
    ds = fitted.decide_batch(requests_for(prompts), synthetic_catalog(), context(knob=0.0))
    expect = {"python": "coder", "cooking": "chef", "law": "big"}
    assert np.mean([d.model == expect[t] for d, t in zip(ds, topics, strict=True)]) > 0.8
    cheap = fitted.decide_batch(requests_for(prompts), synthetic_catalog(), context(knob=fitted.knob_grid(21)[0]))
    assert {d.model for d in cheap} == {"tiny"}
    assert all(d.policy == "mf" and not d.fallback for d in ds)


def test_mf_artifact_roundtrip(fitted: MFPolicy, tmp_path: Path) -> None:
    fitted.save(tmp_path / "mf.pt")
    loaded = MFPolicy(artifact=tmp_path / "mf.pt", flags={"cost": 1.0})
    prompts, _ = make_prompts(9, seed=1)
    assert loaded.ready()
    assert np.allclose(loaded.predict(requests_for(prompts), context())[1],
                       fitted.predict(requests_for(prompts), context())[1], atol=1e-6)


def test_untrained_mf_falls_back() -> None:
    d = MFPolicy(artifact=Path("/nonexistent/mf.pt")).decide_batch(requests_for(["x"]), synthetic_catalog(),
                                                                   context())[0]
    assert d.fallback and "switchyard train mf" in d.reason


@pytest.mark.parametrize("policy_name", ["mf", "tryage"])
def test_without_prompt_signal_the_better_model_wins(policy_name: str) -> None:
    """Noise-only outcomes: the per-model bias must carry the mean (0.9 vs 0.3), so the
    penalty-free choice is the better model almost everywhere, even after early stopping."""
    from switchyard.routing.base import TrainingSet

    rng = np.random.default_rng(0)
    prompts, _ = make_prompts(300, seed=21)
    q = np.column_stack([rng.binomial(1, 0.9, 300), rng.binomial(1, 0.3, 300)]).astype(float)
    train = TrainingSet(prompts=prompts, models=["tiny", "big"], quality=q[:, ::-1], cost=np.full(q.shape, 1e-4),
                        input_tokens=np.full(300, 50, dtype=np.int64), embeddings=hash_embed(prompts))
    cat = synthetic_catalog()
    pol = get_policy(policy_name, flags={"cost": 1.0})
    pol.fit(train, cat, context())  # type: ignore[attr-defined]
    held, _ = make_prompts(60, seed=22)
    ds = pol.decide_batch(requests_for(held, allow=["tiny", "big"]), cat, context(knob=0.0))
    assert np.mean([d.model == "big" for d in ds]) > 0.95
