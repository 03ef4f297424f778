"""Tryage: a perceptive router that predicts every model's quality, traded against user flags.

Hari & Thomson, "Tryage: Real-time, intelligent routing of user prompts to large
language models" (2023). The perceptive router here is a small torch MLP ensemble and a
ridge regressor (by default their mean) on MiniLM prompt embeddings that predict
``q_hat_m(p)`` for every catalog model they were trained on, and the decision is::

    argmax_m [ q_hat_m(p) - lambda * sum_f w_f * a_f(m) ]

with ``a_f`` the catalog attributes normalised to [0, 1] (``cost``: the request's
predicted cost, ``size``: params_b, ``age``: days since release, ``latency``:
latency_ms; see :mod:`switchyard.routing.quality`) and the flags ``w_f`` taken from
the request's ``routing.flags`` (default: the ``tryage_flags`` setting, ``{"cost": 1}``).
lambda is the knob. Trained by ``switchyard train tryage DATASET_DIR`` (or the
harness's ``fit``); the artifact is a ``torch.save`` dict loaded with ``weights_only``.

Also here: :func:`pareto_front` / :func:`pareto_sweep` / :func:`plot_pareto`, the
Pareto front of predicted quality against one attribute as lambda grows (the eval's
``--pareto FLAG``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from switchyard.catalog import Catalog
from switchyard.routing.base import RouteRequest, RoutingContext, TrainingSet, policies
from switchyard.routing.quality import (
    ATTRIBUTES,
    LazyArtifact,
    PenalisedQualityPolicy,
    PredictionMemo,
    Standardizer,
    TrainConfig,
    choose_ridge_alpha,
    fit_quality_module,
    fit_ridge,
    load_artifact,
    normalised_attribute,
    predict_quality,
    raw_attribute,
    ridge_predict,
    save_artifact,
    train_embeddings,
)

Estimator = Literal["mlp", "ridge", "blend"]


def _mean_logits(quality: np.ndarray) -> np.ndarray:
    """logit of each model's mean known quality, clipped away from 0 and 1. Shape: [M]."""
    with np.errstate(invalid="ignore"):
        means = np.clip(np.nan_to_num(np.nanmean(quality, axis=0), nan=0.5), 1e-3, 1 - 1e-3)
    return np.log(means / (1 - means))


def build_mlp(dim: int, hidden: int, n_models: int, dropout: float) -> Any:
    """384 -> hidden -> n_models logits (one per model)."""
    import torch

    return torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.GELU(), torch.nn.Dropout(dropout),
                               torch.nn.Linear(hidden, n_models))


