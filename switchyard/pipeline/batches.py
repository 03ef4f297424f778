"""OpenAI Batch objects over Jobs: create from an uploaded file (idempotently), render, chat.

Pure core: enqueueing is the caller's (the API shell's) job.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.errors import InputError
from switchyard.files import ERR_PREFIX, OUT_PREFIX, get_file
from switchyard.jobs import ENDPOINT
from switchyard.pipeline.intake import JobPlan, submit_job
from switchyard.store.db import session_scope
from switchyard.store.models import TERMINAL_JOB, Job

_WINDOW = re.compile(r"^(\d{1,4})h$")


def completion_window(value: str) -> dt.timedelta:
    m = _WINDOW.match(value or "")
    if not m or int(m.group(1)) < 1:
        raise InputError(f"completion_window {value!r} must look like '24h'", field="completion_window")
    return dt.timedelta(hours=int(m.group(1)))


@dataclass
class Created:
    job_id: str
    new: bool  # False: an earlier request with the same Idempotency-Key made it
    plan: JobPlan | None


def create_batch(settings: Settings, *, input_file_id: str, endpoint: str, window: str, owner: str | None,
                 catalog: Catalog, metadata: dict[str, Any] | None = None,
                 idempotency_key: str | None = None) -> Created:
    if endpoint != ENDPOINT:
        raise InputError(f"endpoint {endpoint!r} is not supported; use {ENDPOINT!r}", field="endpoint")
    if metadata is not None and (len(metadata) > 16 or not all(isinstance(v, str) for v in metadata.values())):
        raise InputError("metadata holds at most 16 string values", field="metadata")
    if idempotency_key:
        with session_scope(settings) as s:
            prior = s.exec(select(Job).where(Job.owner == owner, Job.idempotency_key == idempotency_key)).first()
            if prior is not None:
                return Created(prior.id, False, None)
    budget = budget_from_metadata(metadata)
    f = get_file(settings, input_file_id, owner=owner)
    with f.path.open("rb") as fh:
        plan = submit_job(settings, fh, catalog=catalog, input_name=f.filename, owner=owner, metadata=metadata,
                          completion_window=completion_window(window), budget_usd=budget)
    with session_scope(settings) as s:
        job = s.get(Job, plan.job_id)
        assert job is not None
        job.input_file_id, job.idempotency_key = input_file_id, idempotency_key
    return Created(plan.job_id, True, plan)


def budget_from_metadata(metadata: dict[str, Any] | None) -> float | None:
    """``metadata.budget_usd`` (a string, as OpenAI metadata values are) -> the job's budget."""
    raw = (metadata or {}).get("budget_usd")
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise InputError(f"metadata.budget_usd {raw!r} must be a positive number of US dollars, e.g. \"2.50\"",
                         field="metadata.budget_usd")
    return value


def _ts(t: dt.datetime | None) -> int | None:
    return int(t.replace(tzinfo=dt.UTC).timestamp()) if t else None


def batch_json(job: Job) -> dict[str, Any]:
    """The OpenAI Batch object of a job."""
    done = job.status in TERMINAL_JOB
    return {
        "id": job.id, "object": "batch", "endpoint": ENDPOINT, "errors": None,
        "input_file_id": job.input_file_id, "completion_window": "24h", "status": str(job.status),
        "output_file_id": f"{OUT_PREFIX}{job.id}" if done and job.output_path else None,
        "error_file_id": f"{ERR_PREFIX}{job.id}" if done and job.error_path else None,
        "created_at": _ts(job.created_at), "in_progress_at": _ts(job.started_at), "expires_at": _ts(job.expires_at),
        "finalizing_at": None, "completed_at": _ts(job.finished_at) if job.status == "completed" else None,
        "failed_at": _ts(job.finished_at) if job.status == "failed" else None,
        "expired_at": _ts(job.finished_at) if job.status == "expired" else None,
        "cancelling_at": _ts(job.cancel_requested_at),
        "cancelled_at": _ts(job.finished_at) if job.status == "cancelled" else None,
        "request_counts": {"total": job.n_total, "completed": job.n_succeeded,
                           "failed": job.n_failed + job.n_invalid},
        "metadata": job.metadata_ or None,
        "switchyard": {"policy": job.default_policy, "cost_usd": round(job.cost_usd, 6)},
    }


def submit_chat(settings: Settings, body: dict[str, Any], *, owner: str | None, catalog: Catalog) -> JobPlan:
    """One interactive chat completion as a one-line job, through the same queues as bulk."""
    line = json.dumps({"custom_id": "chat", "method": "POST", "url": ENDPOINT, "body": body,
                       **({"routing": body.pop("routing")} if isinstance(body.get("routing"), dict) else {})})
    plan = submit_job(settings, [line.encode()], catalog=catalog, input_name="chat.completions", owner=owner,
                      kind="chat")
    return plan
