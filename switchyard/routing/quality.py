"""Shared parts of the learned routers (Tryage, MF, cascade, GLIDER).

- embeddings of train prompts and requests (cached when the harness provides them);
- catalog attributes normalised to [0, 1] and the flag-weighted penalty
  ``sum_f w_f * a_f(m)`` of Tryage's objective;
- :class:`PenalisedQualityPolicy`: "predict each model's quality, subtract lambda times
  the penalty, take the argmax", implementing the :class:`ScoringPolicy` split
  (``score_batch`` = predicted quality, ``decide_from_scores`` = the penalised argmax);
- :func:`breakpoint_grid`: lambda values where a trained policy's decisions change,
  so an eval sweep covers the whole cost axis;
- a seeded, masked training loop for small torch quality predictors;
- :func:`train_policy`: the core of ``switchyard train NAME DATASET_DIR`` (and of the
  maintenance task): fit a learned policy on a dataset's train split, save its artifact.

Artifacts are ``torch.save`` dicts of tensors and plain values, loaded with
``weights_only=True`` (no pickled code ever runs on load).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from switchyard.catalog import Catalog
from switchyard.routing.base import (
    RouteDecision,
    RouteRequest,
    RoutingContext,
    TrainingSet,
    fallback_decision,
)

if TYPE_CHECKING:
    from switchyard.config import Settings

EmbedFn = Callable[[Sequence[str]], np.ndarray]
ATTRIBUTES = ("cost", "size", "age", "latency")
MISSING_ATTRIBUTE = 0.5  # a model without the attribute is neither penalised nor favoured
LEARNED = ("tryage", "mf", "cascade", "glider")  # what train_policy knows how to train


# --- paths -------------------------------------------------------------------------------
def artifacts_dir() -> Path:
    """Where trained routers live: ``settings.artifacts_dir`` or ``<data_dir>/artifacts``."""
    from switchyard.config import get_settings

    s = get_settings()
    return Path(s.artifacts_dir) if s.artifacts_dir else Path(s.data_dir) / "artifacts"


def default_artifact(policy_name: str) -> Path:
    return artifacts_dir() / f"{policy_name}.pt"


# --- embeddings ----------------------------------------------------------------------------
def _embed_fn(context: RoutingContext) -> EmbedFn:
    if context.embed_fn is not None:
        return context.embed_fn
    from switchyard.embeddings import get_embedder

    return get_embedder().encode


def train_embeddings(train: TrainingSet, context: RoutingContext) -> np.ndarray:
    """Train prompt embeddings: the harness's when it computed them. Shape: [N, 384] float32."""
    if train.embeddings is not None:
        return np.asarray(train.embeddings, dtype=np.float32)
    return np.asarray(_embed_fn(context)(train.prompts), dtype=np.float32)


