"""``cascade``: cheapest model first, escalating while a cheap quality estimate is low.

FrugalGPT-style (Chen et al., 2023) LLM cascade, decided at routing time. For each
request the **ladder** is its eligible models in increasing predicted cost, keeping only
those whose mean train quality beats every cheaper rung (a pricier model that is not
better on average is never worth escalating to). Walking up the ladder, the first rung
whose estimated quality reaches the threshold tau is chosen; the top rung takes what is
left. tau is the knob: 0 keeps every request on the cheapest rung, 1 sends all to the top.

The "cheap quality estimate" is a per-model ridge regression on the prompt's MiniLM
embedding (closed form, microseconds per request): an ex-ante estimate of how well
the rung will answer, not a judge of an answer already generated. A post-generation
cascade (call the cheap model, score its answer, escalate) needs the dispatch stage to
call models in sequence; the decision's ``details.ladder`` lists the rungs and their
estimates so such a stage can follow them.
"""

from __future__ import annotations

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
    fallback_decision,
    policies,
)
from switchyard.routing.baselines import eligibility_matrix, predicted_costs
from switchyard.routing.quality import (
    LazyArtifact,
    PredictionMemo,
    Standardizer,
    choose_ridge_alpha,
    fit_ridge,
    load_artifact,
    ridge_predict,
    save_artifact,
    train_embeddings,
)


