"""LLM providers: one small Protocol, a registry keyed by the catalog's provider ``kind``."""

from switchyard.providers.base import ChatCall, ChatResult, Provider, build_provider, providers

__all__ = ["ChatCall", "ChatResult", "Provider", "build_provider", "providers"]
