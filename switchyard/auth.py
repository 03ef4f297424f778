"""API keys: ``sy-<id>-<secret>``. The secret is random, shown once, and stored only as a
SHA-256 hash; a check is one primary-key lookup plus a constant-time compare."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlmodel import col, select

from switchyard.config import Settings
from switchyard.errors import NotFound, PermanentError
from switchyard.store.db import session_scope
from switchyard.store.models import ApiKey, utcnow

PREFIX = "sy"


class AuthError(PermanentError):
    code = "invalid_api_key"


@dataclass(frozen=True)
class NewKey:
    id: str
    name: str
    secret: str  # the full key, to hand to the user once


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_key(settings: Settings, name: str = "") -> NewKey:
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(24)
    with session_scope(settings) as s:
        s.add(ApiKey(id=key_id, name=name, secret_hash=_hash(secret)))
    return NewKey(key_id, name, f"{PREFIX}-{key_id}-{secret}")


def verify_key(settings: Settings, presented: str | None) -> str:
    """The key id of a valid, unrevoked key; :class:`AuthError` otherwise."""
    if not presented:
        raise AuthError("missing API key: send 'Authorization: Bearer sy-...' (create one with "
                        "'switchyard keys create')")
    parts = presented.split("-", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise AuthError("malformed API key: expected 'sy-<id>-<secret>'")
    _, key_id, secret = parts
    with session_scope(settings) as s:
        row = s.get(ApiKey, key_id)
        ok = row is not None and row.revoked_at is None and hmac.compare_digest(row.secret_hash, _hash(secret))
    if not ok:
        raise AuthError("invalid or revoked API key")
    return key_id


def list_keys(settings: Settings) -> list[dict[str, object]]:
    with session_scope(settings) as s:
        return [{"id": k.id, "name": k.name, "created_at": k.created_at.isoformat(),
                 "revoked": k.revoked_at is not None} for k in s.exec(select(ApiKey).order_by(col(ApiKey.created_at)))]


def revoke_key(settings: Settings, key_id: str) -> None:
    with session_scope(settings) as s:
        row = s.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no API key {key_id!r}; 'switchyard keys list' shows them")
        row.revoked_at = row.revoked_at or utcnow()
