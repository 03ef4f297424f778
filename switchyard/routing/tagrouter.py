"""TagRouter: route by tag x model scores, cheapest model within θ of the best.

For a request with canonical tags ``T``: ``S(M) = sum_{t in T} score(M, t)``, used as
the weighted mean ``S / sum_t w_t`` (see :mod:`switchyard.scoring`). The policy picks
the **cheapest** eligible model whose normalised ``S`` is within ``θ * spread`` of the
best, where ``spread`` is the range of the models' global rates in the table. So θ is
dataset-free: θ = 0 is "the best model for these tags", θ = 1 tolerates a gap as
wide as the one between the best and the worst model overall (nearly always the
cheapest). Equally priced candidates go to the higher score.

Defaults, all recorded in the decision:
    - No known tag: the model with the best global score per predicted dollar, the
      global score read as a win probability ``(rate - s_loss) / (s_win - s_loss)``,
      among the models whose global score is within θ of the best (so θ = 0 gives the
      best model overall and a large θ the plain best value for money).
    - No table yet (nothing imported, nothing refreshed): the cheapest eligible model
      (``fallback_decision``).
    - A model with no outcome at all is never chosen on its scores; with exploration
      on (``exploration_rate``) a share of the requests is Thompson-sampled from the
      cells' uncertainty and goes to the argmax of the sampled scores (θ is not
      applied to them, or a dearer model could never be explored), so such a model
      can be picked and earns its first rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.catalog import Catalog
from switchyard.routing.base import RouteDecision, RouteRequest, RoutingContext, TrainingSet, policies
from switchyard.routing.base import fallback_decision as _fallback
from switchyard.routing.baselines import eligibility_matrix, predicted_costs
from switchyard.scoring import ScorerConfig, ScoreTable, TagCounts, TagScorer, cheapest_within, theta_grid

TableSource = Callable[[], ScoreTable | None]


@policies.register("tagrouter")
class TagRouterPolicy:
    name = "tagrouter"
    knob_name = "theta"
    knob_default = 0.25

    def __init__(self, table: ScoreTable | None = None, *, source: TableSource | None = None,
                 config: ScorerConfig | None = None) -> None:
        """``table``: a ready table (tests, the eval). ``source``: called per batch for the
        current table (the live worker passes ``lambda: current_table(settings)``, which is
        cached per version). With neither, the store's promoted table is used."""
        self.table = table
        self.source = source
        self.config = config
        self._train_scores: np.ndarray | None = None  # [N, M] S of the train prompts, for knob_grid

    # --- knob ----------------------------------------------------------------------------
    def knob_grid(self, n: int = 21) -> list[float]:
        """θ values from "every request to its cheapest model" down to 0 ("the best score").

        After :meth:`fit`, the quantiles of the train prompts' score gaps
        (:func:`~switchyard.scoring.theta_grid`), so the sweep spans the whole cost
        axis; before, θ = u² for u from 1 to 0 (denser near 0, where the curve bends).
        """
        if self._train_scores is not None and self.table is not None:
            return theta_grid(self._train_scores, self.table.spread, n)
        u = np.linspace(1.0, 0.0, max(n, 2))
        return [float(x) for x in u**2]

    # --- training ------------------------------------------------------------------------
    def fit(self, train: TrainingSet, catalog: Catalog, context: RoutingContext) -> None:
        if train.tags is None:
            raise ValueError("tagrouter.fit needs train.tags (canonical tags per prompt); tag the prompts first")
        cfg = self.config or _settings_config()
        counts = TagCounts()
        counts.add_matrix(train.tags, train.models, train.quality)
        self.table = TagScorer(cfg).table(counts)
        self.source = None
        self._train_scores = self.table.aggregate(train.tags)[0]

    def save(self, path: Path) -> None:
        if self.table is None:
            raise ValueError("tagrouter has no table to save; fit or import first")
        Path(path).write_text(json.dumps(self.table.to_json()), encoding="utf-8")

    def load(self, path: Path) -> None:
        self.table = ScoreTable.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        self.source = None

    def current(self) -> ScoreTable | None:
        if self.table is not None:
            return self.table
        if self.source is not None:
            return self.source()
        from switchyard.config import get_settings
        from switchyard.store.scores import current_table

        return current_table(get_settings())

    # --- deciding ------------------------------------------------------------------------
    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        return self.decide_shifted(requests, catalog, context, None)

    def decide_shifted(self, requests: Sequence[RouteRequest], catalog: Catalog, context: RoutingContext,
                       offsets: np.ndarray | None) -> list[RouteDecision]:
        """:meth:`decide_batch` with ``offsets`` [B, M] (columns in ``catalog.ids()`` order) added to
        every S before TagRouter's own rule: how another signal (glider+tagrouter) composes with it."""
        table = self.current()
        if table is None:
            return [_fallback(r, catalog, self.name, "no tag score table yet (import outcomes or refresh)")
                    for r in requests]
        return _Batch(table, requests, catalog, context, self, offsets).decide()


