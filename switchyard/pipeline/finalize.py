"""Finalize a job: render its output and error files from the database, set its end status.

Rendering reads the Request rows in line order, streaming, so a 50k-line job never sits
in memory. It is a pure function of the database, so the CLI can render the same files
wherever it runs, and re-running it is harmless.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import func, update
from sqlmodel import col, select

from switchyard.config import Settings
from switchyard.jobs import error_line, output_line
from switchyard.store.db import session_scope
from switchyard.store.models import TERMINAL_JOB, Job, JobStatus, Request, RequestState, utcnow

_HTTP_STATUS = {"provider_rejected": 400, "unknown_model": 404, "no_recorded_answer": 404}


def switchyard_meta(r: Request) -> dict[str, Any]:
    d = r.decision or {}
    meta: dict[str, Any] = {"model": r.model, "tags": r.tags or [], "policy": r.policy,
                            "reason": d.get("reason"), "cost_usd": r.cost_usd, "attempts": r.attempts}
    for key in ("ranked", "knob", "fallback", "details"):
        if d.get(key) not in (None, [], {}):
            meta[key] = d[key]
    extra = (r.response or {}).get("extra")
    if extra:
        meta.update(extra)
    return meta


def render_line(r: Request) -> tuple[bool, dict[str, Any]]:
    """-> (is_output, line). Succeeded -> output line; everything else -> error line."""
    if r.state == RequestState.succeeded:
        return True, output_line(request_id=int(r.id or 0), custom_id=str(r.custom_id),
                                 body=(r.response or {}).get("body", {}), switchyard=switchyard_meta(r))
    err = r.error or {"code": str(r.state), "message": f"request ended {r.state}"}
    meta = switchyard_meta(r) if r.model else None
    return False, error_line(request_id=int(r.id or 0) if r.state != RequestState.invalid else None,
                             custom_id=r.custom_id, line_no=r.line_no, code=str(err.get("code")),
                             message=str(err.get("message")), status_code=_HTTP_STATUS.get(str(err.get("code"))),
                             switchyard=meta)


def iter_lines(settings: Settings, job_id: str, batch: int = 2000) -> Iterator[tuple[bool, dict[str, Any]]]:
    last = 0
    while True:  # keyset pagination by line number: constant memory, stable order
        with session_scope(settings) as s:
            rows = list(s.exec(select(Request).where(Request.job_id == job_id, Request.line_no > last)
                               .order_by(col(Request.line_no)).limit(batch)))
        if not rows:
            return
        for r in rows:
            yield render_line(r)
        last = rows[-1].line_no


@dataclass
class Rendered:
    outputs: int
    errors: int


def write_files(settings: Settings, job_id: str, out: TextIO, err: TextIO) -> Rendered:
    n_out = n_err = 0
    for is_output, line in iter_lines(settings, job_id):
        (out if is_output else err).write(json.dumps(line, ensure_ascii=False) + "\n")
        n_out += is_output
        n_err += not is_output
    return Rendered(n_out, n_err)


def job_files_dir(settings: Settings, job_id: str) -> Path:
    d = Path(settings.data_dir).resolve() / "files" / job_id
    d.mkdir(parents=True, exist_ok=True)
    return d


def final_status(job: Job, n_expired: int = 0) -> JobStatus:
    if job.cancel_requested_at is not None:
        return JobStatus.cancelled
    if n_expired:  # the completion window closed before every request ran
        return JobStatus.expired
    if job.n_total == job.n_invalid:
        return JobStatus.failed  # nothing in the file was runnable (OpenAI: validation failed)
    return JobStatus.completed


def finalize_job(settings: Settings, job_id: str) -> str | None:
    """Write the job's files and set its terminal status. Idempotent."""
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        if job is None or job.status in TERMINAL_JOB:
            return job.status if job else None
    d = job_files_dir(settings, job_id)
    # Unique temp names: two finalizers of one job (a redelivery, a re-enqueue after a lost
    # commit) may render at once; each renames a complete file, and both are the same.
    tag = uuid.uuid4().hex[:8]
    tmp_out, tmp_err = d / f"output.jsonl.{tag}.tmp", d / f"errors.jsonl.{tag}.tmp"
    with tmp_out.open("w", encoding="utf-8") as out, tmp_err.open("w", encoding="utf-8") as err:
        write_files(settings, job_id, out, err)
    tmp_out.replace(d / "output.jsonl")  # atomic: readers never see half a file
    tmp_err.replace(d / "errors.jsonl")
    with session_scope(settings) as s:
        n_expired = s.exec(select(func.count()).select_from(Request).where(
            Request.job_id == job_id, Request.state == RequestState.expired)).one()
    status = final_status(job, int(n_expired))
    with session_scope(settings) as s:
        s.execute(update(Job).where(col(Job.id) == job_id, col(Job.status).not_in([str(x) for x in TERMINAL_JOB]))
                  .values(status=status, finished_at=utcnow(), output_path=str(d / "output.jsonl"),
                          error_path=str(d / "errors.jsonl")))
    return str(status)
