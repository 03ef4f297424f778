"""Shared dependencies: settings, the catalog, and the caller's API key id."""

from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from switchyard.auth import verify_key
from switchyard.catalog import Catalog
from switchyard.config import Settings, get_settings
from switchyard.pipeline.route import RouteBatcher

_bearer = HTTPBearer(auto_error=False, description="an API key from 'switchyard keys create'")


def settings() -> Settings:
    return get_settings()


@lru_cache(maxsize=4)
def _catalog(path: str | None) -> Catalog:
    return Catalog.load(Path(path) if path else None)


def catalog(s: Settings = Depends(settings)) -> Catalog:
    return _catalog(str(s.catalog_path) if s.catalog_path else None)


_batchers: dict[tuple[int, int], tuple[Settings, Catalog, RouteBatcher]] = {}
_batchers_lock = threading.Lock()


def route_batcher(s: Settings = Depends(settings), cat: Catalog = Depends(catalog)) -> RouteBatcher:
    """One micro-batcher per process (per settings and catalog): concurrent /v1/route calls share it.
    Keyed by identity (settings and catalogs are cached singletons, and not hashable); the entry
    keeps both alive so an id is never reused for another object."""
    with _batchers_lock:
        hit = _batchers.get((id(s), id(cat)))
        if hit is None:
            hit = (s, cat, RouteBatcher(s, cat, max_batch=s.route_max_batch, max_wait_s=s.route_max_wait_ms / 1000))
            _batchers[(id(s), id(cat))] = hit
        return hit[2]


def owner(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
          s: Settings = Depends(settings)) -> str:
    """The key id of the caller; every /v1 route depends on this."""
    key_id = verify_key(s, creds.credentials if creds else None)
    request.state.key_id = key_id
    return key_id
