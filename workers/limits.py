"""A per-provider concurrency limit that holds across every dispatch worker.

A Redis sorted set per provider holds one member per in-flight call, scored by its lease
expiry; acquiring is one atomic Lua script (drop expired leases, then add ours if under
the limit). Leases expire on their own, so a killed worker cannot leak a slot forever.
"""

from __future__ import annotations

import contextlib
import random
import time
import uuid
from collections.abc import Iterator

import redis

_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
  return 1
end
return 0
"""


class RedisLimiter:
    def __init__(self, client: redis.Redis, *, lease_s: float = 300.0, wait_s: float = 2.0) -> None:
        self.client = client
        self.lease_s = lease_s
        self.wait_s = wait_s
        self._acquire = client.register_script(_ACQUIRE)

    @contextlib.contextmanager
    def __call__(self, provider: str, limit: int) -> Iterator[bool]:
        key = f"switchyard:inflight:{provider}"
        member = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_s
        got = False
        while True:
            now = time.time()
            if self._acquire(keys=[key], args=[now, now + self.lease_s, limit, member]):
                got = True
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(random.uniform(0.005, 0.03))  # jitter: waiters don't stampede together
        try:
            yield got
        finally:
            if got:
                self.client.zrem(key, member)

    def in_flight(self, provider: str) -> int:
        key = f"switchyard:inflight:{provider}"
        self.client.zremrangebyscore(key, "-inf", time.time())
        return int(self.client.zcard(key))
