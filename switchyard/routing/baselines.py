"""Baseline policies worth beating: ``random``, ``cheapest``, ``best``, ``fixed:<model>``, ``knn``.

Also the batch helpers every learned policy needs: :func:`eligibility_matrix` and
:func:`predicted_costs` turn a batch of requests into [B, M] arrays once, so
decisions are array operations, not per-model Python.

Knobs
    - ``random``: p, the probability of sending a request to the strongest model
      (best mean quality on train); otherwise the cheapest. Sweeping p draws the
      random-mixing line that APGR is measured against (0.5).
    - ``cheapest``, ``best``, ``fixed``: no knob (one point each).
    - ``knn``: θ, exactly the tagrouter rule on a normalised scale: the cheapest model
      whose predicted quality is within ``θ * spread`` of the best, where ``spread`` is
      the range of the models' mean train quality. θ = 0 is "best predicted".
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.catalog import Catalog
from switchyard.routing.base import (
    RouteDecision,
    RouteRequest,
    RoutingContext,
    TrainingSet,
    eligible_models,
    fallback_decision,
    policies,
)
from switchyard.scoring import cheapest_within, theta_grid


# --- batch helpers ----------------------------------------------------------------------
def _default_options(r: RouteRequest) -> bool:
    o = r.options
    return o.allow is None and not o.deny and o.max_cost_usd is None


def eligibility_matrix(requests: Sequence[RouteRequest], catalog: Catalog, models: Sequence[str]) -> np.ndarray:
    """[B, M] bool: may request b go to ``models[m]`` (see :func:`eligible_models`)."""
    col = {m: j for j, m in enumerate(models)}
    out = np.zeros((len(requests), len(models)), dtype=bool)
    ids = set(catalog.available_ids())  # once per batch, not once per model
    available = np.array([m in ids for m in models], dtype=bool)
    for b, r in enumerate(requests):  # per request: the options differ; the default is a shared row
        if _default_options(r):
            out[b] = available
            continue
        for m in eligible_models(r, catalog):
            j = col.get(m)
            if j is not None:
                out[b, j] = True
    return out


def predicted_costs(requests: Sequence[RouteRequest], catalog: Catalog, models: Sequence[str]) -> np.ndarray:
    """[B, M] predicted USD of each request on each model (``Model.predicted_cost``, vectorised)."""
    specs = [catalog.get(m) for m in models]
    pin = np.array([s.usd_per_mtok_input for s in specs], dtype=np.float64)
    fixed = np.array([s.expected_output_tokens * s.usd_per_mtok_output for s in specs], dtype=np.float64)
    toks = np.array([r.input_tokens for r in requests], dtype=np.float64)
    return (toks[:, None] * pin[None, :] + fixed[None, :]) / 1e6


def _unit_hash(key: str, seed: int) -> float:
    """A uniform number in [0, 1) fixed by (key, seed): the same request always draws the same."""
    h = hashlib.blake2b(f"{seed}:{key}".encode("utf-8", "replace"), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64


def _decision(r: RouteRequest, catalog: Catalog, policy: str, model: str, reason: str, *,
              knob: float | None = None, ranked: list[tuple[str, float]] | None = None,
              details: dict[str, Any] | None = None) -> RouteDecision:
    return RouteDecision(model=model, policy=policy, reason=reason, ranked=ranked or [(model, 1.0)],
                         knob=knob, tags=list(r.tags), predicted_cost_usd=catalog.get(model).predicted_cost(
                             r.input_tokens), details=details or {})


def _train_means(train: TrainingSet) -> dict[str, float]:
    """Mean train quality per model (unknown cells skipped); models never judged are left out."""
    with np.errstate(invalid="ignore"):
        means = np.nanmean(np.where(np.isfinite(train.quality), train.quality, np.nan), axis=0)
    return {m: float(q) for m, q in zip(train.models, means, strict=True) if np.isfinite(q)}


class _Ranked:
    """Shared by the policies that rank models by mean train quality (best, random)."""

    def __init__(self) -> None:
        self.means: dict[str, float] = {}

    def fit(self, train: TrainingSet, catalog: Catalog, context: RoutingContext) -> None:
        self.means = _train_means(train)

    def save(self, path: Path) -> None:
        import json

        Path(path).write_text(json.dumps({"means": self.means}), encoding="utf-8")

    def load(self, path: Path) -> None:
        import json

        self.means = dict(json.loads(Path(path).read_text(encoding="utf-8"))["means"])

    def strongest(self, ids: Sequence[str], catalog: Catalog) -> str:
        """Best mean train quality; before any fit, the priciest model (price as a proxy)."""
        if self.means:
            return max(ids, key=lambda m: (self.means.get(m, -np.inf), m))
        return max(ids, key=lambda m: (catalog.get(m).usd_per_mtok_output, m))


# --- single-point baselines -------------------------------------------------------------
@policies.register("cheapest")
class CheapestPolicy:
    name = "cheapest"
    knob_name = "none"
    knob_default = 0.0

    def knob_grid(self, n: int = 21) -> list[float]:
        return [0.0]

    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        return [fallback_or(r, catalog, self.name, lambda ids, r=r: min(
            ids, key=lambda m: (catalog.get(m).predicted_cost(r.input_tokens), m)), "cheapest eligible model")
            for r in requests]


@policies.register("best")
class BestPolicy(_Ranked):
    name = "best"
    knob_name = "none"
    knob_default = 0.0

    def knob_grid(self, n: int = 21) -> list[float]:
        return [0.0]

    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        return [fallback_or(r, catalog, self.name, lambda ids: self.strongest(ids, catalog),
                            "best single model on train") for r in requests]


class FixedPolicy:
    """``fixed:<model>``: always that model; a request that may not use it falls back."""

    knob_name = "none"
    knob_default = 0.0

    def __init__(self, model: str) -> None:
        self.model = model
        self.name = f"fixed:{model}"

    def knob_grid(self, n: int = 21) -> list[float]:
        return [0.0]

    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        out = []
        for r in requests:
            if self.model in eligible_models(r, catalog):
                out.append(_decision(r, catalog, self.name, self.model, f"fixed model {self.model}"))
            else:
                out.append(fallback_decision(r, catalog, self.name, f"{self.model} is not eligible"))
        return out


policies.add("fixed", FixedPolicy)


def fallback_or(r: RouteRequest, catalog: Catalog, policy: str, choose: Any, why: str,
                knob: float | None = None) -> RouteDecision:
    ids = eligible_models(r, catalog)
    if not ids:
        return fallback_decision(r, catalog, policy, "no eligible model", knob)
    model = choose(ids)
    return _decision(r, catalog, policy, model, f"{model}: {why}", knob=knob)


@policies.register("random")
class RandomPolicy(_Ranked):
    """With probability p the strongest eligible model, else the cheapest eligible one."""

    name = "random"
    knob_name = "p"
    knob_default = 0.5

    def knob_grid(self, n: int = 21) -> list[float]:
        return [float(x) for x in np.linspace(0.0, 1.0, max(n, 2))]

    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        out = []
        for r in requests:
            p = context.knob_for(r, self.knob_default)
            ids = eligible_models(r, catalog)
            if not ids:
                out.append(fallback_decision(r, catalog, self.name, "no eligible model", p))
                continue
            # Hash-seeded draw: raising p only ever moves requests from weak to strong.
            strong = _unit_hash(r.id, context.seed) < p
            model = self.strongest(ids, catalog) if strong else min(
                ids, key=lambda m: (catalog.get(m).predicted_cost(r.input_tokens), m))
            out.append(_decision(r, catalog, self.name, model,
                                 f"{model}: random draw, p(strongest)={p:.2f}", knob=p))
        return out


# --- k nearest neighbours ---------------------------------------------------------------
@policies.register("knn")
class KnnPolicy:
    """RouterBench-style kNN: predicted quality of M = mean quality of the k most similar
    train prompts (cosine of MiniLM embeddings) on which M has an outcome. Models with
    none among the k neighbours get their mean train quality."""

    name = "knn"
    knob_name = "theta"
    knob_default = 0.2

    def __init__(self, k: int = 20, chunk: int = 2048) -> None:
        self.k = k
        self.chunk = chunk
        self.models: list[str] = []
        self.emb: np.ndarray | None = None  # [N, D] unit rows
        self.quality: np.ndarray | None = None  # [N, M]
        self.means: np.ndarray | None = None  # [M]
        self._train_pred: np.ndarray | None = None  # [N, M] leave-one-out predictions, for knob_grid
        self._memo: dict[str, np.ndarray] = {}

    def knob_grid(self, n: int = 21) -> list[float]:
        """After :meth:`fit`: quantiles of the leave-one-out train predictions' gaps
        (:func:`~switchyard.scoring.theta_grid`, as tagrouter); before: 1 down to 0."""
        if self._train_pred is not None and self.means is not None:
            return theta_grid(self._train_pred, self._spread(list(range(len(self.models)))), n)
        return [float(x) for x in np.linspace(1.0, 0.0, max(n, 2))]

    def _spread(self, cols: list[int]) -> float:
        assert self.means is not None
        return max(float(np.ptp(self.means[cols])) if cols else 0.0, 1e-6)

    def fit(self, train: TrainingSet, catalog: Catalog, context: RoutingContext) -> None:
        emb = train.embeddings
        if emb is None:
            emb = context.embed([RouteRequest(id=str(i), prompt=p) for i, p in enumerate(train.prompts)])
        self.emb = _unit(np.asarray(emb, dtype=np.float32))
        self.quality = np.asarray(train.quality, dtype=np.float64)
        self.models = list(train.models)
        with np.errstate(invalid="ignore"):
            self.means = np.nan_to_num(np.nanmean(self.quality, axis=0), nan=0.0)
        self._memo.clear()
        self._train_pred = self._neighbour_means(self.emb, leave_one_out=True)

    def save(self, path: Path) -> None:
        if self.emb is None or self.quality is None:
            raise ValueError("knn is not fitted")
        np.savez_compressed(path, emb=self.emb, quality=self.quality, models=np.array(self.models), k=self.k)

    def load(self, path: Path) -> None:
        z = np.load(path, allow_pickle=False)
        self.emb, self.quality, self.models, self.k = z["emb"], z["quality"], list(z["models"]), int(z["k"])
        with np.errstate(invalid="ignore"):
            self.means = np.nan_to_num(np.nanmean(self.quality, axis=0), nan=0.0)
        self._memo.clear()

    def predict(self, requests: Sequence[RouteRequest], context: RoutingContext) -> np.ndarray:
        """Predicted quality [B, M] (columns = ``self.models``), memoised per request id."""
        assert self.emb is not None and self.quality is not None and self.means is not None
        todo = [r for r in requests if r.id not in self._memo]
        if todo:
            pred = self._neighbour_means(_unit(context.embed(todo).astype(np.float32)))
            for r, row in zip(todo, pred, strict=True):
                self._memo[r.id] = row
        return np.stack([self._memo[r.id] for r in requests]) if requests else np.zeros((0, len(self.models)))

    def _neighbour_means(self, q: np.ndarray, *, leave_one_out: bool = False) -> np.ndarray:
        """Mean quality per model over each query's k nearest train prompts. q: [B, D] unit rows
        (with ``leave_one_out``, q is the train set itself and a row is not its own neighbour)."""
        assert self.emb is not None and self.quality is not None and self.means is not None
        out = np.zeros((len(q), len(self.models)))
        k = min(self.k, len(self.emb) - (1 if leave_one_out else 0))
        if k <= 0:
            out[:] = self.means[None, :]
            return out
        for s in range(0, len(q), self.chunk):  # chunks bound the [b, N] similarity matrix
            sim = q[s:s + self.chunk] @ self.emb.T
            if leave_one_out:
                rows = np.arange(sim.shape[0])
                sim[rows, s + rows] = -np.inf
            nn = np.argpartition(-sim, k - 1, axis=1)[:, :k]
            nq = self.quality[nn]  # [b, k, M]
            known = np.isfinite(nq)
            cnt = known.sum(axis=1)
            mean = np.where(known, nq, 0.0).sum(axis=1) / np.maximum(cnt, 1)
            out[s:s + self.chunk] = np.where(cnt > 0, mean, self.means[None, :])
        return out

    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        if self.emb is None:
            return [fallback_decision(r, catalog, self.name, "knn is not fitted") for r in requests]
        models = [m for m in self.models if m in catalog]
        cols = [self.models.index(m) for m in models]
        pred = self.predict(requests, context)[:, cols]
        elig = eligibility_matrix(requests, catalog, models)
        cost = predicted_costs(requests, catalog, models)
        theta = np.array([context.knob_for(r, self.knob_default) for r in requests])
        spread = self._spread(cols)
        pick = cheapest_within(pred, cost, elig, theta * spread)
        out = []
        for b, r in enumerate(requests):
            if pick[b] < 0:
                out.append(fallback_decision(r, catalog, self.name, "no eligible model", float(theta[b])))
                continue
            m = models[pick[b]]
            ranked = sorted(((models[j], float(pred[b, j])) for j in np.nonzero(elig[b])[0]), key=lambda x: -x[1])
            out.append(_decision(r, catalog, self.name, m,
                                 f"{m}: cheapest within θ={theta[b]:.2f} of the best predicted quality "
                                 f"({ranked[0][0]}) over the {self.k} nearest train prompts",
                                 knob=float(theta[b]), ranked=ranked))
        return out


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
