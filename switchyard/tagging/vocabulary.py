"""A versioned, canonical tag vocabulary: build it offline, align live tags to it.

Open taggers say the same thing many ways ("python", "python programming",
"Python code"). TagRouter scores models per tag, so tags must be canonical:

- :func:`build_vocabulary` (offline, on a training set's tags): normalise, count
  (once per prompt), drop rare tags, then merge near-duplicates greedily in
  frequency order, so that each cluster is named by its most frequent surface form.
- :meth:`Vocabulary.align` (online): a known surface form maps through ``aliases``;
  an unseen one maps to the nearest canonical tag by MiniLM cosine when close
  enough; anything else is dropped and *counted*, so vocabulary drift shows up in
  metrics instead of silently degrading routing.

The version is a hash of the content (tags, counts, aliases), so trained scores can
record which vocabulary they were computed against.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from switchyard.embeddings import DIM, prompt_texts
from switchyard.errors import ConfigError
from switchyard.tagging.base import Tagger
from switchyard.tagging.parse import is_clean_tag, normalize_tag
from switchyard.tagging.topics import DEFAULT_LEVELS, TopicModel, fit_topics

Embed = Callable[[Sequence[str]], np.ndarray]
"""texts -> [len(texts), DIM] float32 unit rows (``get_embedder().encode``)."""

FORMAT = "switchyard.vocabulary/1"
# Greedy merging compares a block of tags against all canonicals at once; the block
# bounds the [block, V] similarity matrix held in memory.
_BLOCK = 1024


def default_embed(texts: Sequence[str]) -> np.ndarray:
    from switchyard.embeddings import get_embedder

    return get_embedder().encode(texts)


@dataclass
class AlignResult:
    tags: list[list[str]]
    dropped: int
    dropped_examples: Counter[str]


@dataclass
class Vocabulary:
    tags: list[str]
    counts: dict[str, int]
    aliases: dict[str, str]
    embeddings: np.ndarray  # [V, DIM] float32, unit rows, one per canonical tag
    version: str = ""
    meta: dict[str, object] = field(default_factory=dict)
    topics: TopicModel | None = None  # prompt-neighbourhood tags (see tagging/topics.py)

    def __post_init__(self) -> None:
        self.embeddings = np.asarray(self.embeddings, dtype=np.float32).reshape(len(self.tags), DIM)
        if not self.version:
            self.version = content_version(self.tags, self.counts, self.aliases, self.topics)

    def __len__(self) -> int:
        return len(self.tags)

    # ------------------------------------------------------------------ persistence
    def save(self, path: Path | str) -> Path:
        """Write ``path`` (JSON) and its embeddings next to it (same name, ``.npy``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc: dict[str, object] = {"format": FORMAT, "version": self.version, "tags": self.tags,
                                  "counts": self.counts, "aliases": self.aliases, "meta": self.meta}
        if self.topics is not None:
            doc["topics"] = {"levels": self.topics.levels, "names": self.topics.names}
            np.save(_topics_path(path), self.topics.stacked())
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        np.save(_npy_path(path), self.embeddings)
        return path

    @classmethod
    def load(cls, path: Path | str) -> Vocabulary:
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            embeddings = np.load(_npy_path(path))
            if doc.get("format") != FORMAT:
                raise ValueError(f"unknown format {doc.get('format')!r}")
            topics = None
            if "topics" in doc:
                t = doc["topics"]
                topics = TopicModel.from_stacked(list(t["levels"]), [list(n) for n in t["names"]],
                                                 np.load(_topics_path(path)))
            vocab = cls(list(doc["tags"]), dict(doc["counts"]), dict(doc["aliases"]), embeddings,
                        meta=dict(doc.get("meta", {})), topics=topics)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"cannot load vocabulary {path}: {exc}") from exc
        if vocab.version != doc["version"]:  # hand-edited or mismatched files
            raise ConfigError(f"vocabulary {path} content does not match its version {doc['version']}")
        return vocab

    # -------------------------------------------------------------------- alignment
    def align(self, tag_lists: Sequence[Sequence[str]], threshold: float | None = None,
              embed: Embed | None = None, prompt_embeddings: np.ndarray | None = None) -> AlignResult:
        """Map each prompt's tags to canonical tags; drop and count what matches nothing.

        With topics and ``prompt_embeddings`` ([len(tag_lists), DIM]), each prompt also
        gets its topic tag at every level, after its canonical tags."""
        if threshold is None:
            from switchyard.config import get_settings

            threshold = get_settings().vocab_threshold
        normed = [[normalize_tag(t) if isinstance(t, str) else "" for t in tags] for tags in tag_lists]
        unseen = sorted({t for tags in normed for t in tags if t not in self.aliases and is_clean_tag(t)})
        mapping = self._nearest(unseen, threshold, embed or default_embed)
        out: list[list[str]] = []
        dropped: Counter[str] = Counter()
        for tags in normed:
            row: dict[str, None] = {}  # an ordered set: dedupe per prompt, keep order
            for tag in tags:
                canon = self.aliases.get(tag) or mapping.get(tag)
                if canon is None:
                    dropped[tag] += 1
                else:
                    row[canon] = None
            out.append(list(row))
        if self.topics is not None and prompt_embeddings is not None and len(out):
            for row_tags, topic_tags in zip(out, self.topics.assign(prompt_embeddings), strict=True):
                row_tags.extend(topic_tags)
        return AlignResult(out, sum(dropped.values()), dropped)

    @property
    def wants_embeddings(self) -> bool:
        """Whether :meth:`align` needs the prompts' embeddings (to add topic tags)."""
        return self.topics is not None

    def _nearest(self, unseen: list[str], threshold: float, embed: Embed) -> dict[str, str]:
        """Unseen surface form -> nearest canonical tag with cosine >= threshold."""
        if not unseen or not self.tags:
            return {}
        sims = embed(unseen) @ self.embeddings.T  # [U, DIM] @ [DIM, V] -> [U, V]
        best = sims.argmax(axis=1)  # [U]
        best_sim = sims[np.arange(len(unseen)), best]  # [U]
        return {t: self.tags[b] for t, b, s in zip(unseen, best, best_sim, strict=True) if s >= threshold}


