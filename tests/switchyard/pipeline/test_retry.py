import random

from switchyard.pipeline.retry import backoff_delay


def test_backoff_grows_is_capped_and_jittered() -> None:
    rng = random.Random(1)
    firsts = [backoff_delay(1, base_s=1, max_s=60, rng=rng) for _ in range(200)]
    late = [backoff_delay(10, base_s=1, max_s=60, rng=rng) for _ in range(200)]
    assert all(0.5 <= d <= 1 for d in firsts) and len(set(firsts)) > 150  # jitter, not a constant
    assert all(30 <= d <= 60 for d in late) and max(late) > 50  # capped; never back at once


def test_retry_after_is_a_floor() -> None:
    rng = random.Random(2)
    assert all(backoff_delay(1, base_s=0.1, max_s=60, retry_after=3, rng=rng) >= 3 for _ in range(50))
    # A Retry-After above our own cap still wins: the server said so.
    assert backoff_delay(1, base_s=0.1, max_s=1, retry_after=5, rng=rng) == 5
