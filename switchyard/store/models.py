"""SQLModel table families.

- ``Job`` / ``Request``: one Job per submitted file, one Request per input line (a bad
  line is a Request too, in state ``invalid``, so every line ends in exactly one
  output or error line).
- ``Outcome``: judged results that feed the TagScorer (``seq`` is the watermark key).
- ``ScoreVersion`` / ``ScoreCell``: versioned tag x model score tables.
- ``SchedulerState``: watermarks and locks of periodic tasks.
- ``DeadLetter``: requests that exhausted their deliveries.
- ``ApiKey`` / ``StoredFile``: API keys (hashed) and uploaded files, owned by a key.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    """Naive UTC: SQLite keeps no zone, so every timestamp is stored and compared naive."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class JobStatus(StrEnum):
    # OpenAI Batch statuses
    validating = "validating"
    in_progress = "in_progress"
    finalizing = "finalizing"
    completed = "completed"
    failed = "failed"
    cancelling = "cancelling"
    cancelled = "cancelled"
    expired = "expired"


TERMINAL_JOB = {JobStatus.completed, JobStatus.failed, JobStatus.cancelled, JobStatus.expired}


class RequestState(StrEnum):
    invalid = "invalid"  # failed validation: goes to the error file
    queued = "queued"  # waiting for its gpu shard
    routed = "routed"  # model chosen, waiting for dispatch
    dispatching = "dispatching"  # a provider call is (or was) in flight
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    expired = "expired"


TERMINAL_REQUEST = {RequestState.invalid, RequestState.succeeded, RequestState.failed,
                    RequestState.cancelled, RequestState.expired}


class Job(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    status: str = Field(default=JobStatus.validating, max_length=16, index=True)
    owner: str | None = Field(default=None, max_length=64, index=True)  # API key id
    input_name: str = Field(default="", max_length=512)
    default_policy: str = Field(default="tagrouter", max_length=128)
    knob: float | None = None
    tagger: str = Field(default="offline", max_length=64)
    budget_usd: float | None = None
    metadata_: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSON))
    n_total: int = 0  # input lines
    n_invalid: int = 0
    n_shards: int = 0
    # Atomic counters: updated with "SET n = n + k" so concurrent workers never lose a count.
    n_succeeded: int = 0
    n_failed: int = 0  # provider/permanent failures, cancelled and expired included
    cost_usd: float = 0.0
    # Judge spend, kept apart from the generation cost above (reserved before each judge call).
    judge_cost_usd: float = 0.0
    # Budgeted jobs: predicted cost of dispatches in flight, and the last released wave.
    budget_reserved_usd: float = 0.0
    budget_wave: int = 0
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    started_at: NaiveDatetime | None = None
    finished_at: NaiveDatetime | None = None
    expires_at: NaiveDatetime | None = None
    cancel_requested_at: NaiveDatetime | None = None
    output_path: str | None = Field(default=None, max_length=1024)
    error_path: str | None = Field(default=None, max_length=1024)
    input_file_id: str | None = Field(default=None, max_length=64)
    kind: str = Field(default="batch", max_length=16, index=True)  # batch | chat (interactive)
    idempotency_key: str | None = Field(default=None, max_length=256, index=True)

    @property
    def n_done(self) -> int:
        return self.n_invalid + self.n_succeeded + self.n_failed


class Request(SQLModel, table=True):
    __table_args__ = (
        UniqueConstraint("job_id", "line_no", name="uq_request_line"),
        Index("ix_request_job_shard", "job_id", "shard"),
        Index("ix_request_job_state", "job_id", "state"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"),
                                                          primary_key=True, autoincrement=True))
    job_id: str = Field(foreign_key="job.id", max_length=64)
    line_no: int
    custom_id: str | None = Field(default=None, max_length=512)
    state: str = Field(default=RequestState.queued, max_length=16)
    shard: int = -1
    model_requested: str | None = Field(default=None, max_length=256)  # body.model as given
    prompt: str = Field(default="", sa_column=Column(Text))  # latest user message
    body: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    routing: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    input_tokens: int = 0
    tags: list[str] | None = Field(default=None, sa_column=Column(JSON))
    decision: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    model: str | None = Field(default=None, max_length=256)
    policy: str | None = Field(default=None, max_length=128)
    response: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    latency_ms: float | None = None
    attempts: int = 0  # provider calls made
    deliveries: int = 0  # times a worker picked the dispatch task up
    error: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    budget_wave: int | None = None  # budgeted jobs: the wave that released it for dispatch
    budget_reserved_usd: float | None = None  # its reservation while its provider call is in flight
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    routed_at: NaiveDatetime | None = None  # tagging + routing done (stage latency)
    finished_at: NaiveDatetime | None = None


