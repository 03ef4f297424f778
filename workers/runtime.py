"""Per-process state of a worker: settings, catalog and Redis, loaded once."""

from __future__ import annotations

from functools import lru_cache

import redis

from switchyard.catalog import Catalog
from switchyard.config import get_settings
from workers.app import broker_url


@lru_cache(maxsize=1)
def catalog() -> Catalog:
    return Catalog.load(get_settings().catalog_path)


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    """A redis-py client on the broker's Redis (TCP URL or the embedded unix socket)."""
    url = broker_url(get_settings())
    if url.startswith("redis+socket://"):
        return redis.Redis(unix_socket_path=url[len("redis+socket://"):])
    return redis.Redis.from_url(url)
