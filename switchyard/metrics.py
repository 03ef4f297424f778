"""Operational numbers read from the source of truth (SQL) and the broker, for /metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func
from sqlmodel import col, select

from switchyard.config import Settings
from switchyard.store.db import session_scope
from switchyard.store.models import Job, Request


@dataclass
class Snapshot:
    requests_by_state: dict[str, int] = field(default_factory=dict)
    routed: dict[tuple[str, str], int] = field(default_factory=dict)  # (model, policy) -> requests
    cost_by_model: dict[str, float] = field(default_factory=dict)
    retries: int = 0  # provider attempts beyond the first
    failures_by_reason: dict[str, int] = field(default_factory=dict)
    jobs_by_status: dict[str, int] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)  # recent dispatch latencies
    route_s: list[float] = field(default_factory=list)  # recent submit -> routed (queue wait + tag + route)
    total_s: list[float] = field(default_factory=list)  # recent submit -> finished
    tagging_batches: list[int] = field(default_factory=list)  # routed requests per gpu shard (recent jobs)


def snapshot(settings: Settings, recent: int = 5000) -> Snapshot:
    snap = Snapshot()
    with session_scope(settings) as s:
        for state, n in s.exec(select(Request.state, func.count()).group_by(Request.state)):
            snap.requests_by_state[str(state)] = int(n)
        for model, policy, n, cost in s.exec(
                select(Request.model, Request.policy, func.count(), func.coalesce(func.sum(Request.cost_usd), 0.0))
                .where(col(Request.model).is_not(None)).group_by(col(Request.model), col(Request.policy))):
            snap.routed[(str(model), str(policy or "explicit"))] = int(n)
            snap.cost_by_model[str(model)] = snap.cost_by_model.get(str(model), 0.0) + float(cost or 0.0)
        snap.retries = int(s.exec(select(func.coalesce(func.sum(Request.attempts - 1), 0))
                                  .where(col(Request.attempts) > 1)).one())
        for err in s.exec(select(Request.error).where(col(Request.error).is_not(None))):
            code = str((err or {}).get("code", "unknown"))
            snap.failures_by_reason[code] = snap.failures_by_reason.get(code, 0) + 1
        for status, n in s.exec(select(Job.status, func.count()).group_by(Job.status)):
            snap.jobs_by_status[str(status)] = int(n)
        rows = list(s.exec(select(Request.latency_ms, Request.created_at, Request.routed_at, Request.finished_at)
                           .where(col(Request.routed_at).is_not(None)).order_by(col(Request.id).desc())
                           .limit(recent)))
        snap.latency_ms = [float(lat) for lat, *_ in rows if lat is not None]
        snap.route_s = [(r - c).total_seconds() for _, c, r, _ in rows if r is not None]
        snap.total_s = [(f - c).total_seconds() for _, c, _, f in rows if f is not None]
        snap.tagging_batches = [int(n) for n in s.exec(
            select(func.count()).where(col(Request.routed_at).is_not(None), col(Request.shard) >= 0)
            .group_by(col(Request.job_id), col(Request.shard)).order_by(func.max(Request.id).desc()).limit(1000))]
    return snap
