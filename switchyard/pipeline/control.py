"""Job control and inspection: list, show, cancel, and what a resume must re-enqueue."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select

from switchyard.config import Settings
from switchyard.errors import NotFound
from switchyard.pipeline.counters import bump_job, mark_finalizing_if_done
from switchyard.store.db import session_scope
from switchyard.store.models import TERMINAL_JOB, Job, JobStatus, Request, RequestState, utcnow


def get_job(settings: Settings, job_id: str, *, owner: str | None = None) -> Job:
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise NotFound(f"no job {job_id!r}; 'switchyard jobs list' shows the known ones")
        return job


def list_jobs(settings: Settings, *, limit: int = 20, after: str | None = None,
              owner: str | None = None) -> list[Job]:
    with session_scope(settings) as s:
        q = select(Job).order_by(col(Job.created_at).desc(), col(Job.id).desc())
        if owner is not None:
            q = q.where(Job.owner == owner)
        if after:
            anchor = s.get(Job, after)
            if anchor is not None:
                q = q.where(col(Job.created_at) <= anchor.created_at, col(Job.id) != after)
        return list(s.exec(q.limit(limit)))


def state_counts(settings: Settings, job_id: str) -> dict[str, int]:
    with session_scope(settings) as s:
        rows = s.exec(select(Request.state, func.count()).where(Request.job_id == job_id).group_by(Request.state))
        return {str(state): int(n) for state, n in rows}


def job_summary(job: Job) -> dict[str, Any]:
    return {"id": job.id, "status": job.status, "input": job.input_name, "policy": job.default_policy,
            "created_at": job.created_at.isoformat(), "finished_at": job.finished_at and job.finished_at.isoformat(),
            "request_counts": {"total": job.n_total, "completed": job.n_succeeded,
                               "failed": job.n_failed + job.n_invalid},
            "cost_usd": round(job.cost_usd, 6), "budget_usd": job.budget_usd,
            "judge_cost_usd": round(job.judge_cost_usd, 6), "output_path": job.output_path,
            "error_path": job.error_path}


def cancel_job(settings: Settings, job_id: str) -> bool:
    """Ask a job to stop: no new provider calls start; in-flight ones finish.

    Returns True when the caller must enqueue the finalizer (nothing was in flight).
    """
    not_started = [RequestState.queued, RequestState.routed]
    with session_scope(settings) as s:
        res = s.execute(update(Job).where(col(Job.id) == job_id,
                                          col(Job.status).not_in([str(x) for x in TERMINAL_JOB]))
                        .values(status=JobStatus.cancelling, cancel_requested_at=utcnow()))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            get_job(settings, job_id)  # raises NotFound for an unknown id
            return False
        n = s.execute(update(Request).where(col(Request.job_id) == job_id, col(Request.state).in_(not_started))
                      .values(state=RequestState.cancelled, finished_at=utcnow(),
                              error={"code": "cancelled", "message": "the job was cancelled before this ran"}))
        bump_job(s, job_id, failed=int(n.rowcount))  # type: ignore[attr-defined]
        return mark_finalizing_if_done(s, job_id)


def expire_overdue(settings: Settings, now: dt.datetime | None = None) -> list[str]:
    """Jobs past their completion window: requests not yet sent to a provider end ``expired``
    (they go to the error file); calls in flight finish. Returns the jobs to finalize now."""
    now = now or utcnow()
    to_finalize: list[str] = []
    with session_scope(settings) as s:
        overdue = list(s.exec(select(Job.id).where(col(Job.expires_at) < now,
                                                   col(Job.status).not_in([str(x) for x in TERMINAL_JOB]))))
        for job_id in overdue:
            n = s.execute(update(Request).where(col(Request.job_id) == job_id,
                                                col(Request.state).in_([RequestState.queued, RequestState.routed]))
                          .values(state=RequestState.expired, finished_at=now,
                                  error={"code": "expired", "message": "the batch's completion window ended "
                                                                       "before this request ran"}))
            bump_job(s, job_id, failed=int(n.rowcount))  # type: ignore[attr-defined]
            if mark_finalizing_if_done(s, job_id):
                to_finalize.append(job_id)
    return to_finalize


@dataclass
class ResumePlan:
    shards: list[int]  # shards with requests still queued or routed
    dispatching: list[tuple[int, str]]  # requests whose provider call never reported back
    finalize: bool


def resume_plan(settings: Settings, job_id: str) -> ResumePlan:
    """What to re-enqueue to finish a job whose queue was lost (crash, restart)."""
    with session_scope(settings) as s:
        shards = s.exec(select(Request.shard).where(
            Request.job_id == job_id, col(Request.state).in_([RequestState.queued, RequestState.routed]))
            .distinct())
        disp = s.exec(select(Request.id, Request.custom_id).where(
            Request.job_id == job_id, Request.state == RequestState.dispatching))
        finalize = mark_finalizing_if_done(s, job_id)
        job = s.get(Job, job_id)
        finalize = finalize or bool(job and job.status == JobStatus.finalizing)
        return ResumePlan(sorted(int(x) for x in shards), [(int(i or 0), str(c)) for i, c in disp], finalize)