def embed_texts(texts: Sequence[str], context: RoutingContext) -> np.ndarray:
    """Shape: [len(texts), 384] float32 unit rows."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(_embed_fn(context)(list(texts)), dtype=np.float32)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class PredictionMemo:
    """Per-request predictions reused across the knob values of one eval sweep.

    Keyed by (request id, prompt), bounded (oldest entries go first), so a long-lived
    worker never grows it without limit.
    """

    def __init__(self, max_items: int = 200_000) -> None:
        self._d: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self.max_items = max_items
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._d.clear()

    def get_or_compute(self, requests: Sequence[RouteRequest], width: int,
                       compute: Callable[[Sequence[RouteRequest]], np.ndarray]) -> np.ndarray:
        """Rows for ``requests`` [B, width]; missing rows come from ``compute(missing)``."""
        keys = [(r.id, r.prompt) for r in requests]
        with self._lock:
            hits = [self._d.get(k) for k in keys]
        todo = [i for i, h in enumerate(hits) if h is None]
        if todo:
            rows = compute([requests[i] for i in todo])
            with self._lock:
                for i, row in zip(todo, rows, strict=True):
                    hits[i] = row
                    self._d[keys[i]] = row
                while len(self._d) > self.max_items:
                    self._d.popitem(last=False)
        if not requests:
            return np.zeros((0, width))
        return np.stack([h for h in hits if h is not None])


# --- attributes and the penalty ------------------------------------------------------------
def _minmax(x: np.ndarray) -> np.ndarray:
    """Min-max scale each row to [0, 1] over its finite entries; NaN -> MISSING_ATTRIBUTE.

    x: [B, M]. A row whose finite entries are all equal scales to 0 (nothing to trade).
    """
    finite = np.isfinite(x)
    big = np.where(finite, x, np.inf)
    small = np.where(finite, x, -np.inf)
    lo = big.min(axis=1, keepdims=True, initial=np.inf)  # [B, 1]
    hi = small.max(axis=1, keepdims=True, initial=-np.inf)  # [B, 1]
    span = hi - lo
    ok_span = np.isfinite(span) & (span > 1e-15)
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(ok_span, (x - lo) / np.where(ok_span, span, 1.0), 0.0)
    return np.where(finite, scaled, MISSING_ATTRIBUTE)


def raw_attribute(name: str, requests: Sequence[RouteRequest], models: Sequence[str], catalog: Catalog,
                  today: dt.date | None = None) -> np.ndarray:
    """One raw attribute per (request, model), higher = worse. Shape: [B, M], NaN = unknown.

    cost = predicted USD of the request (prices and expected output length), size =
    params_b, age = days since release_date, latency = latency_ms.
    """
    if name == "cost":
        from switchyard.routing.baselines import predicted_costs

        return predicted_costs(requests, catalog, models)
    cards = [catalog.get(m) for m in models]
    if name == "size":
        row = [c.params_b if c.params_b is not None else math.nan for c in cards]
    elif name == "age":
        ref = today or dt.date.today()
        row = [(ref - c.release_date).days if c.release_date is not None else math.nan for c in cards]
    elif name == "latency":
        row = [c.latency_ms if c.latency_ms is not None else math.nan for c in cards]
    else:
        raise KeyError(name)
    return np.tile(np.asarray(row, dtype=np.float64), (len(requests), 1))


def normalised_attribute(name: str, requests: Sequence[RouteRequest], models: Sequence[str],
                         catalog: Catalog) -> np.ndarray:
    """a_f(m) in [0, 1] over ``models``, per request. Shape: [B, M]."""
    return _minmax(raw_attribute(name, requests, models, catalog))


def request_flags(request: RouteRequest, default: dict[str, float]) -> dict[str, float]:
    """The request's ``routing.flags``, or the default ones; unknown names are dropped."""
    flags = request.options.flags or default
    return {k: float(v) for k, v in flags.items() if k in ATTRIBUTES}


def penalty_matrix(requests: Sequence[RouteRequest], models: Sequence[str], catalog: Catalog,
                   default_flags: dict[str, float]) -> np.ndarray:
    """sum_f w_f * a_f(m) per request. Shape: [B, M] float64."""
    flags = [request_flags(r, default_flags) for r in requests]
    used = sorted({f for fl in flags for f in fl})
    pen = np.zeros((len(requests), len(models)), dtype=np.float64)
    for f in used:
        w = np.array([fl.get(f, 0.0) for fl in flags], dtype=np.float64)  # [B]
        pen += w[:, None] * normalised_attribute(f, requests, models, catalog)
    return pen


def eligible_mask(requests: Sequence[RouteRequest], catalog: Catalog) -> np.ndarray:
    """Shape: [B, M] bool over catalog.ids()."""
    from switchyard.routing.baselines import eligibility_matrix

    return eligibility_matrix(requests, catalog, catalog.ids())


def lambda_grid(n: int, lo: float = 1e-3, hi: float = 3.0) -> list[float]:
    """Cheapest first: a geometric ladder of lambda from ``hi`` down to ``lo``, then 0.

    Predicted qualities and penalties both live in [0, 1], so lambda = 3 already makes
    cost dominate and lambda = 0 is pure quality.
    """
    n = max(n, 2)
    return [float(x) for x in np.geomspace(hi, lo, n - 1)] + [0.0]


