"""Intake: validate a job's lines, store the Job and one Request per line, plan shards."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert

from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.jobs import LineError, ParsedLine, plan_shards, validate_lines
from switchyard.routing.base import policy_names
from switchyard.store.db import session_scope
from switchyard.store.models import Job, JobStatus, Request, RequestState, utcnow


@dataclass
class JobPlan:
    job_id: str
    n_total: int
    n_invalid: int
    n_shards: int


def new_job_id() -> str:
    return f"batch_{uuid.uuid4().hex[:24]}"


def _request_row(job_id: str, r: ParsedLine | LineError, shard_of: dict[int, int]) -> dict[str, Any]:
    if isinstance(r, LineError):
        return {"job_id": job_id, "line_no": r.line_no, "custom_id": r.custom_id, "state": RequestState.invalid,
                "error": {"code": r.code, "message": r.message, "field": r.field, "line": r.line_no},
                "finished_at": utcnow(), "created_at": utcnow()}
    return {"job_id": job_id, "line_no": r.line_no, "custom_id": r.custom_id, "state": RequestState.queued,
            "shard": shard_of[r.line_no], "model_requested": r.model, "prompt": r.prompt, "body": r.body,
            "routing": r.routing, "input_tokens": r.input_tokens, "created_at": utcnow()}


def submit_job(settings: Settings, lines: Iterable[bytes], *, catalog: Catalog, input_name: str = "",
               policy: str | None = None, knob: float | None = None, owner: str | None = None,
               metadata: dict[str, Any] | None = None, budget_usd: float | None = None,
               completion_window: dt.timedelta | None = None, job_id: str | None = None,
               kind: str = "batch") -> JobPlan:
    """Validate every line, then store the job and its requests in one transaction."""
    known = set(policy_names())
    results = validate_lines(lines, catalog, max_prompt_tokens=settings.max_prompt_tokens,
                             policy_ok=lambda p: p in known or p.startswith(("fixed:", "glider+")))
    valid = [r for r in results if isinstance(r, ParsedLine)]
    shards = plan_shards([(r.line_no, r.input_tokens) for r in valid], batch_size=settings.batch_size,
                         max_tokens=settings.shard_max_tokens)
    shard_of = {line: i for i, shard in enumerate(shards) for line in shard}
    job_id = job_id or new_job_id()
    now = utcnow()
    job = Job(id=job_id, kind=kind, status=JobStatus.in_progress, owner=owner, input_name=input_name,
              default_policy=policy or settings.policy, knob=knob if knob is not None else settings.knob,
              tagger=settings.tagger, budget_usd=budget_usd, metadata_=metadata or {},
              n_total=len(results), n_invalid=len(results) - len(valid), n_shards=len(shards),
              started_at=now, expires_at=now + completion_window if completion_window else None)
    rows = [_request_row(job_id, r, shard_of) for r in results]
    with session_scope(settings) as s:
        s.add(job)
        s.flush()
        for start in range(0, len(rows), 5000):  # bulk INSERT in chunks: no per-row round trips
            s.execute(insert(Request), rows[start:start + 5000])
    return JobPlan(job_id, job.n_total, job.n_invalid, len(shards))
