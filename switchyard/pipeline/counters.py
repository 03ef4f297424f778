"""Atomic job accounting: one place moves a request to a terminal state and counts it.

The conditional UPDATE (``WHERE state NOT IN terminal``) makes the transition happen at
most once even when two deliveries of the same task race; only the winner bumps the
job's counters, with ``SET n = n + 1`` so concurrent workers never lose a count. No
chords: the counter itself says when the job is done.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col

from switchyard.store.models import TERMINAL_REQUEST, Job, JobStatus, Request, RequestState, utcnow


def finish_request(s: Session, request_id: int, job_id: str, state: RequestState, *,
                   values: dict[str, Any], cost_usd: float = 0.0) -> bool:
    """Move one request to a terminal ``state``; returns False if it already was terminal."""
    res = s.execute(
        update(Request)
        .where(col(Request.id) == request_id, col(Request.state).not_in([str(x) for x in TERMINAL_REQUEST]))
        .values(state=str(state), finished_at=utcnow(), **values)
    )
    if res.rowcount != 1:  # type: ignore[attr-defined]
        return False
    bump_job(s, job_id, succeeded=int(state == RequestState.succeeded),
             failed=int(state != RequestState.succeeded), cost_usd=cost_usd)
    return True


def bump_job(s: Session, job_id: str, *, succeeded: int = 0, failed: int = 0, cost_usd: float = 0.0) -> None:
    s.execute(update(Job).where(col(Job.id) == job_id).values(
        n_succeeded=col(Job.n_succeeded) + succeeded, n_failed=col(Job.n_failed) + failed,
        cost_usd=col(Job.cost_usd) + cost_usd))


def mark_finalizing_if_done(s: Session, job_id: str) -> bool:
    """If every line is accounted for, move the job to ``finalizing`` (exactly once).

    Returns True for the single caller that made the move: it enqueues the finalizer.
    """
    res = s.execute(
        update(Job)
        .where(col(Job.id) == job_id,
               col(Job.status).in_([JobStatus.in_progress, JobStatus.cancelling, JobStatus.validating]),
               col(Job.n_invalid) + col(Job.n_succeeded) + col(Job.n_failed) >= col(Job.n_total))
        .values(status=JobStatus.finalizing)
    )
    return bool(res.rowcount == 1)  # type: ignore[attr-defined]