@policies.register("tryage")
class TryagePolicy(LazyArtifact, PenalisedQualityPolicy):
    """See the module docstring. ``estimator``: ``blend`` (default: the mean of the MLP
    ensemble's and the ridge regressor's predictions), ``mlp`` or ``ridge``. ``ensemble``
    MLPs with consecutive seeds are averaged; each MLP's output bias starts at the logit
    of the model's mean train quality (``init_bias``), so that stopping early does not
    leave every model's prediction near 0.5. The ridge penalty is chosen on a
    seeded 20% hold-out of the train rows. The defaults were picked on validation folds
    carved from the train splits (docs/policies.md), never on a test split."""

    name = "tryage"
    knob_name = "lambda"
    knob_default = 0.1

    def __init__(self, *, estimator: Estimator = "blend", hidden: int = 256, dropout: float = 0.1, ensemble: int = 3,
                 flags: dict[str, float] | None = None, artifact: Path | None = None,
                 train_config: TrainConfig | None = None, init_bias: bool = True) -> None:
        if estimator not in ("mlp", "ridge", "blend"):
            raise ValueError(f"tryage estimator must be mlp, ridge or blend, not {estimator!r}")
        self.estimator = estimator
        self.hidden, self.dropout, self.ensemble = hidden, dropout, max(1, ensemble)
        self.init_bias = init_bias
        self.artifact = artifact
        self.train_config = train_config or TrainConfig()
        if flags is None:
            from switchyard.config import get_settings

            flags = dict(get_settings().tryage_flags)
        self.default_flags = {k: float(v) for k, v in flags.items() if k in ATTRIBUTES}
        self.models: list[str] = []
        self.scaler: Standardizer | None = None
        self.nets: list[Any] = []
        self.ridge: tuple[np.ndarray, np.ndarray] | None = None
        self.meta: dict[str, Any] = {}
        self._memo = PredictionMemo()

    # --- training ------------------------------------------------------------------------
    def fit(self, train: TrainingSet, catalog: Catalog, context: RoutingContext) -> None:
        import torch

        emb = train_embeddings(train, context)  # [N, 384]
        known_cols = [j for j in range(len(train.models)) if np.isfinite(train.quality[:, j]).any()]
        self.models = [train.models[j] for j in known_cols]
        quality = np.asarray(train.quality[:, known_cols], dtype=np.float64)  # [N, M]
        self.scaler = Standardizer.fit(emb)
        x = self.scaler(emb)
        self.nets, self.ridge = [], None
        self.meta = {"n_train": len(x), "estimator": self.estimator}
        if self.estimator in ("mlp", "blend"):
            losses = []
            for k in range(self.ensemble):
                cfg = TrainConfig(**{**self.train_config.__dict__, "seed": self.train_config.seed + context.seed + k})
                torch.manual_seed(cfg.seed)  # the initial weights are part of the seeded run
                net = build_mlp(x.shape[1], self.hidden, len(self.models), self.dropout)
                if self.init_bias:  # start every output at the logit of the model's mean train quality
                    with torch.no_grad():
                        net[-1].bias.copy_(torch.as_tensor(_mean_logits(quality), dtype=torch.float32))
                stats = fit_quality_module(net, x, quality, cfg)
                losses.append(stats["val_loss"])
                self.nets.append(net)
            self.meta["val_loss"] = float(np.mean(losses)) if losses else float("nan")
        if self.estimator in ("ridge", "blend"):
            alpha = choose_ridge_alpha(x, quality, seed=context.seed)
            self.ridge = fit_ridge(x, quality, alpha)
            self.meta["ridge_alpha"] = alpha
        self._memo.clear()
        self.set_grid_from_train(train, catalog, context, emb)

    def _fitted(self) -> bool:
        return bool(self.models) and self.scaler is not None and (bool(self.nets) or self.ridge is not None)

    # --- predicting ----------------------------------------------------------------------
    def predict(self, requests: Sequence[RouteRequest], context: RoutingContext) -> tuple[list[str], np.ndarray]:
        return self.models, self._memo.get_or_compute(requests, len(self.models),
                                                      lambda rs: self._predict(context.embed(rs)))

    def _predict(self, emb: np.ndarray) -> np.ndarray:
        """Predicted quality [B, M] of the trained models, from embeddings [B, 384]."""
        assert self.scaler is not None
        x = self.scaler(np.asarray(emb, dtype=np.float32))
        parts = []
        if self.nets:
            parts.append(np.mean([predict_quality(net, x) for net in self.nets], axis=0))
        if self.ridge is not None:
            parts.append(ridge_predict(x, *self.ridge))
        return np.mean(parts, axis=0)

    # --- artifact --------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        import torch

        if not self._fitted() or self.scaler is None:
            raise ValueError("tryage is not fitted; nothing to save")
        save_artifact(path, {
            "kind": "tryage", "version": 1, "models": list(self.models), "estimator": self.estimator,
            "hidden": self.hidden, "dropout": self.dropout, "flags": dict(self.default_flags),
            "mean": torch.as_tensor(self.scaler.mean), "std": torch.as_tensor(self.scaler.std),
            "nets": [{k: v.detach().cpu() for k, v in net.state_dict().items()} for net in self.nets],
            "ridge": None if self.ridge is None else [torch.as_tensor(self.ridge[0]), torch.as_tensor(self.ridge[1])],
            "meta": {k: v for k, v in self.meta.items() if isinstance(v, int | float | str)},
        })

    def load(self, path: Path) -> None:
        obj = load_artifact(path, "tryage")
        self.models = list(obj["models"])
        self.estimator = obj["estimator"]
        self.hidden, self.dropout = int(obj["hidden"]), float(obj["dropout"])
        self.scaler = Standardizer(obj["mean"].numpy(), obj["std"].numpy())
        self.nets = []
        for state in obj["nets"]:
            net = build_mlp(int(self.scaler.mean.shape[0]), self.hidden, len(self.models), self.dropout)
            net.load_state_dict(state)
            net.eval()
            self.nets.append(net)
        r = obj.get("ridge")
        self.ridge = None if r is None else (r[0].double().numpy(), r[1].double().numpy())
        self.meta = dict(obj.get("meta") or {})
        self._memo.clear()


