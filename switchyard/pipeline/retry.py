"""Retry delays: capped exponential backoff with equal jitter, honouring Retry-After."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base_s: float, max_s: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1 = first retry).

    Equal jitter: uniform in [c/2, c] with c = base·2^(attempt-1), capped. The jitter
    spreads a thundering herd of retries; the floor of c/2 means a retry never comes
    back at once (full jitter from 0 sometimes did, which a fault test caught hammering
    a failing provider). A server's Retry-After is a floor we never undercut.
    """
    r = rng or random
    ceiling = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    delay = r.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(max(delay, 0.0), max(max_s, retry_after or 0.0))
