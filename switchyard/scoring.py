"""TagScorer: tag x model outcome counts -> a dense score table. Pure numpy.

Counts
    For every canonical tag ``t`` and model ``M`` we keep five numbers (the columns
    of :data:`COUNT_FIELDS`): ``n_win, n_tie, n_loss`` (verdicts from a judge or a
    user) and ``q_sum, q_count`` (scalar quality in [0, 1]). Every outcome is also
    counted under the reserved tag :data:`GLOBAL_TAG` (``"*"``), which gives each
    model's global record and the total that the tag weights are relative to. A new
    model needs nothing but outcome rows: its column appears the first time one of
    its outcomes is counted.

Reward of one outcome
    A verdict earns ``s_win``, ``s_tie`` or ``s_loss`` (defaults 1, 0.15, -1, from the
    settings). A scalar quality ``q`` is read as a *soft* verdict against a reference
    answer: a win with probability ``q`` and a loss with probability ``1 - q``, so it
    earns ``s_loss + q * (s_win - s_loss)``. This fits every routing dataset we use:
    AlpacaEval's quality literally is P(answer beats the reference), and a 0/1
    correctness is a hard win/loss against a reference that is right half the time.
    Because every model is scored on the same prompts, the common difficulty of a
    tag cancels when models are compared, so no per-prompt "who was best" mapping is
    needed (:func:`pairwise_verdicts` offers that mapping for judge-style data).

Score of a cell
    ``rate(M, t) = (R(M, t) + k * g_M) / (n(M, t) + k)`` where ``R`` is the summed
    reward, ``n`` the number of outcomes and ``g_M`` the model's global rate: a
    Bayesian average with prior strength ``k`` (``prior_strength``), so a tag seen
    twice barely moves a model away from its global record. Dividing by ``n``
    normalises the counts: a tag with 5,000 outcomes does not outweigh one with 50.
    ``score(M, t) = w_t * rate(M, t)``, the paper's ``w_t * (n_win s_win + n_tie
    s_tie + n_loss s_loss)`` with the counts turned into a shrunk rate.

Tag weight ``w_t`` (a frequency weight; ``weighting`` in the config)
    ``idf`` (default): ``w_t = log(1 + N / n_t)`` with ``N`` the number of outcomes
    overall and ``n_t`` those under ``t``; a tag present on every prompt (it says
    nothing about the prompt) weighs ``log 2``, a tag on 1% of the prompts
    ``log 101``. The opposite view, that a frequent tag's rate is the better
    estimated one, gives ``log_count``: ``w_t = log(1 + n_t / M)`` (``n_t / M`` is
    about the number of prompts with the tag, M models), and ``evidence``:
    ``w_t = (n_t / M) / (n_t / M + k)``, the share of the cell's rate that is data
    rather than prior. ``uniform``: every tag weighs 1. Which one routes best depends
    on the tagger and the data; ``benchmarks/eval_all.py`` picks it per dataset by
    cross-validation on the train split (docs/evaluation.md).

Aggregation
    ``S(M, q) = sum_t score(M, t)`` over the request's known tags. The decider works
    on ``S / sum_t w_t`` -- the weighted mean rate, on the reward scale -- so that a
    prompt with twelve tags is not "more certain" than one with three, and one θ
    grid fits every prompt. :meth:`ScoreTable.aggregate` does this for a whole
    batch with one scatter-add over the flattened (request, tag) index arrays.

Uncertainty (for exploration)
    ``std(M, t) = sigma / sqrt(n(M, t) + k)`` with ``sigma = (s_win - s_loss) / 2``,
    the largest standard deviation a reward can have. Summed tags combine as
    independent Gaussians, so Thompson sampling needs one draw per (request, model).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from itertools import chain, repeat
from typing import Any, Literal

import numpy as np

GLOBAL_TAG = "*"
COUNT_FIELDS = ("n_win", "n_tie", "n_loss", "q_sum", "q_count")
_WIN, _TIE, _LOSS, _QSUM, _QCOUNT = range(5)
VERDICTS = {"win": _WIN, "tie": _TIE, "loss": _LOSS}


@dataclass(frozen=True)
class ScorerConfig:
    """Knobs of the scorer. Defaults are the ones the evaluation in docs/evaluation.md used."""

    s_win: float = 1.0
    s_tie: float = 0.15
    s_loss: float = -1.0
    prior_strength: float = 20.0  # k: pseudo-outcomes at the model's global rate
    weighting: Literal["idf", "uniform", "evidence", "log_count"] = "idf"
    # How a prompt's tags combine: "mean" = weighted mean of the tags' rates; "sum" = the
    # model's global rate plus the summed (weighted) deviations of its tags from it, so
    # several informative tags add up instead of being averaged away (naive-Bayes style).
    aggregate: Literal["mean", "sum"] = "mean"

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> ScorerConfig:
        base = cls(s_win=float(settings.s_win), s_tie=float(settings.s_tie), s_loss=float(settings.s_loss))
        return replace(base, **overrides)

    @property
    def sigma(self) -> float:
        return max(abs(self.s_win - self.s_loss) / 2.0, 1e-9)

    def to_json(self) -> dict[str, Any]:
        return {"s_win": self.s_win, "s_tie": self.s_tie, "s_loss": self.s_loss,
                "prior_strength": self.prior_strength, "weighting": self.weighting, "aggregate": self.aggregate}


# --- counts --------------------------------------------------------------------------
@dataclass
class TagCounts:
    """Outcome counts per (tag, model). ``arr[t, m]`` holds the five :data:`COUNT_FIELDS`.

    Row 0 is always :data:`GLOBAL_TAG`. Grows as new tags and models appear.
    """

    tags: list[str] = field(default_factory=lambda: [GLOBAL_TAG])
    models: list[str] = field(default_factory=list)
    arr: np.ndarray = field(default_factory=lambda: np.zeros((1, 0, 5)))

    def __post_init__(self) -> None:
        if not self.tags or self.tags[0] != GLOBAL_TAG:
            raise ValueError(f"row 0 of TagCounts must be the global tag {GLOBAL_TAG!r}")
        self._tag_ix = {t: i for i, t in enumerate(self.tags)}
        self._model_ix = {m: j for j, m in enumerate(self.models)}

    def copy(self) -> TagCounts:
        return TagCounts(list(self.tags), list(self.models), self.arr.copy())

    def _ensure(self, tags: Iterable[str], models: Iterable[str]) -> None:
        new_t = [t for t in dict.fromkeys(tags) if t not in self._tag_ix]
        new_m = [m for m in dict.fromkeys(models) if m not in self._model_ix]
        if not new_t and not new_m:
            return
        for t in new_t:
            self._tag_ix[t] = len(self.tags)
            self.tags.append(t)
        for m in new_m:
            self._model_ix[m] = len(self.models)
            self.models.append(m)
        grown = np.zeros((len(self.tags), len(self.models), 5))
        grown[: self.arr.shape[0], : self.arr.shape[1]] = self.arr
        self.arr = grown

    def add(self, tags: Sequence[Sequence[str]], models: Sequence[str],
            verdicts: Sequence[str | None] | None = None,
            quality: Sequence[float | None] | np.ndarray | None = None,
            weight: Sequence[float] | np.ndarray | None = None) -> None:
        """Count outcomes, one per index: ``tags[i]`` x ``models[i]`` with a verdict and/or a quality.

        An unknown verdict (``"unparseable"``) and a NaN quality count nothing.
        """
        n = len(models)
        vals = np.zeros((n, 5))
        if verdicts is not None:
            for i, v in enumerate(verdicts):  # per outcome, not per tag: the fold, not the hot path
                col = VERDICTS.get(v or "")
                if col is not None:
                    vals[i, col] = 1.0
        if quality is not None:
            q = np.array([np.nan if x is None else float(x) for x in quality], dtype=np.float64)
            ok = np.isfinite(q)
            vals[ok, _QSUM] = np.clip(q[ok], 0.0, 1.0)
            vals[ok, _QCOUNT] = 1.0
        if weight is not None:
            vals *= np.asarray(weight, dtype=np.float64)[:, None]
        self._scatter(tags, models, vals)

    def add_outcomes(self, rows: Iterable[Mapping[str, Any] | Any], *,
                     thresholds: tuple[float, float] | None = None) -> int:
        """Count outcome rows, each ``{"tags": [...], "model": str, "verdict": "win"|"tie"|"loss"|None,
        "quality": float|None}`` (a mapping or an object with those attributes; ``weight``
        optional, default 1). Returns how many rows counted something.

        ``thresholds=(lo, hi)`` maps a scalar quality to a verdict instead of a soft one:
        ``q >= hi`` wins, ``q < lo`` loses, anything between ties (:func:`quality_verdict`).
        A row with both counts once, as its verdict. Rows with neither (or an unknown
        verdict such as ``"unparseable"``) count nothing.
        """
        tags: list[list[str]] = []
        models: list[str] = []
        verdicts: list[str | None] = []
        quality: list[float | None] = []
        weights: list[float] = []
        for row in rows:
            get = row.get if isinstance(row, Mapping) else (lambda k, d=None, r=row: getattr(r, k, d))
            model = get("model")
            if not model:
                continue
            v, q = get("verdict"), get("quality")
            q = None if q is None or not math.isfinite(float(q)) else float(q)
            if VERDICTS.get(v or "") is not None:
                q = None  # one outcome counts once: a verdict beats a quality
            elif q is not None and thresholds is not None:
                v, q = quality_verdict(q, *thresholds), None
            else:
                v = None
            if v is None and q is None:
                continue
            tags.append([str(t) for t in (get("tags") or [])])
            models.append(str(model))
            verdicts.append(v)
            quality.append(q)
            weights.append(float(get("weight", 1.0) if get("weight", 1.0) is not None else 1.0))
        if models:
            self.add(tags, models, verdicts=verdicts, quality=quality, weight=weights)
        return len(models)

    def add_matrix(self, tags: Sequence[Sequence[str]], models: Sequence[str], quality: np.ndarray) -> None:
        """Count a dense [N, M] quality matrix (NaN = unknown) of N prompts with ``tags``."""
        rows, cols = np.nonzero(np.isfinite(quality))
        self.add([tags[i] for i in rows.tolist()], [models[j] for j in cols.tolist()], quality=quality[rows, cols])

    def _scatter(self, tags: Sequence[Sequence[str]], models: Sequence[str], vals: np.ndarray) -> None:
        self._ensure((t for ts in tags for t in ts), models)
        m_idx = np.array([self._model_ix[m] for m in models], dtype=np.int64)
        live = vals.any(axis=1)
        # The global row gets every outcome once; each outcome's tags get it once per distinct tag.
        np.add.at(self.arr, (np.zeros_like(m_idx[live]), m_idx[live]), vals[live])
        uniq = [list(dict.fromkeys(t for t in ts if t != GLOBAL_TAG)) for ts in tags]
        lens = np.array([len(u) for u in uniq], dtype=np.int64)
        if lens.sum() == 0:
            return
        t_idx = np.array([self._tag_ix[t] for u in uniq for t in u], dtype=np.int64)
        owner = np.repeat(np.arange(len(models)), lens)
        np.add.at(self.arr, (t_idx, m_idx[owner]), vals[owner])

    def merge(self, other: TagCounts) -> TagCounts:
        out = self.copy()
        out._ensure(other.tags, other.models)
        ti = np.array([out._tag_ix[t] for t in other.tags], dtype=np.int64)
        mi = np.array([out._model_ix[m] for m in other.models], dtype=np.int64)
        out.arr[np.ix_(ti, mi)] += other.arr
        return out

    # --- plain-data round trip (the store's ScoreCell rows) ----------------------------
    def to_cells(self) -> list[dict[str, Any]]:
        t, m = np.nonzero(self.arr.any(axis=2))
        return [{"tag": self.tags[i], "model": self.models[j],
                 **{f: float(self.arr[i, j, k]) for k, f in enumerate(COUNT_FIELDS)}}
                for i, j in zip(t, m, strict=True)]

    @classmethod
    def from_cells(cls, cells: Iterable[dict[str, Any]]) -> TagCounts:
        cells = list(cells)
        out = cls()
        out._ensure((c["tag"] for c in cells if c["tag"] != GLOBAL_TAG), (c["model"] for c in cells))
        if cells:
            ti = np.array([out._tag_ix[c["tag"]] for c in cells], dtype=np.int64)
            mi = np.array([out._model_ix[c["model"]] for c in cells], dtype=np.int64)
            out.arr[ti, mi] = np.array([[float(c[f]) for f in COUNT_FIELDS] for c in cells])
        return out

    @property
    def n_outcomes(self) -> float:
        return float(self.arr[0, :, [_WIN, _TIE, _LOSS, _QCOUNT]].sum())


def quality_verdict(q: float, lo: float, hi: float) -> str:
    """A scalar quality as a verdict: ``win`` at ``q >= hi``, ``loss`` below ``lo``, else ``tie``."""
    if lo > hi:
        raise ValueError(f"thresholds must have lo <= hi, got ({lo}, {hi})")
    return "win" if q >= hi else "loss" if q < lo else "tie"


def pairwise_verdicts(quality: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """Map a dense [N, M] quality matrix to fractional pairwise verdicts. Shape: [N, M, 3].

    Each model meets every other model known on the same prompt: it wins when its
    quality is more than ``margin`` higher, ties within ``margin``, loses otherwise.
    The three fractions of a (prompt, model) sum to 1 (0 when it met nobody), so a
    prompt adds one outcome per model whatever the number of models.
    """
    known = np.isfinite(quality)
    q = np.where(known, quality, 0.0)
    diff = q[:, :, None] - q[:, None, :]  # [N, M, M]
    pair = known[:, :, None] & known[:, None, :]
    pair &= ~np.eye(quality.shape[1], dtype=bool)[None]
    opponents = pair.sum(axis=2, keepdims=True).astype(np.float64)
    out = np.stack([(diff > margin) & pair, (np.abs(diff) <= margin) & pair, (diff < -margin) & pair], axis=-1)
    return np.divide(out.sum(axis=2), opponents, out=np.zeros((*out.shape[:2], 3)), where=opponents > 0)


# --- the table -----------------------------------------------------------------------
@dataclass
class ScoreTable:
    """A dense tag x model score table, built from counts by :class:`TagScorer`.

    ``rate[t, m]`` is the shrunk reward rate, ``weight[t]`` the tag weight, so
    ``score(m, t) = weight[t] * rate[t, m]``. ``std`` is the per-cell posterior spread
    and ``n`` the evidence (outcomes) behind each cell. The global record is kept
    apart (``global_rate`` ...), not as a row.
    """

    tags: list[str]
    models: list[str]
    rate: np.ndarray  # [T, M]
    weight: np.ndarray  # [T]
    std: np.ndarray  # [T, M]
    n: np.ndarray  # [T, M]
    global_rate: np.ndarray  # [M]
    global_std: np.ndarray  # [M]
    global_n: np.ndarray  # [M]
    config: ScorerConfig = field(default_factory=ScorerConfig)
    version: int | None = None
    counts: TagCounts | None = field(default=None, repr=False)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._index = {t: i for i, t in enumerate(self.tags)}

    @property
    def scores(self) -> np.ndarray:
        """``score(M, t)``: [T, M]."""
        return self.weight[:, None] * self.rate

    def score(self, model: str, tag: str) -> float:
        j = self.models.index(model)
        i = self._index.get(tag)
        return float(self.weight[i] * self.rate[i, j]) if i is not None else 0.0

    def has_tag(self, tag: str) -> bool:
        return tag in self._index

    @cached_property
    def spread(self) -> float:
        """Range of the models' global rates: the unit of the normalised θ (a table never changes
        once built, so this is computed once, not per decision)."""
        seen = self.global_n > 0
        if seen.sum() < 2:
            return self.config.sigma
        g = self.global_rate[seen]
        return float(max(g.max() - g.min(), 1e-3 * self.config.sigma))

    def tag_indices(self, tag_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Flattened (request, tag-row) pairs of the known tags, each pair once, in the requests' order;
        unknown tags drop out. The lookups run in C (``map`` over ``dict.get``), the rest in numpy."""
        lengths = np.fromiter(map(len, tag_lists), dtype=np.int64, count=len(tag_lists))
        flat = list(chain.from_iterable(tag_lists))
        cols = np.fromiter(map(self._index.get, flat, repeat(-1)), dtype=np.int64, count=len(flat))
        rows = np.repeat(np.arange(len(tag_lists), dtype=np.int64), lengths)
        keep = cols >= 0
        rows, cols = rows[keep], cols[keep]
        # A tag repeated within one request counts once: keep each (row, col) pair's first occurrence.
        _, first = np.unique(rows * max(len(self.tags), 1) + cols, return_index=True)
        first.sort()
        return rows[first], cols[first]

    def aggregate(self, tag_lists: Sequence[Sequence[str]], *, sample: np.ndarray | None = None,
                  rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-request normalised scores ``S / sum_t w_t`` for a batch. Returns (S [B, M], n_known [B]).

        Requests without a known tag get their models' global rates. Rows where
        ``sample`` is true are Thompson-sampled from the cells' uncertainty.
        """
        b = len(tag_lists)
        rows, cols = self.tag_indices(tag_lists)
        w = self.weight[cols]
        s = np.zeros((b, len(self.models)))
        wsum = np.bincount(rows, weights=w, minlength=b)
        n_known = np.bincount(rows, minlength=b)
        has = wsum > 0
        if self.config.aggregate == "sum":
            # [B, M]: global rate + sum_t w_t (rate_t - global) / mean table weight
            w_unit = w / max(float(self.weight.mean()), 1e-12) if len(self.weight) else w
            np.add.at(s, rows, w_unit[:, None] * (self.rate[cols] - self.global_rate[None, :]))
            s += self.global_rate[None, :]
        else:
            np.add.at(s, rows, w[:, None] * self.rate[cols])
            s[has] /= wsum[has, None]
            s[~has] = self.global_rate[None, :]
        if sample is not None and sample.any():
            rng = rng or np.random.default_rng()
            var = np.zeros_like(s)
            if self.config.aggregate == "sum":  # global + sum of weighted deviations
                w_unit = w / max(float(self.weight.mean()), 1e-12) if len(self.weight) else w
                np.add.at(var, rows, (w_unit[:, None] * self.std[cols]) ** 2)
                var += (self.global_std ** 2)[None, :]
            else:
                np.add.at(var, rows, (w[:, None] * self.std[cols]) ** 2)
                var[has] /= (wsum[has] ** 2)[:, None]
                var[~has] = (self.global_std ** 2)[None, :]
            noise = rng.standard_normal(s.shape) * np.sqrt(var)
            s = np.where(sample[:, None], s + noise, s)
        return s, n_known

    def with_counts(self) -> TagCounts:
        if self.counts is None:
            raise ValueError("this table was built without its counts")
        return self.counts

    # --- artifacts -------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "config": self.config.to_json(),
                "cells": self.with_counts().to_cells()}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ScoreTable:
        cfg = ScorerConfig(**obj.get("config", {}))
        table = TagScorer(cfg).table(TagCounts.from_cells(obj["cells"]))
        table.version = obj.get("version")
        return table


def _tag_weights(kind: str, tag_n: np.ndarray, total: float, n_models: int, k: float) -> np.ndarray:
    """``w_t`` from the tag's outcome count ``n_t`` (all models) and the total ``N``."""
    if kind == "idf":
        return np.log1p(total / np.maximum(tag_n, 1.0))
    per_model = tag_n / max(int(n_models), 1)  # prompts seen with the tag, roughly
    if kind == "evidence":
        return per_model / (per_model + k)
    if kind == "log_count":
        return np.log1p(per_model)
    if kind == "uniform":
        return np.ones(len(tag_n))
    raise ValueError(f"unknown tag weighting {kind!r}; use idf, uniform, evidence or log_count")


class TagScorer:
    """Counts -> :class:`ScoreTable`, with the rewards, shrinkage and weights of a :class:`ScorerConfig`."""

    def __init__(self, config: ScorerConfig | None = None) -> None:
        self.config = config or ScorerConfig()

    def rewards(self, arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Summed reward and outcome count per cell of a [..., 5] count array."""
        c = self.config
        reward = (arr[..., _WIN] * c.s_win + arr[..., _TIE] * c.s_tie + arr[..., _LOSS] * c.s_loss
                  + arr[..., _QSUM] * (c.s_win - c.s_loss) + arr[..., _QCOUNT] * c.s_loss)
        n = arr[..., _WIN] + arr[..., _TIE] + arr[..., _LOSS] + arr[..., _QCOUNT]
        return reward, n

    def table(self, counts: TagCounts, version: int | None = None) -> ScoreTable:
        c, k = self.config, max(self.config.prior_strength, 1e-9)
        reward, n = self.rewards(counts.arr)
        g_reward, g_n = reward[0], n[0]
        # Models' global rates shrink toward the pooled rate (a model seen 3 times is average).
        pooled = float(g_reward.sum() / g_n.sum()) if g_n.sum() > 0 else 0.0
        g_rate = (g_reward + k * pooled) / (g_n + k)
        t_reward, t_n = reward[1:], n[1:]
        rate = (t_reward + k * g_rate[None, :]) / (t_n + k)
        total = max(float(g_n.sum()), 1.0)
        tag_n = t_n.sum(axis=1)
        weight = _tag_weights(c.weighting, tag_n, total, (g_n > 0).sum(), k)
        return ScoreTable(
            tags=counts.tags[1:], models=list(counts.models), rate=rate, weight=weight,
            std=c.sigma / np.sqrt(t_n + k), n=t_n, global_rate=g_rate, global_std=c.sigma / np.sqrt(g_n + k),
            global_n=g_n, config=c, version=version, counts=counts,
        )

    def fit(self, tags: Sequence[Sequence[str]], models: Sequence[str], quality: np.ndarray) -> ScoreTable:
        """A table from a dense [N, M] quality matrix (NaN = unknown) and each prompt's tags."""
        counts = TagCounts()
        counts._ensure((), models)  # keep the dataset's model order
        counts.add_matrix(tags, models, quality)
        return self.table(counts)


# --- the cost-aware rule shared by tagrouter and knn -----------------------------------
def cheapest_within(scores: np.ndarray, costs: np.ndarray, eligible: np.ndarray,
                    tolerance: np.ndarray | float) -> np.ndarray:
    """Per row, the cheapest eligible column whose score is within ``tolerance`` of the row's best.

    Shapes: scores/costs/eligible [B, M], tolerance scalar or [B]. Among equally cheap
    candidates the higher score wins, so with one price for all (routerdc) the rule
    picks the best. Rows with nothing eligible return -1.
    """
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), (scores.shape[0],))
    s = np.where(eligible, scores, -np.inf)
    best = s.max(axis=1, initial=-np.inf)
    cand = eligible & (s >= (best - tol - 1e-12)[:, None])  # 1e-12: equal scores up to rounding tie
    c = np.where(cand, costs, np.inf)
    cmin = c.min(axis=1, initial=np.inf)
    tied = cand & (c <= cmin[:, None] * (1 + 1e-9) + 1e-15)
    pick = np.where(tied, s, -np.inf).argmax(axis=1)
    return np.where(eligible.any(axis=1), pick, -1)