def breakpoint_grid(q: np.ndarray, pen: np.ndarray, n: int, *, max_rows: int = 4000, seed: int = 0) -> list[float]:
    """Lambda values where ``argmax_m q - lambda * pen`` changes, as ``n`` quantiles, largest first.

    q, pen: [N, M] (NaN in q = not choosable). For two models i, j with q_i > q_j and
    pen_i > pen_j, the choice flips at lambda = (q_i - q_j) / (pen_i - pen_j): these
    breakpoints' quantiles spread an eval sweep evenly over prompts, as
    :func:`switchyard.scoring.theta_grid` does for theta. Falls back to
    :func:`lambda_grid` when no pair trades (one price for all, or one model).
    """
    n = max(int(n), 2)
    if len(q) > max_rows:
        q, pen = _rows(q, pen, max_rows, seed)
    if q.size == 0 or q.shape[1] < 2:
        return lambda_grid(n)
    dq = q[:, :, None] - q[:, None, :]  # [N, M, M]
    dp = pen[:, :, None] - pen[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        lam = np.where((dq > 0) & (dp > 1e-12), dq / np.where(dp > 1e-12, dp, 1.0), np.nan)
    lam = lam[np.isfinite(lam)]
    if lam.size == 0:
        return lambda_grid(n)
    top = float(lam.max()) * (1 + 1e-6) + 1e-9
    qs = np.quantile(np.concatenate([lam, [top]]), np.linspace(1.0, 0.0, n))
    qs[0], qs[-1] = top, 0.0
    qs = np.unique(np.round(qs, 12))
    if len(qs) < n:
        qs = np.unique(np.concatenate([qs, np.round(top * np.linspace(1.0, 0.0, n) ** 2, 12)]))
    return [float(x) for x in qs[::-1]]


def _rows(a: np.ndarray, b: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.sort(np.random.default_rng(seed).permutation(len(a))[:k])
    return a[idx], b[idx]


# --- the penalised argmax policy --------------------------------------------------------------
class PenalisedQualityPolicy:
    """Choose ``argmax_m [ q_hat_m(p) - lambda * sum_f w_f a_f(m) ]`` over eligible models.

    Subclasses provide ``predict(requests, context) -> (models, q_hat [B, M'])`` and say
    how they are trained and saved; this class handles eligibility, the penalty, the
    knob, fallbacks and the decision record. A subclass that calls
    :meth:`set_grid_from_train` at the end of ``fit`` gets a data-driven knob grid.
    """

    name = "penalised"
    knob_name = "lambda"
    knob_default = 0.1
    default_flags: dict[str, float] = {"cost": 1.0}  # noqa: RUF012 - read-only class default
    _train_grid: tuple[np.ndarray, np.ndarray] | None = None

    def knob_grid(self, n: int = 21) -> list[float]:
        if self._train_grid is not None:
            q, pen = self._train_grid
            return breakpoint_grid(q, pen, n)
        return lambda_grid(n)

    def set_grid_from_train(self, train: TrainingSet, catalog: Catalog, context: RoutingContext,
                            embeddings: np.ndarray | None = None, max_rows: int = 4000) -> None:
        """Remember the train prompts' predictions and penalties, for :meth:`knob_grid`."""
        idx = np.arange(len(train.prompts))
        if len(idx) > max_rows:
            idx = np.sort(np.random.default_rng(context.seed).permutation(len(idx))[:max_rows])
        reqs = [RouteRequest(id=f"train:{i}", prompt=train.prompts[i], input_tokens=int(train.input_tokens[i]),
                             embedding=None if embeddings is None else embeddings[i]) for i in idx]
        ids = catalog.ids()
        q = np.full((len(reqs), len(ids)), np.nan)
        models, pred = self.predict(reqs, context)
        col = {m: j for j, m in enumerate(models)}
        for j, m in enumerate(ids):
            if m in col:
                q[:, j] = pred[:, col[m]]
        pen = penalty_matrix(reqs, ids, catalog, self.default_flags)
        self._train_grid = (q, pen)

    # subclasses -----------------------------------------------------------------------
    def predict(self, requests: Sequence[RouteRequest], context: RoutingContext) -> tuple[list[str], np.ndarray]:
        raise NotImplementedError

    def ready(self) -> bool:
        raise NotImplementedError

    def not_ready_reason(self) -> str:
        return f"{self.name} has no trained artifact; run 'switchyard train {self.name} DATASET_DIR'"

    # the ScoringPolicy split -------------------------------------------------------------
    def score_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                    context: RoutingContext) -> np.ndarray:
        """Predicted quality over catalog.ids(). Shape: [B, M]; NaN = ineligible or unknown model."""
        ids = catalog.ids()
        out = np.full((len(requests), len(ids)), np.nan)
        if not requests or not self.ready():
            return out
        models, q = self.predict(requests, context)  # [B, M']
        col = {m: j for j, m in enumerate(models)}
        for j, m in enumerate(ids):
            if m in col:
                out[:, j] = q[:, col[m]]
        out[~eligible_mask(requests, catalog)] = np.nan
        return out

    def decide_from_scores(self, requests: Sequence[RouteRequest], scores: np.ndarray, catalog: Catalog,
                           context: RoutingContext) -> list[RouteDecision]:
        ids = catalog.ids()
        pen = penalty_matrix(requests, ids, catalog, self.default_flags)  # [B, M]
        lam = np.array([context.knob_for(r, self.knob_default) for r in requests], dtype=np.float64)  # [B]
        ok = np.isfinite(scores)
        util = np.where(ok, scores - lam[:, None] * pen, -np.inf)  # [B, M]
        from switchyard.routing.baselines import predicted_costs

        cost = predicted_costs(requests, catalog, ids)  # [B, M]
        decisions = []
        for b, r in enumerate(requests):
            if not ok[b].any():
                decisions.append(fallback_decision(r, catalog, self.name,
                                                   "no eligible model has a quality prediction", knob=float(lam[b])))
                continue
            decisions.append(self._decision(r, scores[b], pen[b], util[b], ok[b], float(lam[b]), ids, cost[b]))
        return decisions

    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        if not self.ready():
            return [fallback_decision(r, catalog, self.name, self.not_ready_reason()) for r in requests]
        return self.decide_from_scores(requests, self.score_batch(requests, catalog, context), catalog, context)

    def _decision(self, r: RouteRequest, q: np.ndarray, pen: np.ndarray, util: np.ndarray, ok: np.ndarray,
                  lam: float, ids: list[str], cost: np.ndarray) -> RouteDecision:
        # Ties (equal utility) go to the cheaper model: np.lexsort sorts by the last key first.
        order = [int(j) for j in np.lexsort((cost, -util)) if ok[j]]
        best = order[0]
        model = ids[best]
        flags = request_flags(r, self.default_flags)
        return RouteDecision(
            model=model, policy=self.name, knob=lam, tags=list(r.tags),
            reason=(f"{model}: max predicted quality {q[best]:.3f} - {lam:g} x penalty {pen[best]:.3f} "
                    f"(flags {flags})"),
            ranked=[(ids[j], float(util[j])) for j in order],
            predicted_cost_usd=float(cost[best]),
            details={"predicted_quality": {ids[j]: round(float(q[j]), 4) for j in order},
                     "penalty": {ids[j]: round(float(pen[j]), 4) for j in order}, "flags": flags},
        )


# --- feature scaling -----------------------------------------------------------------------------
@dataclass
class Standardizer:
    """Per-feature mean/std from the train rows (stored in the artifact)."""

    mean: np.ndarray  # [D]
    std: np.ndarray  # [D]

    @classmethod
    def fit(cls, x: np.ndarray) -> Standardizer:
        return cls(x.mean(axis=0).astype(np.float32), np.maximum(x.std(axis=0), 1e-6).astype(np.float32))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.std).astype(np.float32)