def content_version(tags: Sequence[str], counts: dict[str, int], aliases: dict[str, str],
                    topics: TopicModel | None = None) -> str:
    doc: dict[str, object] = {"tags": list(tags), "counts": counts, "aliases": aliases}
    if topics is not None:
        doc["topics"] = {"levels": topics.levels, "names": topics.names,
                         "centroids": hashlib.sha256(np.round(topics.stacked(), 5).tobytes()).hexdigest()}
    blob = json.dumps(doc, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def _topics_path(path: Path) -> Path:
    return path.with_name(path.name + ".topics.npy") if path.suffix != ".json" else path.with_suffix(".topics.npy")


def _npy_path(path: Path) -> Path:
    return path.with_name(path.name + ".npy") if path.suffix != ".json" else path.with_suffix(".npy")


def count_tags(tag_lists: Sequence[Sequence[str]]) -> Counter[str]:
    """Normalised clean tags, counted once per prompt."""
    counts: Counter[str] = Counter()
    for tags in tag_lists:
        counts.update({t for t in (normalize_tag(x) for x in tags if isinstance(x, str)) if is_clean_tag(t)})
    return counts


def build_vocabulary(tag_lists: Sequence[Sequence[str]], *, min_count: int = 2, merge_threshold: float = 0.85,
                     embed: Embed | None = None, prompt_embeddings: np.ndarray | None = None,
                     topic_levels: Sequence[int] = DEFAULT_LEVELS, min_per_topic: int = 5) -> Vocabulary:
    """Build a canonical vocabulary from many prompts' tags. Deterministic for a given input.

    With ``prompt_embeddings`` ([len(tag_lists), DIM], the same prompts), it also fits
    topic levels (:mod:`switchyard.tagging.topics`); pass ``topic_levels=()`` for none."""
    counts = count_tags(tag_lists)
    # Most frequent first, ties alphabetical: the order decides which form names a cluster.
    kept = sorted((t for t, c in counts.items() if c >= min_count), key=lambda t: (-counts[t], t))
    vecs = (embed or default_embed)(kept) if kept else np.zeros((0, DIM), np.float32)  # [K, DIM]
    owner = greedy_merge(np.asarray(vecs, dtype=np.float32), merge_threshold)  # [K] canonical row per tag
    canonical = [kept[i] for i in range(len(kept)) if owner[i] == i]
    merged: Counter[str] = Counter()
    for i, tag in enumerate(kept):
        merged[kept[owner[i]]] += counts[tag]
    aliases = {tag: kept[owner[i]] for i, tag in enumerate(kept)}
    rows = [i for i in range(len(kept)) if owner[i] == i]
    meta: dict[str, object] = {"min_count": min_count, "merge_threshold": merge_threshold,
                               "surface_forms": len(kept), "prompts": len(tag_lists)}
    topics = None
    if prompt_embeddings is not None and len(topic_levels):
        canon = [[aliases[t] for t in (normalize_tag(x) for x in tags if isinstance(x, str)) if t in aliases]
                 for tags in tag_lists]
        topics = fit_topics(prompt_embeddings, canon, levels=topic_levels, min_per_topic=min_per_topic)
        meta["topic_levels"] = topics.levels if topics else []
    return Vocabulary(canonical, {t: merged[t] for t in canonical}, aliases, vecs[rows], meta=meta, topics=topics)


def greedy_merge(vecs: np.ndarray, threshold: float) -> np.ndarray:
    """Leader clustering in row order: a row joins the most similar earlier leader with
    cosine >= threshold, else leads its own cluster. vecs [K, DIM] unit rows -> owner [K]."""
    k = len(vecs)
    owner = np.arange(k)
    leaders: list[int] = []
    for start in range(0, k, _BLOCK):
        block = np.arange(start, min(start + _BLOCK, k))
        prev = vecs[block] @ vecs[leaders].T if leaders else np.zeros((len(block), 0))  # [b, L]
        inner = vecs[block] @ vecs[block].T  # [b, b]
        new: list[int] = []  # leaders created inside this block, as block offsets
        for j, row in enumerate(block):
            cands = np.concatenate([prev[j], inner[j, new]])  # [L + len(new)]
            if cands.size and cands.max() >= threshold:
                best = int(cands.argmax())
                owner[row] = leaders[best] if best < len(leaders) else block[new[best - len(leaders)]]
            else:
                new.append(j)
        leaders += [int(block[j]) for j in new]
    return owner


def embed_for_topics(vocab: Vocabulary, prompts: Sequence[str]) -> np.ndarray | None:
    """The prompts' MiniLM embeddings [len(prompts), DIM] when ``vocab`` assigns topics, else None."""
    # Cut as the offline tagger cuts them: its encode of this batch is then a cache hit.
    return default_embed(prompt_texts(prompts)) if vocab.wants_embeddings and len(prompts) else None


def canonical_tags(tagger: Tagger, vocab: Vocabulary | None, prompts: Sequence[str],
                   threshold: float | None = None) -> tuple[list[list[str]], int]:
    """Tag ``prompts`` and align to ``vocab``; without one, just normalise. Returns (tags, dropped)."""
    raw = tagger.tag_batch(prompts)
    if vocab is not None:
        result = vocab.align(raw, threshold, prompt_embeddings=embed_for_topics(vocab, prompts))
        return result.tags, result.dropped
    out: list[list[str]] = []
    dropped = 0
    for tags in raw:
        normed = [normalize_tag(t) for t in tags]
        clean = [t for t in normed if is_clean_tag(t)]
        dropped += len(normed) - len(clean)
        out.append(list(dict.fromkeys(clean)))
    return out, dropped