def _settings_config() -> ScorerConfig:
    from switchyard.config import get_settings

    return ScorerConfig.from_settings(get_settings())


class _Batch:
    """One decide_batch call: every quantity is a [B, M] array over the catalog's models."""

    def __init__(self, table: ScoreTable, requests: Sequence[RouteRequest], catalog: Catalog,
                 context: RoutingContext, policy: TagRouterPolicy, offsets: np.ndarray | None = None) -> None:
        self.table, self.requests, self.catalog, self.ctx, self.policy = table, requests, catalog, context, policy
        self.offsets = offsets  # [B, M] or None
        self.models = catalog.ids()
        col = {m: j for j, m in enumerate(table.models)}
        self.cols = np.array([col.get(m, -1) for m in self.models], dtype=np.int64)
        self.seen = (self.cols >= 0) & (table.global_n[np.maximum(self.cols, 0)] > 0)

    def scores(self, explore: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = self.table
        s, n_known = t.aggregate([r.tags for r in self.requests], sample=explore, rng=self.ctx.rng)
        pooled = float(np.mean(t.global_rate)) if len(t.models) else 0.0
        full = np.full((len(self.requests), len(self.models)), pooled)
        full[:, self.cols >= 0] = s[:, self.cols[self.cols >= 0]]
        unseen = ~self.seen
        if explore.any() and unseen.any():  # never-seen models: a draw from the prior
            noise = self.ctx.rng.standard_normal((int(explore.sum()), int(unseen.sum())))
            full[np.ix_(explore, unseen)] += noise * t.config.sigma / np.sqrt(t.config.prior_strength)
        if self.offsets is not None:
            full += self.offsets
        return full, n_known

    def decide(self) -> list[RouteDecision]:
        reqs, t = self.requests, self.table
        b = len(reqs)
        explore = self.ctx.rng.random(b) < self.ctx.exploration_rate if self.ctx.exploration_rate > 0 \
            else np.zeros(b, dtype=bool)
        s, n_known = self.scores(explore)
        elig = eligibility_matrix(reqs, self.catalog, self.models)
        elig_scored = elig & (self.seen[None, :] | explore[:, None])
        # A request whose only eligible models have no outcomes still routes (on the prior).
        elig_scored = np.where(elig_scored.any(axis=1, keepdims=True), elig_scored, elig)
        cost = predicted_costs(reqs, self.catalog, self.models)
        theta = np.array([self.ctx.knob_for(r, self.policy.knob_default) for r in reqs], dtype=np.float64)
        # An explored request takes the argmax of its sampled scores (Thompson sampling proper):
        # under the cost rule a dearer model that was never chosen could never win a draw.
        pick = cheapest_within(s, cost, elig_scored, np.where(explore, 0.0, theta * t.spread))
        no_tag = (n_known == 0) & ~explore
        if no_tag.any():
            pick[no_tag] = self._per_dollar(s[no_tag], cost[no_tag], elig_scored[no_tag],
                                            theta[no_tag] * t.spread)
        return self._decisions(s, cost, elig_scored, pick, theta, no_tag, explore)

    def _decisions(self, s: np.ndarray, cost: np.ndarray, elig: np.ndarray, pick: np.ndarray, theta: np.ndarray,
                   no_tag: np.ndarray, explore: np.ndarray) -> list[RouteDecision]:
        """The explained decision records. Everything per model or per tag is done once for the batch
        (ranking, rounding, known-tag lookup); the loop only assembles each request's record."""
        b, tags = len(self.requests), self.table.tags
        order = np.argsort(np.where(elig, -s, np.inf), axis=1, kind="stable")  # [B, M] eligible best first
        n_elig = elig.sum(axis=1)
        rounded = np.round(s, 6).tolist()
        scores = s.tolist()
        rows, cols = self.table.tag_indices([r.tags for r in self.requests])
        known = np.split(cols, np.searchsorted(rows, np.arange(1, b)))  # per request: its known tags' rows
        spread = self.table.spread
        out = []
        for i in range(b):
            ranked_j = order[i, : n_elig[i]].tolist()
            out.append(self._one(i, scores[i], rounded[i], ranked_j, cost[i], int(pick[i]), float(theta[i]),
                                 spread, [tags[c] for c in known[i].tolist()], bool(no_tag[i]),
                                 bool(explore[i])))
        return out

    def _per_dollar(self, s: np.ndarray, cost: np.ndarray, elig: np.ndarray, tol: np.ndarray) -> np.ndarray:
        """The default without a known tag: the best global score per predicted dollar, among
        the models whose global score is within θ of the best (``s`` holds the global rates
        here). The global score is read as a win probability ``(rate - s_loss) / (s_win - s_loss)``.
        θ bounds the default as it bounds every decision: at θ = 0 only the best global model
        qualifies; at a large θ it is the plain best score per dollar."""
        c = self.table.config
        sc = np.where(elig, s, -np.inf)
        cand = elig & (sc >= sc.max(axis=1, keepdims=True) - tol[:, None] - 1e-12)
        p_win = np.clip((s - c.s_loss) / max(c.s_win - c.s_loss, 1e-9), 0.0, 1.0)
        value = np.where(cand, p_win / np.maximum(cost, 1e-12), -np.inf)
        return np.where(elig.any(axis=1), value.argmax(axis=1), -1)

    def _one(self, i: int, s: list[float], rounded: list[float], order: list[int], cost: np.ndarray, pick: int,
             theta: float, spread: float, known: list[str], no_tag: bool, explored: bool) -> RouteDecision:
        r = self.requests[i]
        if pick < 0:
            return _fallback(r, self.catalog, self.policy.name, "no eligible model", theta)
        models = self.models
        ranked = [(models[j], s[j]) for j in order]
        model, best = models[pick], models[order[0]]
        details: dict[str, Any] = {
            "S": {models[j]: rounded[j] for j in order}, "theta": theta, "theta_abs": theta * spread,
            "known_tags": known, "table_version": self.table.version, "explored": explored, "default": no_tag,
        }
        return RouteDecision(model=model, policy=self.policy.name, knob=theta, tags=list(r.tags), ranked=ranked,
                             reason=self._reason(model, best, known, cost, pick, order[0], theta, no_tag,
                                                 explored),
                             predicted_cost_usd=float(cost[pick]), details=details)

    def _reason(self, model: str, best: str, known: list[str], cost: np.ndarray, pick: int, best_j: int,
                theta: float, no_tag: bool, explored: bool) -> str:
        if no_tag:
            return f"{model}: no known tag, so the best global score per dollar within θ={theta:.2f} (default)"
        shown = ", ".join(known[:4]) + (", ..." if len(known) > 4 else "")
        head = "Thompson-sampled (exploration): " if explored else ""
        if model == best:
            return f"{head}{model} has the best score on tags [{shown}]"
        ratio = cost[best_j] / max(cost[pick], 1e-12)
        return (f"{head}{model} is within θ={theta:.2f} of the best ({best}) on tags [{shown}] "
                f"and {ratio:.1f}× cheaper")
