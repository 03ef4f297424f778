"""Shared dependencies: settings, the catalog, and the caller's API key id."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from switchyard.auth import verify_key
from switchyard.catalog import Catalog
from switchyard.config import Settings, get_settings

_bearer = HTTPBearer(auto_error=False, description="an API key from 'switchyard keys create'")


def settings() -> Settings:
    return get_settings()


@lru_cache(maxsize=4)
def _catalog(path: str | None) -> Catalog:
    return Catalog.load(Path(path) if path else None)


def catalog(s: Settings = Depends(settings)) -> Catalog:
    return _catalog(str(s.catalog_path) if s.catalog_path else None)


def owner(request: Request, creds: HTTPAuthorizationCredentials | None = Depends(_bearer),
          s: Settings = Depends(settings)) -> str:
    """The key id of the caller; every /v1 route depends on this."""
    key_id = verify_key(s, creds.credentials if creds else None)
    request.state.key_id = key_id
    return key_id