# --- Pareto front of predicted quality vs one attribute ---------------------------------------------
def pareto_front(attribute: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points (lower attribute, higher quality), by attribute ascending.

    A point is dominated when another has an attribute no higher and a quality strictly
    higher (or equal quality and a strictly lower attribute). NaN points are ignored.
    """
    a, q = np.asarray(attribute, dtype=np.float64), np.asarray(quality, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(a) & np.isfinite(q))
    order = ok[np.lexsort((-q[ok], a[ok]))]  # attribute ascending, then quality descending
    front: list[int] = []
    best = -np.inf
    for i in order:
        if q[i] > best + 1e-12:
            front.append(int(i))
            best = q[i]
    return np.array(front, dtype=np.int64)


@dataclass
class ParetoPoint:
    label: str  # "lambda=0.3" or a model id
    weight: float | None  # lambda (None for a single model)
    quality: float  # mean predicted quality of the chosen models
    attribute: float  # mean raw attribute of the chosen models (USD, billions, days, ms)
    share: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "weight": self.weight, "quality": self.quality, "attribute": self.attribute,
                "share": self.share}


def pareto_sweep(policy: PenalisedQualityPolicy, requests: Sequence[RouteRequest], catalog: Catalog,
                 context: RoutingContext, flag: str, weights: Sequence[float] | None = None) -> dict[str, Any]:
    """Predicted quality against one attribute as the flag's weight lambda grows.

    Every request gets flags ``{flag: 1}``; for each lambda the policy's choice per
    request is ``argmax q_hat - lambda * a_flag``; a point is (mean raw attribute, mean
    predicted quality) of the choices. Single models are points too. Returns
    ``{"flag", "points", "models", "front"}`` where ``front`` lists the labels of the
    non-dominated points (:func:`pareto_front`), cheapest first.
    """
    if flag not in ATTRIBUTES:
        raise ValueError(f"unknown flag {flag!r}; choose one of {', '.join(ATTRIBUTES)}")
    ids = catalog.ids()
    q = policy.score_batch(requests, catalog, context)  # [B, M], NaN = not choosable
    raw = raw_attribute(flag, requests, ids, catalog)  # [B, M]
    norm = normalised_attribute(flag, requests, ids, catalog)  # [B, M]
    ok = np.isfinite(q)
    rows = np.flatnonzero(ok.any(axis=1))
    grid = list(weights) if weights is not None else [float(x) for x in np.geomspace(10.0, 1e-3, 24)] + [0.0]
    points: list[ParetoPoint] = []
    for lam in grid:
        util = np.where(ok, q - lam * norm, -np.inf)[rows]
        pick = util.argmax(axis=1)
        qq, aa = q[rows, pick], raw[rows, pick]
        counts = np.bincount(pick, minlength=len(ids)) / max(len(rows), 1)
        points.append(ParetoPoint(f"lambda={lam:g}", float(lam), float(qq.mean()) if len(rows) else float("nan"),
                                  float(np.nanmean(aa)) if len(rows) and np.isfinite(aa).any() else float("nan"),
                                  {m: float(c) for m, c in zip(ids, counts, strict=True) if c > 0}))
    singles: list[ParetoPoint] = []
    for j, m in enumerate(ids):
        have = ok[:, j]
        if have.any():
            singles.append(ParetoPoint(m, None, float(q[have, j].mean()),
                                       float(np.nanmean(raw[have, j])) if np.isfinite(raw[have, j]).any()
                                       else float("nan"), {m: 1.0}))
    allp = points + singles
    front = pareto_front(np.array([p.attribute for p in allp]), np.array([p.quality for p in allp]))
    return {"flag": flag, "points": [p.to_json() for p in points], "models": [p.to_json() for p in singles],
            "front": [allp[i].label for i in front]}


def plot_pareto(report: dict[str, Any], path: Path, *, title: str | None = None) -> None:
    """One PNG: the lambda sweep, the single models, and the front through them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    units = {"cost": "mean predicted cost (USD)", "size": "mean parameters (billions)",
             "age": "mean age (days since release)", "latency": "mean latency (ms)"}
    pts, singles = report["points"], report["models"]
    by_label = {p["label"]: p for p in pts + singles}
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    ax.plot([p["attribute"] for p in pts], [p["quality"] for p in pts], ".", color="tab:blue", alpha=0.6,
            label="tryage, lambda sweep")
    ax.scatter([p["attribute"] for p in singles], [p["quality"] for p in singles], marker="s", color="black",
               s=24, label="single models", zorder=4)
    for p in singles:
        ax.annotate(p["label"].split("/")[-1][:24], (p["attribute"], p["quality"]), fontsize=6, xytext=(3, 2),
                    textcoords="offset points")
    front = [by_label[lbl] for lbl in report["front"]]
    ax.step([p["attribute"] for p in front], [p["quality"] for p in front], where="post", color="tab:red",
            lw=1.4, label="Pareto front")
    ax.set_xlabel(units.get(report["flag"], report["flag"]))
    ax.set_ylabel("mean predicted quality")
    ax.set_title(title or f"Tryage: predicted quality vs {report['flag']}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