def theta_grid(scores: np.ndarray, spread: float, n: int = 21) -> list[float]:
    """Knob values (θ, in units of ``spread``) that span a policy's whole cost range.

    ``scores`` [N, M] are the policy's scores on its own **train** prompts (NaN =
    unknown). A model is given up for a cheaper one once θ exceeds its gap to the row's
    best, so the gaps ``(best - s) / spread`` are exactly where decisions change. The
    grid is their quantiles from the largest (every prompt goes to its cheapest model)
    down to 0 (every prompt to its best-scored model): ``n`` values, largest first, so
    the sweep covers the cost axis evenly in prompts rather than in θ.
    """
    s = np.where(np.isfinite(scores), scores, np.nan)
    with np.errstate(invalid="ignore"):
        best = np.nanmax(s, axis=1, keepdims=True)
    gaps = ((best - s) / max(spread, 1e-12))[np.isfinite(s)]
    gaps = gaps[gaps > 0]
    n = max(int(n), 2)
    if gaps.size == 0:
        return [float(x) for x in np.linspace(1.0, 0.0, n) ** 2]
    top = float(gaps.max()) * (1 + 1e-6) + 1e-9
    qs = np.quantile(np.concatenate([gaps, [top]]), np.linspace(1.0, 0.0, n))
    qs[0], qs[-1] = top, 0.0
    qs = np.unique(np.round(qs, 12))
    if len(qs) < n:  # coarse scores share gaps: top up from an even grid, so there are exactly n values
        extra = np.setdiff1d(np.round(top * np.linspace(1.0, 0.0, 4 * n) ** 2, 12), qs)
        pick = np.linspace(0, len(extra) - 1, min(n - len(qs), len(extra))).round().astype(int)
        qs = np.unique(np.concatenate([qs, extra[np.unique(pick)]]))
    return [float(x) for x in qs[::-1]]
