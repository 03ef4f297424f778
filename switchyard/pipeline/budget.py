"""A budgeted job (``budget_usd``) in the live pipeline: plan, release a wave, re-plan.

1. The gpu shards tag and route as usual, but a budgeted job's routed requests are not
   dispatched by the shard: they wait, each with its policy's candidate list (the
   decision's ``ranked`` models and scores).
2. When no request is left unrouted, :func:`plan_job` (maintenance queue) plans the
   whole job with :func:`switchyard.budget.plan` against what is left of the budget
   (budget - actual spend - predicted cost of what is in flight) and releases the next
   wave in line order (``budget_wave_min`` requests or ``budget_wave_share`` of those
   pending, whichever is more). Each finished dispatch enqueues the planner again; it
   releases the next wave once fewer than half a wave is in flight, re-planning with
   the actual costs that arrived meanwhile. A compare-and-set on ``Job.budget_wave``
   lets exactly one planner release each wave.
3. Dispatch guards every call (:func:`reserve`): it reserves the call's cost bound (its
   prompt plus ``max_tokens`` at the model's prices) and goes ahead only while spend +
   reservations + its bound fit the budget, or, with nothing else in flight, while its
   predicted cost fits. So a job never spends more than its budget plus one request's
   cost (for providers that honour ``max_tokens``).
4. Requests the budget cannot cover even with their cheapest candidate, once nothing is
   in flight, fail into the error file with code ``budget_exhausted``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from switchyard.budget import Option, plan, wave_size
from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.errors import UnknownModel
from switchyard.pipeline.counters import finish_request, mark_finalizing_if_done
from switchyard.store.db import session_scope
from switchyard.store.models import Job, JobStatus, Request, RequestState

IN_FLIGHT = [RequestState.routed, RequestState.dispatching]


@dataclass
class PlanResult:
    to_dispatch: list[tuple[int, str]] = field(default_factory=list)
    finalize: bool = False
    reason: str = ""


def candidates_of(r: Request, catalog: Catalog) -> list[Option]:
    """The request's candidates: its decision's ranked (model, score), or its one fixed model."""
    ranked = (r.decision or {}).get("ranked") or [[r.model, 0.0]]
    out = []
    for m, score in ranked:
        try:
            out.append(Option(str(m), float(score), catalog.get(str(m)).predicted_cost(r.input_tokens)))
        except UnknownModel:
            continue  # a model removed from the catalog since routing is no candidate
    return out


def _predicted(r: Request, catalog: Catalog) -> float:
    try:
        return catalog.get(str(r.model)).predicted_cost(r.input_tokens)
    except UnknownModel:
        return 0.0


def plan_job(settings: Settings, job_id: str, *, catalog: Catalog) -> PlanResult:
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        if job is None or job.budget_usd is None or job.status != JobStatus.in_progress:
            return PlanResult(reason="not a running budgeted job")
        if s.exec(select(func.count()).select_from(Request).where(
                Request.job_id == job_id, Request.state == RequestState.queued)).one():
            return PlanResult(reason="shards still routing")
        flight = list(s.exec(select(Request).where(Request.job_id == job_id, col(Request.state).in_(IN_FLIGHT),
                                                   col(Request.budget_wave).is_not(None))))
        pending = list(s.exec(select(Request).where(Request.job_id == job_id, Request.state == RequestState.routed,
                                                    col(Request.budget_wave).is_(None))
                              .order_by(col(Request.line_no))))
        if not pending:
            return PlanResult(reason="nothing pending")
        n_wave = wave_size(len(pending), settings.budget_wave_min, settings.budget_wave_share)
        if len(flight) > n_wave // 2:
            return PlanResult(reason="enough in flight")
        left = float(job.budget_usd) - float(job.cost_usd) - sum(_predicted(r, catalog) for r in flight)
        p = plan([candidates_of(r, catalog) for r in pending], left)
        ready = [(r, c) for r, c in zip(pending, p.choice, strict=True) if c is not None]
        if not ready:
            if flight:
                return PlanResult(reason="waiting for in-flight costs")
            return PlanResult(finalize=_fail_unaffordable(s, job, pending, catalog, left),
                              reason="budget exhausted")
        return _release(s, job, ready[:n_wave], left, len(pending))


def _release(s: Session, job: Job, wave: list[tuple[Request, Option]], left: float, n_pending: int) -> PlanResult:
    w = job.budget_wave
    won = s.execute(update(Job).where(col(Job.id) == job.id, col(Job.budget_wave) == w)
                    .values(budget_wave=w + 1))
    if won.rowcount != 1:  # type: ignore[attr-defined]
        return PlanResult(reason="another planner released this wave")
    for r, opt in wave:
        decision: dict[str, Any] = dict(r.decision or {})
        details = dict(decision.get("details") or {})
        details["budget"] = {"wave": w + 1, "planned_model": opt.model, "policy_model": r.model,
                             "left_usd": round(left, 8), "pending": n_pending}
        decision.update(model=opt.model, predicted_cost_usd=opt.cost, details=details)
        if opt.model != r.model:
            decision["reason"] = (f"budget plan: {opt.model} (the policy's pick was {r.model}); "
                                  f"${left:.4f} left for {n_pending} requests")
        s.execute(update(Request).where(col(Request.id) == r.id, col(Request.state) == RequestState.routed,
                                        col(Request.budget_wave).is_(None))
                  .values(model=opt.model, decision=decision, budget_wave=w + 1))
    return PlanResult([(int(r.id or 0), str(r.custom_id)) for r, _ in wave], reason=f"released wave {w + 1}")


def _fail_unaffordable(s: Session, job: Job, pending: list[Request], catalog: Catalog, left: float) -> bool:
    for r in pending:
        cheap = min(candidates_of(r, catalog), key=lambda o: o.cost, default=None)
        what = f"its cheapest candidate {cheap.model} is predicted at ${cheap.cost:.6f}" if cheap \
            else "it has no candidate model"
        msg = (f"job budget_usd ${job.budget_usd:.6f} is spent (${job.cost_usd:.6f} used, ${max(left, 0):.6f} "
               f"left) and {what}; raise budget_usd or submit fewer lines")
        finish_request(s, int(r.id or 0), job.id, RequestState.failed,
                       values={"error": {"code": "budget_exhausted", "message": msg}})
    return mark_finalizing_if_done(s, job.id)


# --- the dispatch guard ----------------------------------------------------------------
def reserve(s: Session, job_id: str, request_id: int, bound: float, predicted: float) -> str:
    """Reserve ``bound`` for one call of a budgeted job. -> ``ok`` | ``wait`` (others are in
    flight: retry soon) | ``over`` (nothing in flight and even the prediction does not fit)."""
    ok = s.execute(update(Job).where(
        col(Job.id) == job_id,
        (col(Job.cost_usd) + col(Job.budget_reserved_usd) + bound <= col(Job.budget_usd) + 1e-12)
        | ((col(Job.budget_reserved_usd) <= 1e-12) & (col(Job.cost_usd) + predicted <= col(Job.budget_usd) + 1e-12)))
        .values(budget_reserved_usd=col(Job.budget_reserved_usd) + bound))
    if ok.rowcount == 1:  # type: ignore[attr-defined]
        s.execute(update(Request).where(col(Request.id) == request_id).values(budget_reserved_usd=bound))
        return "ok"
    reserved = s.exec(select(Job.budget_reserved_usd).where(Job.id == job_id)).one()
    return "wait" if reserved > 1e-12 else "over"


def release(s: Session, job_id: str, request_id: int) -> None:
    """Give back a request's reservation (after its call, or on redelivery after a crash)."""
    held = s.exec(select(Request.budget_reserved_usd).where(Request.id == request_id)).one()
    if held:
        s.execute(update(Request).where(col(Request.id) == request_id).values(budget_reserved_usd=None))
        s.execute(update(Job).where(col(Job.id) == job_id)
                  .values(budget_reserved_usd=col(Job.budget_reserved_usd) - held))
