"""Exact token counts (cl100k_base via quicktok), for validation, sharding and cost."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import quicktok

    return quicktok.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    return len(_encoding().encode(text))


def count_batch(texts: Sequence[str]) -> np.ndarray:
    """Token counts for many texts at once. Shape: [len(texts)] int64."""
    import quicktok

    if not texts:
        return np.zeros(0, dtype=np.int64)
    return np.asarray(quicktok.count_batch(_encoding(), list(texts)), dtype=np.int64)
