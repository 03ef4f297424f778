"""Job-level budgets: spend a job's ``budget_usd`` where it buys the most predicted quality.

Every routing policy already produces, per request, a candidate list: the decision's
``ranked`` list of (model, score), scores higher-is-better and comparable within a
request (TagRouter's S, kNN's predicted quality ...). With each candidate's predicted
cost (catalog prices, ``expected_output_tokens``) the whole job is a multiple-choice
knapsack: pick one model per request, maximise the summed score, keep the summed
predicted cost under the budget.

The planner (:func:`plan`) is the classic greedy for it, by marginal quality per dollar:

1. Per request, keep the efficient frontier of its candidates: sorted by cost, each
   step buys more score (dominated models drop out), and only the upper concave hull
   stays, so the steps' quality-per-dollar ratios decrease along the frontier.
2. Every request starts on its cheapest candidate. If even those do not fit, the
   requests are covered in line order and the remainder is marked *unaffordable*.
3. All upgrade steps go into one max-heap by ``d_score / d_cost``; the best step is
   taken while its extra cost fits in what is left, then that request's next step
   enters the heap. A step that does not fit is skipped (a cheaper step of another
   request may still fit).

On the hull this greedy is optimal for the LP relaxation, and loses at most one
request's upgrade against the integer optimum (Sinha & Zoltners, 1979). Any affine
transform of the scores (TagRouter's reward scale vs a [0, 1] quality) picks the
same plan, so the policy's raw scores are used as they are.

Live jobs re-plan the not-yet-dispatched remainder in waves as actual costs arrive
(:mod:`switchyard.pipeline.budget`); :func:`simulate` replays the same loop offline
for ``switchyard eval --budget``.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Option:
    """One candidate model of one request."""

    model: str
    score: float  # higher is better, comparable within the request
    cost: float  # predicted USD


@dataclass
class Plan:
    choice: list[Option | None]  # per request; None = unaffordable within the budget
    budget: float
    cost: float  # predicted total of the chosen options
    score: float  # summed score of the chosen options
    upgrades: int = 0
    notes: dict[str, float] = field(default_factory=dict)

    @property
    def unaffordable(self) -> list[int]:
        return [i for i, c in enumerate(self.choice) if c is None]


def frontier(options: Sequence[Option]) -> list[Option]:
    """The efficient, concave frontier of ``options``: increasing cost, increasing score,
    decreasing score-per-dollar between consecutive steps."""
    ok = [o for o in options if math.isfinite(o.score) and math.isfinite(o.cost) and o.cost >= 0]
    ok.sort(key=lambda o: (o.cost, -o.score, o.model))
    mono: list[Option] = []
    for o in ok:
        if not mono or o.score > mono[-1].score + 1e-12:  # dearer must buy more score
            if mono and o.cost <= mono[-1].cost + 1e-15:  # same cost, better score: replaces it
                mono.pop()
            mono.append(o)
    hull: list[Option] = []
    for o in mono:  # drop points under the chord of their neighbours (no concave gain)
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            if (b.score - a.score) * (o.cost - a.cost) <= (o.score - a.score) * (b.cost - a.cost):
                hull.pop()
            else:
                break
        hull.append(o)
    return hull


def plan(candidates: Sequence[Sequence[Option]], budget: float) -> Plan:
    """Assign one option per request maximising the summed score under ``budget`` (greedy,
    see the module docstring). A request without any candidate is unaffordable."""
    fronts = [frontier(c) for c in candidates]
    choice: list[Option | None] = [None] * len(fronts)
    level = [0] * len(fronts)
    left = float(budget)
    for i, f in enumerate(fronts):  # in line order: the remainder is what cannot be covered
        if f and f[0].cost <= left + 1e-12:
            choice[i] = f[0]
            left -= f[0].cost
    heap: list[tuple[float, int, int]] = []
    for i, f in enumerate(fronts):
        if choice[i] is not None and len(f) > 1:
            heapq.heappush(heap, (-_ratio(f[0], f[1]), i, 1))
    upgrades = 0
    while heap:
        _, i, step = heapq.heappop(heap)
        f = fronts[i]
        extra = f[step].cost - f[step - 1].cost
        if extra > left + 1e-12:
            continue  # this request's next step does not fit; a cheaper one elsewhere may
        left -= extra
        choice[i], level[i] = f[step], step
        upgrades += 1
        if step + 1 < len(f):
            heapq.heappush(heap, (-_ratio(f[step], f[step + 1]), i, step + 1))
    chosen = [c for c in choice if c is not None]
    return Plan(choice, float(budget), float(sum(c.cost for c in chosen)), float(sum(c.score for c in chosen)),
                upgrades)


def _ratio(a: Option, b: Option) -> float:
    return (b.score - a.score) / max(b.cost - a.cost, 1e-15)


# --- the offline replay of a budgeted job ------------------------------------------------
@dataclass
class SimResult:
    budget: float
    cost: float  # actual (recorded) cost
    quality: float  # mean over every request; a failed request counts 0
    served: int
    failed: int
    waves: int
    choices: list[str | None]

    def to_json(self) -> dict[str, float | int]:
        return {"budget_usd": self.budget, "cost_usd": self.cost, "quality": self.quality, "served": self.served,
                "failed": self.failed, "waves": self.waves}


def wave_size(n_pending: int, minimum: int = 64, share: float = 0.1) -> int:
    """How many requests one re-plan releases: a share of what is left, at least ``minimum``."""
    return max(minimum, math.ceil(n_pending * share))


def simulate(candidates: Sequence[Sequence[Option]], budget: float,
             actual: Callable[[int, str], tuple[float, float]], *, wave_min: int = 64,
             wave_share: float = 0.1) -> SimResult:
    """Replay a budgeted job offline, as the live pipeline runs it: plan the pending requests
    with what is left of the budget, release the next wave in line order, observe each
    answer's actual ``(cost, quality)``, re-plan, until everything ran or is unaffordable.

    The dispatch guard of the live pipeline applies too: a request whose predicted cost no
    longer fits what is left falls back to its cheapest candidate, or waits for the next
    re-plan (which fails it when even that does not fit)."""
    n = len(candidates)
    choices: list[str | None] = [None] * n
    quality = [0.0] * n
    pending = list(range(n))
    spent, waves = 0.0, 0
    while pending:
        p = plan([candidates[i] for i in pending], budget - spent)
        ready = [(i, c) for i, c in zip(pending, p.choice, strict=True) if c is not None]
        if not ready:
            break  # nothing left fits: the remainder fails as unaffordable
        waves += 1
        released = ready[: wave_size(len(pending), wave_min, wave_share)]
        done: set[int] = set()
        for i, opt in released:
            if spent + opt.cost > budget + 1e-12:  # actual costs ran over the prediction
                cheap = min(candidates[i], key=lambda o: (o.cost, -o.score))
                if spent + cheap.cost > budget + 1e-12:
                    continue
                opt = cheap
            cost, q = actual(i, opt.model)
            spent += cost
            choices[i], quality[i] = opt.model, q
            done.add(i)
        if not done:
            break
        pending = [i for i in pending if i not in done]
    served = sum(c is not None for c in choices)
    return SimResult(float(budget), float(spent), float(sum(quality) / max(n, 1)), served, n - served, waves,
                     choices)
