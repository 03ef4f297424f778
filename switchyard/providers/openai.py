"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint (vLLM, Ollama, OpenAI, OpenRouter ...).

Plain httpx with retries off: the dispatch worker owns retries (backoff + jitter),
so they never stack. HTTP status codes map onto the transient/permanent split.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx

from switchyard.catalog import ProviderConfig
from switchyard.errors import (
    ConfigError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderTimeout,
    ProviderUnavailable,
    SwitchyardError,
)
from switchyard.jobs import message_text
from switchyard.providers.base import ChatCall, ChatResult, providers, scrub
from switchyard.tokens import count_tokens


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def raise_for_status(resp: httpx.Response) -> None:
    """Map an error response onto a domain error (never includes the API key)."""
    if resp.status_code < 400:
        return
    snippet = resp.text[:300]
    msg = f"HTTP {resp.status_code} from provider: {snippet}"
    if resp.status_code == 429:
        raise ProviderRateLimited(msg, retry_after=_retry_after(resp))
    if resp.status_code in (408, 409) or resp.status_code >= 500:
        raise ProviderUnavailable(msg, retry_after=_retry_after(resp))
    raise ProviderRejected(msg)


class OpenAIProvider:
    kind = "openai"

    def __init__(self, config: ProviderConfig) -> None:
        if not config.base_url:
            raise ConfigError(f"provider {config.name!r}: an openai provider needs base_url")
        self.config = config
        self._local = threading.local()  # one httpx.Client per thread: connection reuse, no sharing

    def _client(self) -> httpx.Client:
        client = getattr(self._local, "client", None)
        if client is None:
            headers = {}
            if self.config.api_key_env:
                headers["Authorization"] = f"Bearer {self._key() or ''}"
            client = httpx.Client(base_url=(self.config.base_url or "").rstrip("/"), headers=headers,
                                  transport=httpx.HTTPTransport(retries=0))
            self._local.client = client
        return client

    def _key(self) -> str | None:
        return os.environ.get(self.config.api_key_env) if self.config.api_key_env else None

    def complete(self, call: ChatCall) -> ChatResult:
        try:
            return self._complete(call)
        except SwitchyardError as e:  # error messages quote the provider's reply: never the key
            raise scrub(e, self._key()) from None

    def _complete(self, call: ChatCall) -> ChatResult:
        payload: dict[str, Any] = {"model": call.model, "messages": call.messages,
                                   "max_tokens": call.max_tokens, **call.params}
        headers = {"Idempotency-Key": call.idempotency_key} if call.idempotency_key else {}
        timeout = self.config.timeout_s or call.timeout_s
        try:
            resp = self._client().post("/chat/completions", json=payload, headers=headers, timeout=timeout)
        except httpx.TimeoutException as e:
            raise ProviderTimeout(f"provider timed out after {timeout}s ({type(e).__name__})") from None
        except httpx.TransportError as e:
            raise ProviderUnavailable(f"provider unreachable: {type(e).__name__}: {e}") from None
        raise_for_status(resp)
        try:
            body = resp.json()
            choice = body["choices"][0]
            text = message_text(choice["message"].get("content")) or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise ProviderUnavailable(f"provider returned a malformed chat.completion: {resp.text[:200]}") from None
        usage = body.get("usage") or {}
        # Exact counts: the provider's usage when present, else cl100k counts.
        prompt_tokens = usage.get("prompt_tokens")
        if prompt_tokens is None:
            prompt_tokens = sum(count_tokens(message_text(m.get("content"))) for m in call.messages)
        completion_tokens = usage.get("completion_tokens")
        if completion_tokens is None:
            completion_tokens = count_tokens(text)
        return ChatResult(text=text, finish_reason=choice.get("finish_reason") or "stop",
                          prompt_tokens=int(prompt_tokens), completion_tokens=int(completion_tokens), body=body)


providers.add("openai", OpenAIProvider)