@policies.register("cascade")
class CascadePolicy(LazyArtifact):
    name = "cascade"
    knob_name = "tau"
    knob_default = 0.5

    def __init__(self, *, artifact: Path | None = None) -> None:
        self.artifact = artifact
        self.models: list[str] = []
        self.means: dict[str, float] = {}
        self.scaler: Standardizer | None = None
        self.ridge: tuple[np.ndarray, np.ndarray] | None = None
        self.meta: dict[str, Any] = {}
        self._memo = PredictionMemo()
        self._train_rungs: np.ndarray | None = None  # estimates of non-top rungs on train prompts, for knob_grid

    # --- knob ------------------------------------------------------------------------------
    def knob_grid(self, n: int = 21) -> list[float]:
        """tau from 0 (all on the cheapest rung) up to just above the largest train estimate
        (all on the top rung), at quantiles of the train prompts' estimates in between."""
        n = max(int(n), 2)
        est = self._train_rungs
        if est is None or est.size == 0:
            return [float(x) for x in np.linspace(0.0, 1.0, n)]
        top = float(est.max()) + 1e-6
        qs = np.quantile(est, np.linspace(0.0, 1.0, n))
        qs[0], qs[-1] = 0.0, top
        qs = np.unique(np.round(qs, 12))
        if len(qs) < n:
            qs = np.unique(np.concatenate([qs, np.round(np.linspace(0.0, top, n), 12)]))
        return [float(x) for x in qs]

    # --- training ----------------------------------------------------------------------------
    def fit(self, train: TrainingSet, catalog: Catalog, context: RoutingContext) -> None:
        emb = train_embeddings(train, context)
        cols = [j for j in range(len(train.models)) if np.isfinite(train.quality[:, j]).any()]
        self.models = [train.models[j] for j in cols]
        quality = np.asarray(train.quality[:, cols], dtype=np.float64)
        self.means = {m: float(np.nanmean(quality[:, k])) for k, m in enumerate(self.models)}
        self.scaler = Standardizer.fit(emb)
        x = self.scaler(emb)
        alpha = choose_ridge_alpha(x, quality, seed=context.seed)
        self.ridge = fit_ridge(x, quality, alpha)
        self.meta = {"n_train": len(x), "ridge_alpha": alpha}
        self._memo.clear()
        # Knob grid: the estimates the threshold is compared with (rungs below the top), on train.
        idx = np.arange(len(x))
        if len(idx) > 4000:
            idx = np.sort(np.random.default_rng(context.seed).permutation(len(idx))[:4000])
        reqs = [RouteRequest(id=f"train:{i}", prompt=train.prompts[i], input_tokens=int(train.input_tokens[i]),
                             embedding=emb[i]) for i in idx]
        pred = ridge_predict(x[idx], *self.ridge)
        vals: list[float] = []
        for b, r in enumerate(reqs):
            ladder = self.ladder(r, catalog, [m for m in self.models if m in catalog])
            col = {m: k for k, m in enumerate(self.models)}
            vals.extend(float(pred[b, col[m]]) for m in ladder[:-1])
        self._train_rungs = np.asarray(vals, dtype=np.float64)

    def _fitted(self) -> bool:
        return self.ridge is not None and self.scaler is not None and bool(self.models)

    def ladder(self, r: RouteRequest, catalog: Catalog, candidates: Sequence[str]) -> list[str]:
        """Candidates by increasing predicted cost, each better on train (mean quality) than all cheaper ones."""
        order = sorted(candidates, key=lambda m: (catalog.get(m).predicted_cost(r.input_tokens),
                                                  -self.means.get(m, 0.0), m))
        out: list[str] = []
        best = -np.inf
        for m in order:
            q = self.means.get(m, -np.inf)
            if q > best + 1e-12:
                out.append(m)
                best = q
        return out

    def estimates(self, requests: Sequence[RouteRequest], context: RoutingContext) -> np.ndarray:
        """Ridge estimates [B, M] over ``self.models``."""
        assert self.scaler is not None and self.ridge is not None
        scaler, ridge = self.scaler, self.ridge
        return self._memo.get_or_compute(requests, len(self.models),
                                         lambda rs: ridge_predict(scaler(context.embed(rs)), *ridge))

    # --- deciding ------------------------------------------------------------------------------
    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        if not self.ready():
            return [fallback_decision(r, catalog, self.name, "cascade has no trained artifact; run "
                                      "'switchyard train cascade DATASET_DIR'") for r in requests]
        models = [m for m in self.models if m in catalog]
        if not models:
            return [fallback_decision(r, catalog, self.name, "no catalog model has a quality estimate")
                    for r in requests]
        col = {m: k for k, m in enumerate(self.models)}
        est = self.estimates(requests, context)
        elig = eligibility_matrix(requests, catalog, models)
        cost = predicted_costs(requests, catalog, models)
        out = []
        for b, r in enumerate(requests):
            tau = context.knob_for(r, self.knob_default)
            cands = [m for j, m in enumerate(models) if elig[b, j]]
            if not cands:
                out.append(fallback_decision(r, catalog, self.name, "no eligible model has an estimate", tau))
                continue
            ladder = self.ladder(r, catalog, cands)
            steps = [(m, float(est[b, col[m]])) for m in ladder]
            pick = next((i for i, (_, q) in enumerate(steps[:-1]) if q >= tau), len(steps) - 1)
            model = ladder[pick]
            if pick < len(steps) - 1:
                why = f"estimate {steps[pick][1]:.3f} >= tau {tau:g}"
            elif len(steps) == 1:
                why = "the only rung"
            else:
                why = f"top rung: every cheaper rung's estimate was below tau {tau:g}"
            escalated = ", ".join(f"{m} ({q:.2f})" for m, q in steps[:pick])
            reason = f"{model}: {why}" + (f"; escalated past {escalated}" if escalated else "")
            ranked = [(m, q) for m, q in steps[pick:]] + [(m, q) for m, q in steps[:pick]]
            out.append(RouteDecision(model=model, policy=self.name, reason=reason, ranked=ranked, knob=tau,
                                     tags=list(r.tags), predicted_cost_usd=float(cost[b, models.index(model)]),
                                     details={"ladder": [{"model": m, "estimate": round(q, 4)} for m, q in steps],
                                              "rung": pick}))
        return out

    # --- artifact ----------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        import torch

        if not self._fitted() or self.scaler is None or self.ridge is None:
            raise ValueError("cascade is not fitted; nothing to save")
        save_artifact(path, {"kind": "cascade", "version": 1, "models": list(self.models), "means": dict(self.means),
                             "mean": torch.as_tensor(self.scaler.mean), "std": torch.as_tensor(self.scaler.std),
                             "w": torch.as_tensor(self.ridge[0]), "b": torch.as_tensor(self.ridge[1]),
                             "rungs": torch.as_tensor(self._train_rungs if self._train_rungs is not None
                                                      else np.zeros(0)),
                             "meta": {k: v for k, v in self.meta.items() if isinstance(v, int | float | str)}})

    def load(self, path: Path) -> None:
        obj = load_artifact(path, "cascade")
        self.models = list(obj["models"])
        self.means = {str(k): float(v) for k, v in obj["means"].items()}
        self.scaler = Standardizer(obj["mean"].numpy(), obj["std"].numpy())
        self.ridge = (obj["w"].double().numpy(), obj["b"].double().numpy())
        rungs = obj.get("rungs")
        self._train_rungs = None if rungs is None else rungs.double().numpy()
        self.meta = dict(obj.get("meta") or {})
        self._memo.clear()
