"""Topic tags: multi-resolution clusters of the training prompts, named by their tags.

Why
---
Open tags name what a prompt is *about* ("fractions", "email writing"), and a tag is
only as useful as the number of prompts that share it: most tags are rare, so their
scores shrink back to each model's global record and a prompt's score barely moves
off the global ranking. The signal a router needs is often *which neighbourhood of
prompts* this one belongs to (harder or easier, longer or shorter kinds of work), and
a single phrase rarely says that. So, like BERTopic (Grootendorst 2022), the
vocabulary also learns **topics**: spherical k-means clusters of the training
prompts' MiniLM embeddings at several resolutions (4, 16, 64, 256 clusters, each
level kept only when it averages at least ``min_per_topic`` prompts per cluster).
Each prompt gets one topic tag per level, so a coarse topic is well estimated and a
fine one is specific; the scorer's shrinkage balances the two exactly as it does for
open tags. A topic is named by the canonical tags most over-represented among its
members ("topic 16.3: fractions, percentages"), so a decision stays readable.

Topics are fitted on the train prompts only (they are part of the vocabulary, which
never sees test prompts) and are deterministic for a given input and seed.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_LEVELS = (4, 16, 64, 256)
_ITERS = 25


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def spherical_kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = _ITERS) -> np.ndarray:
    """Cosine k-means. x [N, D] unit rows -> centroids [k, D] unit rows (k <= N).

    k-means++ seeding on cosine distance, then Lloyd steps; an emptied cluster is
    re-seeded with the point farthest from its centroid, so every centroid owns prompts.
    """
    rng = np.random.default_rng(seed)
    n = len(x)
    cent = np.empty((k, x.shape[1]), dtype=np.float32)
    cent[0] = x[rng.integers(n)]
    dist = 1.0 - x @ cent[0]  # [N]
    for j in range(1, k):
        p = np.maximum(dist, 0.0) ** 2
        cent[j] = x[rng.choice(n, p=p / p.sum()) if p.sum() > 0 else rng.integers(n)]
        dist = np.minimum(dist, 1.0 - x @ cent[j])
    for _ in range(iters):
        sims = x @ cent.T  # [N, k]
        owner = sims.argmax(axis=1)  # [N]
        sums = np.zeros_like(cent)
        np.add.at(sums, owner, x)
        sizes = np.bincount(owner, minlength=k)
        empty = np.nonzero(sizes == 0)[0]
        if len(empty):
            far = np.argsort(sims[np.arange(n), owner])[: len(empty)]
            sums[empty] = x[far]
        new = _unit(sums)
        if np.allclose(new, cent, atol=1e-6):
            break
        cent = new
    return cent


@dataclass
class TopicModel:
    """Topic levels: ``levels[i]`` clusters with names ``names[i]`` and centroids ``centroids[i]`` [k_i, D]."""

    levels: list[int]
    names: list[list[str]]
    centroids: list[np.ndarray]

    def assign(self, embeddings: np.ndarray) -> list[list[str]]:
        """embeddings [B, D] -> one topic tag per level for each prompt."""
        x = _unit(embeddings)
        picks = [(x @ c.T).argmax(axis=1) for c in self.centroids]  # per level: [B]
        return [[self.names[lv][int(p[b])] for lv, p in enumerate(picks)] for b in range(len(x))]

    def stacked(self) -> np.ndarray:
        """All centroids as one [sum k_i, D] array (for saving)."""
        return np.concatenate(self.centroids, axis=0) if self.centroids else np.zeros((0, 0), np.float32)

    @classmethod
    def from_stacked(cls, levels: list[int], names: list[list[str]], stacked: np.ndarray) -> TopicModel:
        bounds = np.cumsum([0, *levels])
        return cls(list(levels), names, [stacked[a:b] for a, b in itertools.pairwise(bounds)])


def fit_topics(embeddings: np.ndarray, tag_lists: Sequence[Sequence[str]], *,
               levels: Sequence[int] = DEFAULT_LEVELS, min_per_topic: int = 5, seed: int = 0) -> TopicModel | None:
    """Fit topic levels on train prompts. embeddings [N, D]; tag_lists: their canonical tags.

    Returns None when even the coarsest level would hold fewer than ``min_per_topic``
    prompts per topic (too little data for topics to mean anything).
    """
    x = _unit(embeddings)
    kept = [k for k in levels if k >= 2 and k * min_per_topic <= len(x)]
    if not kept:
        return None
    overall = Counter(t for tags in tag_lists for t in dict.fromkeys(tags))
    names, cents = [], []
    for k in kept:
        cent = spherical_kmeans(x, k, seed=seed)
        owner = (x @ cent.T).argmax(axis=1)  # [N]
        names.append([_name(k, j, [tag_lists[int(i)] for i in np.nonzero(owner == j)[0]], overall, len(x))
                      for j in range(k)])
        cents.append(cent)
    return TopicModel(kept, names, cents)


def _name(k: int, j: int, members: list[Sequence[str]], overall: Counter[str], n: int) -> str:
    """"topic K.j: a, b": the two tags most over-represented in the topic (lift, seen twice or more)."""
    inside = Counter(t for tags in members for t in dict.fromkeys(tags))
    size = max(len(members), 1)
    lift = sorted(((c / size) / (overall[t] / n), c, t) for t, c in inside.items() if c >= 2)
    top = [t for _, _, t in reversed(lift[-2:])]
    return f"topic {k}.{j}: " + (", ".join(top) if top else "misc")
