"""Retry delays: capped exponential backoff with full jitter, honouring Retry-After."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, *, base_s: float, max_s: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1 = first retry).

    Full jitter (uniform in [0, base·2^(attempt-1)], capped) spreads a thundering herd of
    retries; a server's Retry-After is a floor we never undercut.
    """
    r = rng or random
    ceiling = min(max_s, base_s * (2 ** max(0, attempt - 1)))
    delay = r.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(max(delay, 0.0), max(max_s, retry_after or 0.0))
