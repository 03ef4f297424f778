"""The openai provider over real HTTP against a local chat-completions server."""

from __future__ import annotations

import pytest

from switchyard.catalog import ProviderConfig
from switchyard.errors import ProviderRateLimited, ProviderRejected, ProviderTimeout, ProviderUnavailable
from switchyard.providers.base import ChatCall
from switchyard.providers.openai import OpenAIProvider
from tests.support.openai_server import OpenAIServer, Reply


def provider(server: OpenAIServer, **kw: object) -> OpenAIProvider:
    return OpenAIProvider(ProviderConfig(name="local", kind="openai", base_url=server.url, **kw))


def call(prompt: str, timeout_s: float = 10) -> ChatCall:
    return ChatCall(model="m1", messages=[{"role": "user", "content": prompt}], max_tokens=8, timeout_s=timeout_s)


def test_success_returns_text_usage_and_body(openai_server: OpenAIServer) -> None:
    res = provider(openai_server).complete(call("hello world"))
    assert res.text == "echo: hello world"
    assert res.prompt_tokens == 2 and res.completion_tokens == 3
    assert res.body and res.body["object"] == "chat.completion"
    assert openai_server.calls[0].model == "m1"


@pytest.mark.parametrize(("reply", "exc"), [
    (Reply(429, retry_after=7), ProviderRateLimited),
    (Reply(500), ProviderUnavailable),
    (Reply(503, retry_after=2), ProviderUnavailable),
    (Reply(400), ProviderRejected),
    (Reply(404), ProviderRejected),
])
def test_status_codes_map_to_transient_or_permanent(openai_server: OpenAIServer, reply: Reply,
                                                    exc: type[Exception]) -> None:
    openai_server.script("p", [reply])
    with pytest.raises(exc) as info:
        provider(openai_server).complete(call("p"))
    if reply.retry_after is not None:
        assert getattr(info.value, "retry_after", None) == reply.retry_after
    assert len(openai_server.calls) == 1  # the provider itself never retries


def test_timeout_is_transient(openai_server: OpenAIServer) -> None:
    openai_server.script("slow", [Reply(200, delay_s=2)])
    with pytest.raises(ProviderTimeout):
        provider(openai_server, timeout_s=0.3).complete(call("slow"))


def test_unreachable_endpoint_is_transient() -> None:
    prov = OpenAIProvider(ProviderConfig(name="x", kind="openai", base_url="http://127.0.0.1:9/v1"))
    with pytest.raises(ProviderUnavailable):
        prov.complete(call("x"))


def test_api_key_is_sent_from_env_and_never_in_errors(openai_server: OpenAIServer,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SY_TEST_KEY", "sk-secret-123")
    openai_server.script("k", [Reply(401)])
    prov = provider(openai_server, api_key_env="SY_TEST_KEY")
    with pytest.raises(ProviderRejected) as info:
        prov.complete(call("k"))
    assert "sk-secret-123" not in str(info.value)
