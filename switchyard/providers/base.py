"""The Provider protocol: one chat call in, one result out (or a domain error raised).

Providers are thread-safe: a dispatch worker calls them from many threads. They
raise :class:`~switchyard.errors.TransientError` for what a retry may fix and
:class:`~switchyard.errors.PermanentError` for what it never will; they never retry
themselves, so retries do not stack with the worker's.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from switchyard.catalog import ProviderConfig
from switchyard.errors import SwitchyardError
from switchyard.registry import Registry


def scrub(e: SwitchyardError, *secrets: str | None) -> SwitchyardError:
    """``e`` with every secret cut out of its message, in place.

    A provider's error body ends up in the job's error file and the worker log; a careless
    provider (or proxy) that quotes the request's Authorization header back would put the
    API key there (found by tests/api/test_secrets.py).
    """
    for secret in secrets:
        if secret and len(secret) >= 6 and secret in e.message:
            e.message = e.message.replace(secret, "[redacted]")
            e.args = (e.message,)
    return e


@dataclass
class ChatCall:
    model: str  # the upstream model name
    messages: list[dict[str, Any]]
    max_tokens: int
    params: dict[str, Any] = field(default_factory=dict)  # temperature, top_p, stop ...
    idempotency_key: str | None = None  # sent where the protocol allows, for safe retries
    timeout_s: float = 120.0


@dataclass
class ChatResult:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    body: dict[str, Any] | None = None  # the provider's own chat.completion, when it has one
    cost_usd: float | None = None  # set when the provider knows the exact cost (replay)


@runtime_checkable
class Provider(Protocol):
    kind: str

    def complete(self, call: ChatCall) -> ChatResult: ...


providers: Registry[Provider] = Registry("provider")
_MODULES = {
    "openai": "switchyard.providers.openai",
    "transformers": "switchyard.providers.transformers",
    "replay": "switchyard.providers.replay",
}
_cache: dict[str, Provider] = {}
_cache_lock = threading.Lock()


def build_provider(config: ProviderConfig) -> Provider:
    """One provider instance per config per process (a local model loads once)."""
    key = config.model_dump_json()
    with _cache_lock:
        prov = _cache.get(key)
        if prov is None:
            if config.kind not in providers and config.kind in _MODULES:
                importlib.import_module(_MODULES[config.kind])
            prov = providers.create(config.kind, config=config)
            _cache[key] = prov
    return prov
