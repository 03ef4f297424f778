"""Process-wide torch settings, applied once before any model runs."""

from __future__ import annotations

import threading

_done = False
_lock = threading.Lock()


def configure_torch() -> None:
    """Apply ``SWITCHYARD_TORCH_THREADS``. On CPU, two model processes (the gpu-queue worker
    tagging and the dispatch worker generating) with a full-width OpenMP pool each thrash:
    measured here, SmolLM2 fell from 12.8 to 0.8 tokens/s. The embedded mode splits the cores."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
    import os

    from switchyard.config import get_settings

    # Tokenizers' own thread pool deadlocks after fork (prefork workers): keep it off.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    n = get_settings().torch_threads
    if n:
        import torch

        torch.set_num_threads(n)