class Outcome(SQLModel, table=True):
    """One judged result: a verdict (win/tie/loss) or a scalar quality in [0, 1]."""

    seq: int | None = Field(default=None, primary_key=True)  # monotonic: the refresh watermark
    request_id: int | None = Field(default=None, index=True)
    prompt_key: str | None = Field(default=None, max_length=128, index=True)  # dataset prompt_id etc.
    model: str = Field(max_length=256, index=True)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    verdict: str | None = Field(default=None, max_length=16)  # win | tie | loss | unparseable
    quality: float | None = None
    source: str = Field(default="user", max_length=16)  # judge | user | import
    judge_version: str | None = Field(default=None, max_length=64)
    judge_model: str | None = Field(default=None, max_length=256)
    cost_usd: float | None = None  # what producing this outcome cost (judge calls, reference answer)
    detail: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))  # raw verdicts, mode ...
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class ScoreVersion(SQLModel, table=True):
    version: int = Field(primary_key=True)
    parent: int | None = None
    watermark: int = 0  # highest Outcome.seq folded in
    status: str = Field(default="candidate", max_length=16)  # candidate | promoted | rejected | retired
    n_outcomes: int = 0
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    note: str = Field(default="", max_length=512)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class ScoreCell(SQLModel, table=True):
    version: int = Field(primary_key=True)
    tag: str = Field(primary_key=True, max_length=256)
    model: str = Field(primary_key=True, max_length=256)
    n_win: float = 0.0
    n_tie: float = 0.0
    n_loss: float = 0.0
    q_sum: float = 0.0
    q_count: float = 0.0


class SchedulerState(SQLModel, table=True):
    name: str = Field(primary_key=True, max_length=64)
    watermark: int = 0
    locked_by: str | None = Field(default=None, max_length=128)
    locked_until: NaiveDatetime | None = None
    updated_at: NaiveDatetime = Field(default_factory=utcnow)


class DeadLetter(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(index=True)
    job_id: str = Field(max_length=64, index=True)
    task: str = Field(max_length=64)
    deliveries: int = 0
    reason: str = Field(default="", max_length=1024)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


class ApiKey(SQLModel, table=True):
    """An API key. Only a SHA-256 of the secret is stored; the secret is shown once."""

    id: str = Field(primary_key=True, max_length=32)
    name: str = Field(default="", max_length=128)
    secret_hash: str = Field(max_length=64)
    created_at: NaiveDatetime = Field(default_factory=utcnow)
    revoked_at: NaiveDatetime | None = None


class StoredFile(SQLModel, table=True):
    """An uploaded file (OpenAI Files API, purpose ``batch``); its bytes live under data_dir/files."""

    id: str = Field(primary_key=True, max_length=64)
    owner: str | None = Field(default=None, max_length=64, index=True)
    purpose: str = Field(default="batch", max_length=32)
    filename: str = Field(default="", max_length=512)
    bytes: int = 0
    lines: int = 0
    path: str = Field(max_length=1024)
    created_at: NaiveDatetime = Field(default_factory=utcnow)


# The Core tables behind the two hottest models. Per-request writes in the pipeline's hot loop use
# these: a Core UPDATE skips the ORM's bulk-update bookkeeping (statement re-coercion and the
# identity-map "synchronize session" evaluation), which the profile showed to cost more than SQLite.
REQUESTS: Table = Request.__table__  # type: ignore[attr-defined]
JOBS: Table = Job.__table__  # type: ignore[attr-defined]
