from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.catalog import ProviderConfig
from switchyard.datasets import load_dataset
from switchyard.errors import NoAnswer
from switchyard.providers.base import ChatCall
from switchyard.providers.replay import ReplayProvider


def test_replays_recorded_quality_and_cost(shared_data: Path) -> None:
    path = shared_data / "routing" / "routellm_gsm8k"
    ds = load_dataset(path)
    prov = ReplayProvider(ProviderConfig(name="r", kind="replay", options={"dataset": str(path)}))
    p = ds.prompts[0]
    res = prov.complete(ChatCall(model="gpt-4-1106-preview", messages=[{"role": "user", "content": p.prompt}],
                                 max_tokens=10))
    j = ds.model_ids.index("gpt-4-1106-preview")
    assert res.cost_usd == pytest.approx(ds.cost[0, j])
    assert res.body and res.body["replay"]["quality"] == pytest.approx(ds.quality[0, j])
    assert res.prompt_tokens == p.input_tokens


def test_says_clearly_when_it_has_no_answer(shared_data: Path) -> None:
    path = shared_data / "routing" / "routellm_gsm8k"
    prov = ReplayProvider(ProviderConfig(name="r", kind="replay", options={"dataset": str(path)}))
    with pytest.raises(NoAnswer, match="no prompt matching"):
        prov.complete(ChatCall(model="gpt-4-1106-preview", messages=[{"role": "user", "content": "unseen?"}],
                               max_tokens=5))
    first = load_dataset(path).prompts[0].prompt
    with pytest.raises(NoAnswer, match="no recorded answer of 'claude'"):
        prov.complete(ChatCall(model="claude", messages=[{"role": "user", "content": first}], max_tokens=5))