# --- a seeded, masked trainer --------------------------------------------------------------------
@dataclass
class TrainConfig:
    epochs: int = 200
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    val_frac: float = 0.1
    patience: int = 12
    seed: int = 0


def _masked_bce(pred: Any, target: Any, mask: Any) -> Any:
    """BCE on soft targets over known cells only (NaN cells never count as 'bad')."""
    import torch

    loss = torch.nn.functional.binary_cross_entropy_with_logits(pred, target, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def fit_quality_module(module: Any, x: np.ndarray, quality: np.ndarray, cfg: TrainConfig) -> dict[str, float]:
    """Train ``module`` (logits [N, M] from inputs [N, D]) on ``quality`` [N, M] with NaN masked.

    A seeded validation split of the rows picks the epoch (early stopping); the best
    weights are restored. Returns {"val_loss", "epochs"}.
    """
    import torch

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    known = np.isfinite(quality)
    xt = torch.as_tensor(x, dtype=torch.float32)  # [N, D]
    qt = torch.as_tensor(np.nan_to_num(quality, nan=0.0), dtype=torch.float32)  # [N, M]
    mt = torch.as_tensor(known, dtype=torch.float32)  # [N, M]
    perm = rng.permutation(len(x))
    n_val = int(len(x) * cfg.val_frac) if len(x) >= 50 else 0
    val, tr = perm[:n_val], perm[n_val:]
    opt = torch.optim.AdamW(module.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, since, epochs_run = math.inf, None, 0, 0
    for epoch in range(1, cfg.epochs + 1):
        epochs_run = epoch
        module.train()
        rng.shuffle(tr)
        for start in range(0, len(tr), cfg.batch_size):
            idx = torch.as_tensor(tr[start:start + cfg.batch_size])
            opt.zero_grad()
            loss = _masked_bce(module(xt[idx]), qt[idx], mt[idx])
            loss.backward()
            opt.step()
        if n_val == 0:
            continue
        module.eval()
        with torch.inference_mode():
            v = float(_masked_bce(module(xt[val]), qt[val], mt[val]))
        if v < best - 1e-5:
            best, since = v, 0
            best_state = {k: t.detach().clone() for k, t in module.state_dict().items()}
        else:
            since += 1
            if since >= cfg.patience:
                break
    if best_state is not None:
        module.load_state_dict(best_state)
    module.eval()
    return {"val_loss": best if math.isfinite(best) else float("nan"), "epochs": float(epochs_run)}


def predict_quality(module: Any, x: np.ndarray) -> np.ndarray:
    """sigmoid(module(x)). Shape: [N, M] float64 in (0, 1)."""
    import torch

    module.eval()
    with torch.inference_mode():
        logits = module(torch.as_tensor(x, dtype=torch.float32))  # [N, M]
        return torch.sigmoid(logits).double().cpu().numpy()


_save_lock = threading.Lock()


def save_artifact(path: Path, obj: dict[str, Any]) -> None:
    """Atomic torch.save (a reader never sees half a file)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with _save_lock:
        torch.save(obj, tmp)
        tmp.replace(path)


def load_artifact(path: Path, kind: str) -> dict[str, Any]:
    import torch

    from switchyard.errors import ConfigError

    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ConfigError(f"no trained artifact at {path}; run 'switchyard train {kind} DATASET_DIR'") from None
    except Exception as e:
        raise ConfigError(f"{path} is not a readable {kind} artifact ({e}); retrain it") from None
    if not isinstance(obj, dict) or obj.get("kind") != kind:
        found = obj.get("kind") if isinstance(obj, dict) else type(obj).__name__
        raise ConfigError(f"{path} holds a {found!r} artifact, not {kind!r}")
    return obj


class LazyArtifact:
    """Mixin for learned policies: load ``default_artifact(name)`` on first use when not fitted.

    Subclasses define ``_fitted() -> bool`` and ``load(path)``; :meth:`ready` loads the
    default artifact once if it exists (a worker picks up ``switchyard train`` output).
    """

    name: str
    artifact: Path | None = None
    _tried_load = False

    def _fitted(self) -> bool:
        raise NotImplementedError

    def load(self, path: Path) -> None:
        raise NotImplementedError

    def ready(self) -> bool:
        if self._fitted():
            return True
        if not self._tried_load:
            self._tried_load = True
            path = self.artifact or default_artifact(self.name)
            if Path(path).is_file():
                self.load(Path(path))
        return self._fitted()


# --- training from a dataset (CLI + maintenance task) -------------------------------------------
def training_set(dataset_dir: str | Path, settings: Settings | None = None, *, embed_fn: EmbedFn | None = None,
                 limit: int | None = None, seed: int = 0) -> tuple[TrainingSet, Catalog]:
    """A dataset's **train** split as a :class:`TrainingSet` (with MiniLM embeddings, cached
    under ``<data_dir>/cache``) and a catalog of its models."""
    from switchyard.config import get_settings
    from switchyard.datasets import load_dataset
    from switchyard.evaluation import cached_embeddings

    s = settings or get_settings()
    ds = load_dataset(dataset_dir)
    tr = ds.split_indices("train")
    if limit is not None and len(tr) > limit:
        tr = np.sort(np.random.default_rng(seed).permutation(tr)[:limit])
    texts = [ds.prompts[i].prompt for i in tr]
    emb = cached_embeddings(texts, name=f"{ds.name}-train", cache_dir=Path(s.data_dir) / "cache", embed_fn=embed_fn)
    train = TrainingSet(prompts=texts, models=ds.model_ids, quality=ds.quality[tr], cost=ds.cost[tr],
                        input_tokens=np.array([ds.prompts[i].input_tokens for i in tr], dtype=np.int64),
                        accept_threshold=ds.accept_threshold, embeddings=emb)
    return train, ds.to_catalog(indices=tr)


def train_policy(name: str, dataset_dir: str | Path, settings: Settings | None = None, *,
                 out: Path | None = None, seed: int = 0, embed_fn: EmbedFn | None = None,
                 limit: int | None = None) -> Path:
    """Fit the learned policy ``name`` on ``dataset_dir``'s train split and save its artifact.

    Returns the artifact path (default: ``<artifacts_dir>/<name>.pt``, where the live
    policy looks for it). The core of ``switchyard train`` and of the maintenance task.
    """
    from switchyard.errors import ConfigError
    from switchyard.routing.base import get_policy

    if name not in LEARNED:
        raise ConfigError(f"cannot train {name!r}; trainable policies: {', '.join(LEARNED)}")
    train, catalog = training_set(dataset_dir, settings, embed_fn=embed_fn, limit=limit, seed=seed)
    policy = get_policy(name)
    ctx = RoutingContext(seed=seed, embed_fn=embed_fn)
    policy.fit(train, catalog, ctx)  # type: ignore[attr-defined]
    if out is not None:
        path = Path(out)
    elif settings is not None:
        base = Path(settings.artifacts_dir) if settings.artifacts_dir else Path(settings.data_dir) / "artifacts"
        path = base / f"{name}.pt"
    else:
        path = default_artifact(name)
    policy.save(path)  # type: ignore[attr-defined]
    return path


# --- ridge regression (closed form, masked per model) ---------------------------------------------
def fit_ridge(x: np.ndarray, quality: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-model ridge regression of quality on features, over each model's known rows.

    x: [N, D] (standardised), quality: [N, M] with NaN = unknown. Returns (W [D, M], b [M]);
    the intercept is the model's mean known quality and is not penalised.
    """
    d = x.shape[1]
    m = quality.shape[1]
    w = np.zeros((d, m), dtype=np.float64)
    b = np.zeros(m, dtype=np.float64)
    for j in range(m):
        known = np.isfinite(quality[:, j])
        if not known.any():
            continue
        xk, yk = x[known].astype(np.float64), quality[known, j]
        mu_x, mu_y = xk.mean(axis=0), yk.mean()
        xc = xk - mu_x
        gram = xc.T @ xc + alpha * np.eye(d)
        w[:, j] = np.linalg.solve(gram, xc.T @ (yk - mu_y))
        b[j] = mu_y - mu_x @ w[:, j]
    return w, b


def ridge_predict(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shape: [N, M] float64, clipped to [0, 1]."""
    return np.clip(x.astype(np.float64) @ w + b[None, :], 0.0, 1.0)


def choose_ridge_alpha(x: np.ndarray, quality: np.ndarray, alphas: Sequence[float] = (1.0, 10.0, 100.0, 1000.0),
                       seed: int = 0) -> float:
    """The alpha with the lowest masked squared error on a seeded 20% hold-out of the rows."""
    if len(x) < 50:
        return float(alphas[len(alphas) // 2])
    perm = np.random.default_rng(seed).permutation(len(x))
    n_val = max(len(x) // 5, 1)
    val, tr = perm[:n_val], perm[n_val:]
    best, best_a = math.inf, float(alphas[0])
    for a in alphas:
        w, b = fit_ridge(x[tr], quality[tr], a)
        err = (ridge_predict(x[val], w, b) - quality[val]) ** 2
        mse = float(np.nanmean(np.where(np.isfinite(quality[val]), err, np.nan)))
        if mse < best:
            best, best_a = mse, float(a)
    return best_a
