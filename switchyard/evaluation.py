"""Offline evaluation: learn from a routing dataset's train split, replay its test split.

``switchyard eval DATASET_DIR --policy tagrouter --policy knn --out report.json``

1. :func:`prepare` loads the dataset and builds, once, everything a policy may
   learn from (:class:`~switchyard.routing.base.TrainingSet` of the **train** split
   only: qualities, costs, MiniLM embeddings, canonical tags) and the test requests
   (prompt, tokens, tags, embedding -- never an outcome). Embeddings and tags are
   cached on disk per (dataset, tagger) because tagging 35k prompts on a CPU takes
   a while.
2. :func:`sweep` fits any registered policy that has ``fit`` and replays the test
   requests at every knob value of its grid (at least 21), with
   ``RoutingOptions(allow=<models known for that prompt>)`` so a model without an
   outcome is never picked (``FORMAT.md``).
3. :func:`summarise` turns the points into APGR, CPT(80%), CPT(95%) and quality at
   the strong model's cost (definitions at :func:`apgr_metrics`).

The report JSON has the shape of issue 3 (``dataset, split, models, oracle,
policies``); ``--online`` adds an ``online`` learning curve.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.catalog import Catalog
from switchyard.datasets import RoutingDataset, load_dataset
from switchyard.routing.base import (
    RouteRequest,
    RoutingContext,
    RoutingOptions,
    RoutingPolicy,
    TrainingSet,
    get_policy,
)
from switchyard.tagging.topics import DEFAULT_LEVELS

log = logging.getLogger(__name__)

EmbedFn = Callable[[Sequence[str]], np.ndarray]
TagFn = Callable[[Sequence[str]], list[list[str]]]
MIN_POINTS = 21


# --- feature caches --------------------------------------------------------------------
def _texts_key(texts: Sequence[str], *extra: str) -> str:
    """A short content hash of ``texts`` (order matters), so subsets never share a cache file."""
    h = hashlib.sha1()
    for t in [*extra, *texts]:
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


@functools.cache
def tagger_fingerprint(tagger: str) -> str:
    """A hash of the tagger's source, the tag parser it normalises with (and the offline
    tagger's label file), so a changed tagger never reuses tags cached from an older one.

    Computed once per process, before the tagger module is first imported by
    :func:`cached_tags`, so it describes the code this process actually runs even if
    the files change on disk later."""
    from switchyard.tagging.base import _MODULES

    h = hashlib.sha1(tagger.encode())
    spec = importlib.util.find_spec(_MODULES[tagger]) if tagger in _MODULES else None
    files = [Path(spec.origin)] if spec is not None and spec.origin else []
    if files:
        files.append(Path(__file__).parent / "tagging" / "parse.py")
    if tagger == "offline":
        files.append(Path(__file__).parent / "data" / "tag_labels.yaml")
    for f in files:
        if f.is_file():
            h.update(f.read_bytes())
    return h.hexdigest()[:10]


def cached_tags(texts: Sequence[str], *, name: str, tagger: str, cache_dir: Path | None,
                tag_fn: TagFn | None = None, chunk: int = 256) -> list[list[str]]:
    """Raw tags of ``texts``, stored as ``<cache_dir>/tags/<name>-<tagger>-<hash>.json``.

    The hash covers the texts and the tagger's source. Tagging runs in chunks and the
    partial result is saved after each, so an interrupted run resumes where it stopped.
    """
    path = None
    done: list[list[str]] = []
    if cache_dir is not None:
        key = _texts_key(texts, tagger_fingerprint(tagger) if tag_fn is None else "custom")
        path = Path(cache_dir) / "tags" / f"{name}-{tagger}-{key}.json"
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


# --- vocabulary ------------------------------------------------------------------------
@dataclass
class VocabParams:
    min_count: int = 2
    merge_threshold: float = 0.85
    align_threshold: float = 0.6
    topic_levels: tuple[int, ...] = DEFAULT_LEVELS  # () = no topic tags (tagging/topics.py)


def canonicalise(train_raw: list[list[str]], other_raw: list[list[str]], params: VocabParams,
                 *, cache: Path | None = None, train_emb: np.ndarray | None = None,
                 other_emb: np.ndarray | None = None) -> tuple[list[list[str]], list[list[str]], Any]:
    """Build the vocabulary (and topics, given the prompts' embeddings) from the train
    split only and align both splits to it.

    Returns (train canonical tags, other canonical tags, vocabulary). The aligned tags
    are cached (aligning embeds every distinct raw tag), keyed by the raw tags and params.
    """
    from switchyard.tagging.vocabulary import build_vocabulary

    vocab = build_vocabulary(train_raw, min_count=params.min_count, merge_threshold=params.merge_threshold,
                             prompt_embeddings=train_emb, topic_levels=params.topic_levels)
    if cache is not None and cache.is_file():
        obj = json.loads(cache.read_text(encoding="utf-8"))
        return obj["train"], obj["other"], vocab
    tr = [list(t) for t in vocab.align(train_raw, threshold=params.align_threshold,
                                       prompt_embeddings=train_emb).tags]
    te = [list(t) for t in vocab.align(other_raw, threshold=params.align_threshold,
                                       prompt_embeddings=other_emb).tags]
    if cache is not None:
        _write_json(cache, {"train": tr, "other": te})
    return tr, te, vocab


# --- preparing a dataset ---------------------------------------------------------------
@dataclass
class EvalData:
    """Everything the harness needs, computed once per dataset."""

    dataset: RoutingDataset
    train_idx: np.ndarray
    test_idx: np.ndarray
    catalog: Catalog
    train: TrainingSet
    requests: list[RouteRequest]  # the test split, without outcomes
    embed_fn: EmbedFn | None = None
    vocabulary: Any = None
    tagger: str = "offline"

    @property
    def models(self) -> list[str]:
        return self.dataset.model_ids

    @property
    def test_quality(self) -> np.ndarray:
        return self.dataset.quality[self.test_idx]

    @property
    def test_cost(self) -> np.ndarray:
        return self.dataset.cost[self.test_idx]


def default_cache_dir() -> Path:
    from switchyard.config import get_settings

    return Path(get_settings().data_dir) / "cache"


def prepare(dataset: str | Path | RoutingDataset, *, tagger: str = "offline", cache_dir: Path | None = None,
            embed_fn: EmbedFn | None = None, tag_fn: TagFn | None = None, embeddings: bool = True,
            vocab: VocabParams | None = None, limit: int | None = None, seed: int = 0,
            canonical: bool = True) -> EvalData:
    """Load ``dataset`` and compute train/test features once.

    ``limit`` keeps a seeded random subset of at most that many prompts per split (tests).
    ``tagger="none"`` skips tagging (for policies that need no tags). ``canonical=False`` uses
    the raw tags as they are, without building a vocabulary (a ``tag_fn`` whose tags are
    already canonical, e.g. keywords; building one embeds every distinct tag).
    """
    ds = dataset if isinstance(dataset, RoutingDataset) else load_dataset(dataset)
    tr, te = ds.split_indices("train"), ds.split_indices("test")
    if limit is not None:
        rng = np.random.default_rng(seed)
        tr = np.sort(rng.permutation(tr)[:limit]) if len(tr) > limit else tr
        te = np.sort(rng.permutation(te)[:limit]) if len(te) > limit else te
    texts = [p.prompt for p in ds.prompts]
    # Features of every prompt (one cache file per dataset), or of the subset only under ``limit``.
    feat = np.arange(len(texts)) if limit is None else np.union1d(tr, te)
    pos = np.full(len(texts), -1, dtype=np.int64)
    pos[feat] = np.arange(len(feat))
    feat_texts = [texts[i] for i in feat]
    emb = None
    if embeddings:
        emb = cached_embeddings(feat_texts, name=ds.name, cache_dir=cache_dir, embed_fn=embed_fn)[pos]
    tags_tr: list[list[str]] | None = None
    tags_te: list[list[str]] = [[] for _ in te]
    vocabulary = None
    if tagger != "none":
        feat_tags = cached_tags(feat_texts, name=ds.name, tagger=tagger, cache_dir=cache_dir, tag_fn=tag_fn)
        raw: dict[int, list[str]] = {int(i): feat_tags[n] for n, i in enumerate(feat)}
        params = vocab or VocabParams()
        raw_tr, raw_te = [raw[i] for i in tr], [raw[i] for i in te]
        emb_tr, emb_te = (emb[tr], emb[te]) if emb is not None else (None, None)
        emb_key = hashlib.sha256(emb_tr.tobytes()).hexdigest()[:16] if emb_tr is not None else "-"
        key = _texts_key([json.dumps(raw_tr), json.dumps(raw_te)], json.dumps(params.__dict__), emb_key)
        canon_cache = Path(cache_dir) / "tags" / f"{ds.name}-{tagger}-canon-{key}.json" if cache_dir else None
        if canonical:
            tags_tr, tags_te, vocabulary = canonicalise(raw_tr, raw_te, params, cache=canon_cache,
                                                        train_emb=emb_tr, other_emb=emb_te)
        else:
            tags_tr, tags_te = [list(t) for t in raw_tr], [list(t) for t in raw_te]
    train = TrainingSet(
        prompts=[texts[i] for i in tr], models=ds.model_ids, quality=ds.quality[tr], cost=ds.cost[tr],
        input_tokens=np.array([ds.prompts[i].input_tokens for i in tr], dtype=np.int64),
        accept_threshold=ds.accept_threshold, tags=tags_tr, embeddings=emb[tr] if emb is not None else None,
    )
    known = ds.known()
    requests = [
        RouteRequest(id=ds.prompts[i].prompt_id, prompt=texts[i], input_tokens=ds.prompts[i].input_tokens,
                     tags=list(tags_te[n]), embedding=emb[i] if emb is not None else None,
                     options=_allow(ds.model_ids, known[i]))
        for n, i in enumerate(te)
    ]
    return EvalData(ds, tr, te, ds.to_catalog(indices=tr), train, requests, embed_fn, vocabulary, tagger)


def _allow(models: list[str], known: np.ndarray) -> RoutingOptions:
    """Only the models with an outcome on this prompt (``FORMAT.md``); no list when all have one."""
    return RoutingOptions() if known.all() else RoutingOptions(allow=[m for m, k in zip(models, known, strict=True)
                                                                      if k])


def validation_dataset(ds: RoutingDataset, *, fold: int = 0, n_folds: int = 5, seed: int = 0) -> RoutingDataset:
    """A copy of ``ds`` for tuning: one fold of the **train** split becomes "test", the other
    folds "train", and the real test split is relabelled ``holdout`` with its outcomes
    blanked (NaN), so nothing tuned on the copy can see a test outcome.

    Folds are a seeded permutation of the train prompts, ``n_folds`` near-equal parts.
    """
    if not 0 <= fold < n_folds:
        raise ValueError(f"fold must be in [0, {n_folds}), not {fold}")
    tr = ds.split_indices("train")
    parts = np.array_split(np.random.default_rng(seed).permutation(tr), n_folds)
    val = set(parts[fold].tolist())
    train_set = set(tr.tolist())
    prompts = [replace(p, split="test" if i in val else "train" if i in train_set else "holdout")
               for i, p in enumerate(ds.prompts)]
    hold = np.array([p.split == "holdout" for p in prompts], dtype=bool)
    quality, cost, out_tok = ds.quality.copy(), ds.cost.copy(), ds.output_tokens.copy()
    quality[hold], cost[hold], out_tok[hold] = np.nan, np.nan, np.nan
    # Same name: the tag and embedding caches (keyed by name and prompt texts) are shared.
    meta = {**ds.meta, "validation": {"fold": fold, "n_folds": n_folds, "seed": seed}}
    return RoutingDataset(ds.path, meta, prompts, ds.models, quality, cost, out_tok)


# --- sweeping a policy -----------------------------------------------------------------
@dataclass
class Point:
    knob: float
    cost_usd: float
    quality: float
    accept_rate: float
    share: dict[str, float]
    choices: list[str] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"knob": self.knob, "cost_usd": self.cost_usd, "quality": self.quality,
                "accept_rate": self.accept_rate, "share": self.share}


def score_choices(data: EvalData, choices: Sequence[str], knob: float) -> Point:
    """Realised test cost and quality of one model per test prompt.

    A chosen model without an outcome on its prompt (impossible through the allow
    list, but a policy may ignore it) counts as quality 0 at no cost, and is logged.
    """
    col = {m: j for j, m in enumerate(data.models)}
    j = np.array([col[m] for m in choices], dtype=np.int64)
    rows = np.arange(len(choices))
    q, c = data.test_quality[rows, j], data.test_cost[rows, j]
    missing = ~np.isfinite(q)
    if missing.any():
        log.warning("%d choices had no outcome; counted as quality 0", int(missing.sum()))
    q, c = np.where(missing, 0.0, q), np.where(missing, 0.0, c)
    counts = Counter(choices)
    n = max(len(choices), 1)
    return Point(knob=float(knob), cost_usd=float(c.sum()), quality=float(q.mean()) if len(q) else 0.0,
                 accept_rate=float((q >= data.dataset.accept_threshold).mean()) if len(q) else 0.0,
                 share={m: counts.get(m, 0) / n for m in data.models}, choices=list(choices))


def make_context(data: EvalData, *, knob: float | None = None, seed: int = 0) -> RoutingContext:
    return RoutingContext(knob=knob, seed=seed, embed_fn=data.embed_fn)


def fit_policy(policy: RoutingPolicy, data: EvalData, seed: int = 0) -> RoutingPolicy:
    fit = getattr(policy, "fit", None)
    if callable(fit):
        fit(data.train, data.catalog, make_context(data, seed=seed))
    return policy


def sweep(policy: RoutingPolicy, data: EvalData, *, n_points: int = MIN_POINTS, seed: int = 0) -> list[Point]:
    """Replay the test split at each knob value (deduplicated, in grid order)."""
    grid = list(dict.fromkeys(float(k) for k in policy.knob_grid(n_points)))
    points = []
    for knob in grid:
        ctx = make_context(data, knob=knob, seed=seed)
        decisions = policy.decide_batch(data.requests, data.catalog, ctx)
        points.append(score_choices(data, [d.model for d in decisions], knob))
    return points


# --- budgets ---------------------------------------------------------------------------
def candidates(policy: RoutingPolicy, data: EvalData, *, knob: float | None = None, seed: int = 0
               ) -> list[list[Any]]:
    """Each test request's candidate list, as a budgeted job sees it: the policy's ``ranked``
    (model, score) pairs with each model's predicted cost (:mod:`switchyard.budget`)."""
    from switchyard.budget import Option

    decisions = policy.decide_batch(data.requests, data.catalog, make_context(data, knob=knob, seed=seed))
    out: list[list[Any]] = []
    for r, d in zip(data.requests, decisions, strict=True):
        ranked = d.ranked or [(d.model, 0.0)]
        out.append([Option(m, float(s), data.catalog.get(m).predicted_cost(r.input_tokens)) for m, s in ranked])
    return out


def budget_sweep(policy: RoutingPolicy, data: EvalData, budgets: Sequence[float], *, seed: int = 0,
                 wave_min: int = 64) -> list[dict[str, Any]]:
    """What each total budget buys on the test split: the budgeted job replayed offline
    (:func:`switchyard.budget.simulate`: plan, dispatch a wave, observe actual costs, re-plan).
    A request the budget cannot cover counts as quality 0."""
    from switchyard.budget import simulate

    cands = candidates(policy, data, seed=seed)
    col = {m: j for j, m in enumerate(data.models)}

    def actual(i: int, model: str) -> tuple[float, float]:
        q, c = data.test_quality[i, col[model]], data.test_cost[i, col[model]]
        return (0.0, 0.0) if not np.isfinite(q) else (float(c), float(q))

    out = []
    for b in budgets:
        res = simulate(cands, float(b), actual, wave_min=wave_min)
        out.append({**res.to_json(), "share": {m: n / max(len(res.choices), 1) for m, n in
                                               Counter(c for c in res.choices if c is not None).items()}})
    return out


def default_budgets(ref: Reference, n: int = 12) -> list[float]:
    """Budgets from the weak model's test cost to the strong model's (geometric spacing)."""
    lo, hi = max(ref.c_weak, 1e-9), max(ref.c_strong, ref.c_weak * 1.0001, 1e-9)
    return [float(x) for x in np.geomspace(lo, hi, n)]


def knob_best_at(points: Sequence[Point], cost: float) -> float | None:
    """The best quality of a knob-curve point costing at most ``cost`` (None if none does)."""
    ok = [p.quality for p in points if p.cost_usd <= cost * (1 + 1e-9) + 1e-12]
    return max(ok) if ok else None


def plot_budget(report: dict[str, Any], path: Path, *, title: str | None = None) -> None:
    """Quality bought by each budget (one curve per policy) over that policy's knob curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.2), dpi=110)
    for i, (name, pol) in enumerate(report["policies"].items()):
        color = f"C{i}"
        pts = sorted(pol["points"], key=lambda p: p["cost_usd"])
        ax.plot([p["cost_usd"] for p in pts], [p["quality"] for p in pts], ls="--", marker=".", lw=1, color=color,
                label=f"{name}: knob curve")
        bud = report.get("budget", {}).get(name)
        if bud:
            ax.plot([b["cost_usd"] for b in bud], [b["quality"] for b in bud], marker="o", lw=1.6, color=color,
                    label=f"{name}: --budget (actual spend)")
    for m, v in report["models"].items():
        ax.scatter([v["cost_usd"]], [v["quality"]], marker="s", s=20, color="black", zorder=5)
        ax.annotate(m.split("/")[-1][:24], (v["cost_usd"], v["quality"]), fontsize=6, xytext=(3, 2),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("total test cost (USD)")
    ax.set_ylabel("mean quality (unserved requests count 0)")
    ax.set_title(title or f"{report['dataset']}: what each budget buys (test split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --- metrics ---------------------------------------------------------------------------
@dataclass
class Reference:
    """The weak (cheapest) and strong (best on test) single models that normalise cost and quality."""

    weak: str
    strong: str
    c_weak: float
    c_strong: float
    q_weak: float
    q_strong: float

    @property
    def flat_cost(self) -> bool:
        """All single models cost the same (routerdc): the cost axis collapses."""
        return abs(self.c_strong - self.c_weak) <= 1e-9 * max(abs(self.c_strong), abs(self.c_weak), 1e-12)


def single_models(data: EvalData) -> dict[str, dict[str, float]]:
    out = {}
    for j, m in enumerate(data.models):
        q = data.test_quality[:, j]
        known = np.isfinite(q)
        out[m] = {"cost_usd": float(np.nansum(data.test_cost[:, j])),
                  "quality": float(q[known].mean()) if known.any() else float("nan"),
                  "accept_rate": float((q[known] >= data.dataset.accept_threshold).mean()) if known.any() else 0.0}
    return out


def oracle(data: EvalData) -> dict[str, float]:
    """Per prompt, the best known quality, bought from the cheapest model that reaches it."""
    q, c = data.test_quality, data.test_cost
    best = np.nanmax(np.where(np.isfinite(q), q, -np.inf), axis=1)
    reach = np.isfinite(q) & (q >= best[:, None] - 1e-12)
    cost = np.where(reach, c, np.inf).min(axis=1)
    ok = np.isfinite(best)
    return {"cost_usd": float(cost[ok].sum()), "quality": float(best[ok].mean()) if ok.any() else float("nan")}


def reference(models: dict[str, dict[str, float]]) -> Reference:
    """Weak = the cheapest model (ties: the lower test quality); strong = the best test quality
    (ties: the cheaper)."""
    weak = min(models, key=lambda m: (models[m]["cost_usd"], models[m]["quality"], m))
    strong = max(models, key=lambda m: (models[m]["quality"], -models[m]["cost_usd"], m))
    return Reference(weak, strong, models[weak]["cost_usd"], models[strong]["cost_usd"],
                     models[weak]["quality"], models[strong]["quality"])


def _upper_envelope(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Upper concave hull of the points, made non-decreasing (spending more never hurts:
    a router can always mix two operating points, and can always stay at a cheaper one)."""
    order = np.lexsort((-y, x))
    hull: list[tuple[float, float]] = []
    for px, py in zip(x[order], y[order], strict=True):
        if hull and px == hull[-1][0]:
            continue  # same x: the first (highest y) was kept
        while len(hull) >= 2:
            (ax, ay), (bx, by) = hull[-2], hull[-1]
            if (bx - ax) * (py - ay) - (by - ay) * (px - ax) >= 0:  # b is on or below a->p
                hull.pop()
            else:
                break
        hull.append((float(px), float(py)))
    hx, hy = np.array([h[0] for h in hull]), np.array([h[1] for h in hull])
    peak = int(np.argmax(hy))
    return hx[: peak + 1], hy[: peak + 1]


def _envelope_at(hx: np.ndarray, hy: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Envelope values; 0 (the weak model's PGR) left of the cheapest point, flat right of the peak."""
    vals = np.interp(xs, hx, hy)
    return np.where(xs < hx[0], 0.0, vals)


def apgr_metrics(points: Sequence[Point], ref: Reference) -> dict[str, float | None]:
    """APGR, CPT(80%), CPT(95%) and the quality reached at the strong model's cost.

    x = (cost - c_weak) / (c_strong - c_weak), PGR = (q - q_weak) / (q_strong - q_weak).
    APGR is the area under the upper envelope (:func:`_upper_envelope`) of PGR over
    x in [0, 1]; random mixing of weak and strong scores 0.5. CPT(p) is the smallest x
    at which the envelope reaches p (None if never).

    Degenerate cases:
      - all models cost the same (``ref.flat_cost``): every point sits at x = 0, so the
        envelope is flat at the best PGR reached: APGR = max PGR (1.0 for the strong
        model alone, above 1 when a router beats it), CPT = 0 when reached;
      - weak and strong have the same quality (the cheapest is the best): PGR is
        undefined and every metric but quality_at_strong_cost is None.
    """
    cost = np.array([p.cost_usd for p in points])
    qual = np.array([p.quality for p in points])
    affordable = cost <= ref.c_strong * (1 + 1e-9) + 1e-12
    out: dict[str, float | None] = {"apgr": None, "cpt80": None, "cpt95": None,
                                    "quality_at_strong_cost": None}
    dq = ref.q_strong - ref.q_weak
    if ref.flat_cost:
        if affordable.any():
            out["quality_at_strong_cost"] = float(qual[affordable].max())
        if dq > 1e-12:
            best = float((qual.max() - ref.q_weak) / dq)
            out["apgr"] = best
            out["cpt80"] = 0.0 if best >= 0.8 else None
            out["cpt95"] = 0.0 if best >= 0.95 else None
        return out
    x = (cost - ref.c_weak) / (ref.c_strong - ref.c_weak)
    qx, qy = _upper_envelope(x, qual)
    out["quality_at_strong_cost"] = float(_envelope_at(qx, qy, np.array([1.0]))[0]) if qx[0] <= 1.0 else None
    if out["quality_at_strong_cost"] is not None and qx[0] > 1.0:
        out["quality_at_strong_cost"] = None
    if dq <= 1e-12:
        return out
    hx, hy = _upper_envelope(x, (qual - ref.q_weak) / dq)
    grid = np.linspace(0.0, 1.0, 2001)
    out["apgr"] = float(np.trapezoid(_envelope_at(hx, hy, grid), grid))
    out["cpt80"], out["cpt95"] = _cpt(hx, hy, 0.8), _cpt(hx, hy, 0.95)
    return out


def _cpt(hx: np.ndarray, hy: np.ndarray, target: float) -> float | None:
    """First x where the piecewise-linear envelope reaches ``target`` (clipped at 0)."""
    if hy.max() < target:
        return None
    i = int(np.argmax(hy >= target))
    if i == 0:
        return max(float(hx[0]), 0.0)
    x0, x1, y0, y1 = hx[i - 1], hx[i], hy[i - 1], hy[i]
    return max(float(x0 + (target - y0) * (x1 - x0) / (y1 - y0)), 0.0)


def cost_to_match(points: Sequence[Point], quality: float) -> float | None:
    """Cheapest total cost at which a point's quality reaches ``quality`` (None if none does)."""
    ok = [p.cost_usd for p in points if p.quality >= quality - 1e-12]
    return min(ok) if ok else None


# --- the whole report ------------------------------------------------------------------
def evaluate(data: EvalData, policy_names: Sequence[str], *, n_points: int = MIN_POINTS, seed: int = 0,
             include_random: bool = True, policy_kwargs: dict[str, dict[str, Any]] | None = None,
             variants: dict[str, tuple[str, dict[str, Any]]] | None = None,
             ) -> tuple[dict[str, Any], dict[str, list[Point]]]:
    """Fit, sweep and summarise every policy. Returns (report JSON, points per policy).

    ``policy_kwargs[name]`` are passed to the policy's constructor. ``variants`` adds
    differently configured policies under their own report names:
    ``{"knn_k20": ("knn", {"k": 20})}``.
    """
    names = list(dict.fromkeys([*policy_names, *(["random"] if include_random else [])]))
    specs: dict[str, tuple[str, dict[str, Any]]] = {n: (n, (policy_kwargs or {}).get(n, {})) for n in names}
    specs.update(variants or {})
    models = single_models(data)
    ref = reference(models)
    report: dict[str, Any] = {"dataset": data.dataset.name, "split": "test", "models": models,
                              "oracle": oracle(data), "policies": {},
                              "reference": {"weak": ref.weak, "strong": ref.strong}}
    all_points: dict[str, list[Point]] = {}
    for name, (registry_name, kwargs) in specs.items():
        policy = get_policy(registry_name, **kwargs)
        fit_policy(policy, data, seed)
        points = sweep(policy, data, n_points=n_points, seed=seed)
        all_points[name] = points
        report["policies"][name] = {**apgr_metrics(points, ref), "points": [p.to_json() for p in points]}
    return _clean(report), all_points


# --- uncertainty ---------------------------------------------------------------------------
def bootstrap_apgr(data: EvalData, points: dict[str, list[Point]], *, pairs: Sequence[tuple[str, str]],
                   n_boot: int = 1000, seed: int = 0) -> dict[str, dict[str, float]]:
    """Paired bootstrap of APGR differences over the test prompts.

    Each resample draws test prompts with replacement, recomputes every sweep point of
    every policy from its stored per-prompt choices, re-reads the weak and strong
    models' cost and quality on the same prompts, and takes APGR. Per pair (a, b):
    the mean difference, its 95% interval and the share of resamples where a > b.
    Test splits of a few hundred prompts move APGR by several hundredths, so a
    difference inside the interval is not evidence either way.
    """
    q = np.where(np.isfinite(data.test_quality), data.test_quality, np.nan)  # [N, M]
    c = np.nan_to_num(data.test_cost)  # [N, M]
    col = {m: j for j, m in enumerate(data.models)}
    ref0 = reference(single_models(data))
    jw, js = col[ref0.weak], col[ref0.strong]
    names = sorted({n for pair in pairs for n in pair})
    # Per policy: [P, N] chosen column of each prompt at each sweep point.
    picks = {n: np.array([[col[m] for m in p.choices] for p in points[n]], dtype=np.int64) for n in names}
    rng = np.random.default_rng(seed)
    n = len(data.test_idx)
    diffs: dict[tuple[str, str], list[float]] = {pair: [] for pair in pairs}
    rows = np.arange(n)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)  # [N] resampled prompt rows
        ref = Reference(ref0.weak, ref0.strong, float(c[idx, jw].sum()), float(c[idx, js].sum()),
                        float(np.nanmean(q[idx, jw])), float(np.nanmean(q[idx, js])))
        apgr: dict[str, float | None] = {}
        for name in names:
            pk = picks[name][:, idx]  # [P, N]
            qq = np.nan_to_num(q[rows[idx][None, :], pk])  # [P, N]; a missing outcome counts 0
            cc = c[rows[idx][None, :], pk]
            pts = [Point(knob=0.0, cost_usd=float(cc[i].sum()), quality=float(qq[i].mean()), accept_rate=0.0,
                         share={}) for i in range(len(pk))]
            apgr[name] = apgr_metrics(pts, ref)["apgr"]
        for a, b in pairs:
            va, vb = apgr[a], apgr[b]
            if va is not None and vb is not None:
                diffs[(a, b)].append(float(va) - float(vb))
    out = {}
    for (a, b), d in diffs.items():
        arr = np.array(d) if d else np.array([np.nan])
        out[f"{a} - {b}"] = {"mean": float(np.mean(arr)), "lo": float(np.percentile(arr, 2.5)),
                             "hi": float(np.percentile(arr, 97.5)), "p_better": float((arr > 0).mean())}
    return out


# --- tuning on the train split ---------------------------------------------------------
@dataclass
class Candidate:
    """One configuration to cross-validate: a policy, its constructor kwargs, and the vocabulary."""

    policy: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    vocab: VocabParams = field(default_factory=VocabParams)


def cross_validate(dataset: str | Path | RoutingDataset, candidates: dict[str, Candidate], *, n_folds: int = 5,
                   seed: int = 0, tagger: str = "offline", cache_dir: Path | None = None,
                   n_points: int = MIN_POINTS, tag_fn: TagFn | None = None,
                   log_fn: Callable[[str], None] | None = None) -> dict[str, dict[str, Any]]:
    """K-fold cross-validation of ``candidates`` on the **train split only**.

    Each fold learns on the other folds and is scored on itself
    (:func:`validation_dataset`: the test split is blanked in the copies, so tuning can
    never see a test outcome). Returns per candidate its APGR per fold and their mean.
    """
    ds = dataset if isinstance(dataset, RoutingDataset) else load_dataset(dataset)
    out: dict[str, dict[str, Any]] = {name: {"folds": []} for name in candidates}
    vocabs = {json.dumps(c.vocab.__dict__, sort_keys=True): c.vocab for c in candidates.values()}
    for fold in range(n_folds):
        vds = validation_dataset(ds, fold=fold, n_folds=n_folds, seed=seed)
        for vkey, vp in vocabs.items():
            data = prepare(vds, tagger=tagger, cache_dir=cache_dir, vocab=vp, tag_fn=tag_fn, seed=seed)
            mine = {n: c for n, c in candidates.items() if json.dumps(c.vocab.__dict__, sort_keys=True) == vkey}
            rep, _ = evaluate(data, [], n_points=n_points, seed=seed, include_random=False,
                              variants={n: (c.policy, dict(c.kwargs)) for n, c in mine.items()})
            for n in mine:
                out[n]["folds"].append(rep["policies"][n]["apgr"])
        if log_fn is not None:
            log_fn(f"fold {fold + 1}/{n_folds} done")
    for res in out.values():
        vals = [v for v in res["folds"] if v is not None]
        res["mean_apgr"] = float(np.mean(vals)) if vals else None
    return out


def best_candidate(results: dict[str, dict[str, Any]], names: Sequence[str]) -> str:
    """The candidate among ``names`` with the highest mean validation APGR (first on ties)."""
    scored = [(results[n]["mean_apgr"] if results[n]["mean_apgr"] is not None else -np.inf, -i, n)
              for i, n in enumerate(names)]
    return max(scored)[2]


# --- online replay ---------------------------------------------------------------------
def online_replay(data: EvalData, *, start: str = "train", refresh_every: int = 100, knob: float | None = None,
                  exploration_rate: float = 0.05, config: Any = None, seed: int = 0,
                  order: str = "dataset") -> dict[str, Any]:
    """Replay the test split as a stream through TagRouter, learning from what it chose.

    - ``start="empty"``: no outcomes at all (every model unseen; only exploration finds
      the good ones). ``start="train"``: the train split imported as outcomes, as
      ``switchyard scores import`` does.
    - Requests arrive in windows of ``refresh_every``. Each window is routed with the
      current table; then the **chosen** model's recorded outcome of each request is fed
      back (nothing else is observed) and the table is rebuilt from the counts: the
      scheduled refresh, run on the pure core (:mod:`switchyard.scoring`), no DB.
    - ``exploration_rate`` of the requests are Thompson-sampled from the cells' spread.

    Returns the learning curve: per window its requests, mean quality, cost, accept
    rate and the share of the strong model, plus running totals, the whole-stream
    summary, the first and last tenth of the stream, and ``static``: the same start
    routed at the same θ without any feedback. ``order="shuffle"`` replays in a
    seeded random order instead of the file's (datasets are often sorted by source,
    which would confound the curve).
    """
    from switchyard.routing.tagrouter import TagRouterPolicy
    from switchyard.scoring import ScorerConfig, TagCounts, TagScorer

    if start not in ("empty", "train"):
        raise ValueError(f"start must be 'empty' or 'train', not {start!r}")
    if refresh_every < 1:
        raise ValueError("refresh_every must be at least 1")
    if data.train.tags is None or any(r.tags is None for r in data.requests):
        raise ValueError("online replay needs tags; prepare the data with a tagger")
    scorer = TagScorer(config or ScorerConfig())
    counts = TagCounts()
    counts._ensure((), data.models)  # keep the dataset's model order; unseen models have empty columns
    if start == "train":
        counts.add_matrix(data.train.tags, data.train.models, data.train.quality)
    policy = TagRouterPolicy(scorer.table(counts, version=0), config=scorer.config)
    theta = float(policy.knob_default if knob is None else knob)
    ctx = RoutingContext(knob=theta, exploration_rate=exploration_rate, seed=seed, embed_fn=data.embed_fn)
    ref = reference(single_models(data))
    col = {m: j for j, m in enumerate(data.models)}
    # The offline point at the same θ (train tables, never refreshed, no exploration): what feedback adds to.
    static = TagRouterPolicy(scorer.table(counts.copy()), config=scorer.config)
    static_pt = score_choices(data, [d.model for d in static.decide_batch(
        data.requests, data.catalog, RoutingContext(knob=theta, seed=seed, embed_fn=data.embed_fn))], theta)
    idx = np.arange(len(data.requests))
    if order == "shuffle":
        idx = np.random.default_rng(seed).permutation(idx)
    windows: list[dict[str, Any]] = []
    stream_q: list[float] = []
    tot_q = tot_c = tot_acc = 0.0
    tot_n = 0
    for w, lo in enumerate(range(0, len(idx), refresh_every)):
        chunk = idx[lo:lo + refresh_every]
        reqs = [data.requests[i] for i in chunk]
        decisions = policy.decide_batch(reqs, data.catalog, ctx)
        j = np.array([col[d.model] for d in decisions], dtype=np.int64)
        q, c = data.test_quality[chunk, j], data.test_cost[chunk, j]
        seen = np.isfinite(q)
        q0, c0 = np.where(seen, q, 0.0), np.where(seen, c, 0.0)
        stream_q.extend(q0.tolist())
        # Feedback: only the chosen model's outcome, then the refresh.
        counts.add([r.tags for r, ok in zip(reqs, seen, strict=True) if ok],
                   [d.model for d, ok in zip(decisions, seen, strict=True) if ok], quality=q[seen])
        policy.table = scorer.table(counts, version=w + 1)
        acc = float((q0 >= data.dataset.accept_threshold).sum())
        tot_q, tot_c, tot_acc, tot_n = tot_q + float(q0.sum()), tot_c + float(c0.sum()), tot_acc + acc, \
            tot_n + len(chunk)
        windows.append({
            "window": w, "requests": int(lo + len(chunk)), "quality": float(q0.mean()),
            "cost_usd": float(c0.sum()), "accept_rate": acc / len(chunk),
            "strong_share": float(np.mean([d.model == ref.strong for d in decisions])),
            "explored": int(sum(bool(d.details.get("explored")) for d in decisions)),
            "cumulative_quality": tot_q / tot_n, "cumulative_cost_usd": tot_c,
            "models_seen": int((policy.table.global_n > 0).sum()), "table_version": w + 1,
        })
    n = max(tot_n, 1)
    tenth = max(1, len(stream_q) // 10)  # first and last tenth of the stream: where the curve began and ended
    return _clean({"policy": "tagrouter", "start": start,
                   "first_tenth_quality": float(np.mean(stream_q[:tenth])) if stream_q else 0.0,
                   "last_tenth_quality": float(np.mean(stream_q[-tenth:])) if stream_q else 0.0,
                   "refresh_every": refresh_every, "knob": theta,
                   "exploration_rate": exploration_rate, "order": order, "requests": tot_n,
                   "quality": tot_q / n, "cost_usd": tot_c, "accept_rate": tot_acc / n,
                   "strong": ref.strong, "strong_quality": ref.q_strong, "strong_cost_usd": ref.c_strong,
                   "static": {"quality": static_pt.quality, "cost_usd": static_pt.cost_usd},
                   "windows": windows})


def _clean(obj: Any) -> Any:
    """NaN/inf -> None so the report is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def write_decisions(path: Path, data: EvalData, all_points: dict[str, list[Point]]) -> None:
    """One JSON line per (policy, knob): the chosen model of every test prompt, by prompt_id."""
    ids = [r.id for r in data.requests]
    with Path(path).open("w", encoding="utf-8") as fh:
        for name, points in all_points.items():
            for p in points:
                fh.write(json.dumps({"policy": name, "knob": p.knob,
                                     "choices": dict(zip(ids, p.choices, strict=True))}) + "\n")


def plot_report(report: dict[str, Any], path: Path, *, title: str | None = None) -> None:
    """Quality-cost curves of every policy plus the single models and the oracle, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    costs = [v["cost_usd"] for v in report["models"].values()]
    if max(costs) - min(costs) <= 1e-9 * max(max(costs), 1e-12):
        _plot_flat(report, path, title)  # every model costs the same: no cost axis to draw
        return
    fig, ax = plt.subplots(figsize=(10.5, 5.5), dpi=110)
    for name, pol in report["policies"].items():
        pts = sorted(pol["points"], key=lambda p: p["cost_usd"])
        apgr = pol.get("apgr")
        label = f"{name} (APGR {apgr:.3f})" if isinstance(apgr, float) else name
        ax.plot([p["cost_usd"] for p in pts], [p["quality"] for p in pts], marker=".", lw=1.2, label=label,
                ls="--" if name == "random" else "-")
    for m, v in report["models"].items():
        ax.scatter([v["cost_usd"]], [v["quality"]], marker="s", s=28, color="black", zorder=5)
        ax.annotate(m.split("/")[-1][:28], (v["cost_usd"], v["quality"]), fontsize=6, xytext=(3, 2),
                    textcoords="offset points")
    o = report["oracle"]
    ax.scatter([o["cost_usd"]], [o["quality"]], marker="*", s=90, color="gold", edgecolor="black", zorder=6,
               label="oracle")
    if max(costs) > 20 * max(min(costs), 1e-12):
        ax.set_xscale("log")
    ax.set_xlabel("total test cost (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title(title or f"{report['dataset']} (test split)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def _plot_flat(report: dict[str, Any], path: Path, title: str | None) -> None:
    """Equal prices (routerdc): bars of test quality for each policy's best point, each model, the oracle."""
    import matplotlib.pyplot as plt

    rows = [(f"{n} (APGR {p['apgr']:.3f})" if isinstance(p.get("apgr"), float) else n,
             max(pt["quality"] for pt in p["points"]), "tab:blue") for n, p in report["policies"].items()]
    rows += [(m.split("/")[-1], v["quality"], "0.55") for m, v in report["models"].items()]
    rows.append(("oracle", report["oracle"]["quality"], "gold"))
    rows.sort(key=lambda r: r[1])
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2), dpi=110)
    ax.barh([r[0] for r in rows], [r[1] for r in rows], color=[r[2] for r in rows])
    for i, r in enumerate(rows):
        ax.text(r[1], i, f" {r[1]:.4f}", va="center", fontsize=7)
    ax.set_xlabel("mean test quality (every model costs the same here: blue = policies, grey = single models)")
    ax.set_title(title or f"{report['dataset']} (test split)")
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)

