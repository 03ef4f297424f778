"""A tiny generic registry: pluggable parts are looked up by a settings string."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from switchyard.errors import UnknownRegistryKey

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a name to a factory. ``kind`` appears in error messages ("tagger", "policy")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def deco(factory: Callable[..., T]) -> Callable[..., T]:
            self._factories[name] = factory
            return factory

        return deco

    def add(self, name: str, factory: Callable[..., T]) -> None:
        self._factories[name] = factory

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories

    def create(self, name: str, **kwargs: object) -> T:
        if ":" in name and name not in self._factories:  # a plugin: "package.module:Factory"
            return self._import(name)(**kwargs)
        try:
            factory = self._factories[name]
        except KeyError:
            raise UnknownRegistryKey(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None
        return factory(**kwargs)

    def _import(self, path: str) -> Callable[..., T]:
        module, _, attr = path.partition(":")
        try:
            factory = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise UnknownRegistryKey(f"cannot load {self.kind} plugin {path!r}: {e}") from None
        self._factories[path] = factory
        return factory
