"""Atomic job accounting: one place moves a request to a terminal state and counts it.

The conditional UPDATE (``WHERE state NOT IN terminal``) makes the transition happen at
most once even when two deliveries of the same task race; only the winner bumps the
job's counters, with ``SET n = n + 1`` so concurrent workers never lose a count. No
chords: the counter itself says when the job is done.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, bindparam, update
from sqlmodel import Session

from switchyard.store.models import JOBS, REQUESTS, TERMINAL_REQUEST, JobStatus, RequestState, utcnow

_TERMINAL = sorted(str(x) for x in TERMINAL_REQUEST)
_OPEN_JOB = [JobStatus.in_progress, JobStatus.cancelling, JobStatus.validating]
# Built once: per-request statements reuse one compiled form (bound values vary, the SQL does not).
_BUMP = update(JOBS).where(JOBS.c.id == bindparam("jid")).values(
    n_succeeded=JOBS.c.n_succeeded + bindparam("ok", type_=Integer),
    n_failed=JOBS.c.n_failed + bindparam("bad", type_=Integer),
    cost_usd=JOBS.c.cost_usd + bindparam("usd", type_=Float))
_FINALIZING = (update(JOBS).where(JOBS.c.id == bindparam("jid"), JOBS.c.status.in_(_OPEN_JOB),
                                  JOBS.c.n_invalid + JOBS.c.n_succeeded + JOBS.c.n_failed >= JOBS.c.n_total)
               .values(status=JobStatus.finalizing))


def finish_request(s: Session, request_id: int, job_id: str, state: RequestState, *,
                   values: dict[str, Any], cost_usd: float = 0.0) -> bool:
    """Move one request to a terminal ``state``; returns False if it already was terminal."""
    res = s.connection().execute(
        update(REQUESTS).where(REQUESTS.c.id == request_id, REQUESTS.c.state.not_in(_TERMINAL))
        .values(state=str(state), finished_at=utcnow(), **values))
    if res.rowcount != 1:
        return False
    bump_job(s, job_id, succeeded=int(state == RequestState.succeeded),
             failed=int(state != RequestState.succeeded), cost_usd=cost_usd)
    return True


def bump_job(s: Session, job_id: str, *, succeeded: int = 0, failed: int = 0, cost_usd: float = 0.0) -> None:
    s.connection().execute(_BUMP, {"jid": job_id, "ok": succeeded, "bad": failed, "usd": cost_usd})


def mark_finalizing_if_done(s: Session, job_id: str) -> bool:
    """If every line is accounted for, move the job to ``finalizing`` (exactly once).

    Returns True for the single caller that made the move: it enqueues the finalizer.
    """
    res = s.connection().execute(_FINALIZING, {"jid": job_id})
    return bool(res.rowcount == 1)
