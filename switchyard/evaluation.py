"""Offline evaluation: learn from a routing dataset's train split, replay its test split.

(skeleton: feature caches; the harness follows)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

EmbedFn = Callable[[Sequence[str]], np.ndarray]


def _texts_key(texts: Sequence[str]) -> str:
    """A short content hash of ``texts`` (order matters), so subsets never share a cache file."""
    h = hashlib.sha1()
    for t in texts:
        h.update(t.encode("utf-8", "replace"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def cached_embeddings(texts: Sequence[str], *, name: str, cache_dir: Path | None,
                      embed_fn: EmbedFn | None = None) -> np.ndarray:
    """MiniLM embeddings of ``texts``, stored as ``<cache_dir>/embeddings/<name>-<hash>.npy``.

    Shape: [len(texts), 384] float32. ``cache_dir=None`` disables the cache.
    """
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / "embeddings" / f"{name}-{_texts_key(texts)}.npy"
        if path.is_file():
            arr = np.load(path)
            if arr.shape[0] == len(texts):
                return arr.astype(np.float32, copy=False)
    if embed_fn is None:
        from switchyard.embeddings import get_embedder

        embed_fn = get_embedder().encode
    vecs = np.asarray(embed_fn(list(texts)), dtype=np.float32).reshape(len(texts), -1)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, vecs)
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return vecs


def cached_tags(texts: Sequence[str], *, name: str, tagger: str, cache_dir: Path | None,
                tag_fn: Callable[[Sequence[str]], list[list[str]]] | None = None,
                chunk: int = 512) -> list[list[str]]:
    """Raw tags of ``texts`` from ``tagger``, stored as ``<cache_dir>/tags/<name>-<tagger>-<hash>.json``.

    Tagging runs in chunks and the partial result is saved after each, so an
    interrupted run resumes where it stopped.
    """
    path = None
    done: list[list[str]] = []
    if cache_dir is not None:
        path = Path(cache_dir) / "tags" / f"{name}-{tagger}-{_texts_key(texts)}.json"
        if path.is_file():
            done = json.loads(path.read_text(encoding="utf-8"))["tags"]
            if len(done) == len(texts):
                return done
    if tag_fn is None:
        from switchyard.tagging import get_tagger

        tag_fn = get_tagger(tagger).tag_batch
    for start in range(len(done), len(texts), chunk):
        done.extend(tag_fn(list(texts[start:start + chunk])))
        if path is not None:
            _write_json(path, {"tagger": tagger, "n": len(texts), "tags": done})
    return done


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj), encoding="utf-8")
    tmp.replace(path)
