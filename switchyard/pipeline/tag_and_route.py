"""One gpu shard: load its requests, tag them in one batch, decide them in one batch, store.

Idempotent under redelivery: only ``queued`` requests are tagged and routed; requests
already ``routed`` (a crash after commit, before enqueueing dispatch) are returned again
so the shell re-enqueues them, and dispatch itself skips anything already finished.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from switchyard import AUTO_MODEL
from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.pipeline.counters import finish_request, mark_finalizing_if_done
from switchyard.routing.base import (
    RouteDecision,
    RouteRequest,
    RoutingContext,
    RoutingOptions,
    RoutingPolicy,
    get_policy,
    route_batch,
)
from switchyard.store.db import session_scope
from switchyard.store.models import Job, JobStatus, Request, RequestState
from switchyard.tagging import Tagger, get_tagger

_lock = threading.Lock()
_taggers: dict[str, Tagger] = {}
_policies: dict[str, RoutingPolicy] = {}


def cached_tagger(name: str) -> Tagger:
    """One tagger per process: its model loads once per worker, not per batch."""
    with _lock:
        if name not in _taggers:
            _taggers[name] = get_tagger(name)
        return _taggers[name]


def cached_policy(name: str) -> RoutingPolicy:
    with _lock:
        if name not in _policies:
            _policies[name] = get_policy(name)
        return _policies[name]


@dataclass
class ShardResult:
    to_dispatch: list[tuple[int, str]]  # (request id, custom_id)
    finalize: bool = False  # this call completed the job (e.g. a cancelled shard)
    tagged: int = 0


def _route_request(r: Request) -> RouteRequest:
    body: dict[str, Any] = r.body or {}
    return RouteRequest(id=str(r.id), prompt=r.prompt, messages=list(body.get("messages", [])),
                        input_tokens=r.input_tokens, options=RoutingOptions.model_validate(r.routing or {}))


def _fixed_decision(r: Request) -> RouteDecision:
    return RouteDecision(model=str(r.model_requested), policy="explicit",
                         reason="the request named a concrete model: no routing")


def route_shard(settings: Settings, job_id: str, shard: int, *, catalog: Catalog,
                tagger: Callable[[str], Tagger] = cached_tagger,
                policy: Callable[[str], RoutingPolicy] = cached_policy) -> ShardResult:
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        if job is None:
            return ShardResult([])
        rows = list(s.exec(select(Request).where(Request.job_id == job_id, Request.shard == shard,
                                                 col(Request.state).in_([RequestState.queued,
                                                                         RequestState.routed]))))
        if job.status in (JobStatus.cancelling, JobStatus.cancelled, JobStatus.expired):
            for r in rows:
                finish_request(s, int(r.id or 0), job_id, RequestState.cancelled,
                               values={"error": {"code": "cancelled", "message": "the job was cancelled"}})
            return ShardResult([], finalize=mark_finalizing_if_done(s, job_id))
        policy_name, knob, tagger_name = job.default_policy, job.knob, job.tagger
    queued = [r for r in rows if r.state == RequestState.queued]
    decisions = decide(settings, queued, catalog=catalog, policy_name=policy_name, knob=knob,
                       tagger=tagger(tagger_name), policy=policy)
    with session_scope(settings) as s:
        for r, d in zip(queued, decisions, strict=True):
            s.execute(update(Request).where(col(Request.id) == r.id, col(Request.state) == RequestState.queued)
                      .values(state=RequestState.routed, model=d.model, policy=d.policy, tags=d.tags,
                              decision=d.to_json()))
    return ShardResult([(int(r.id or 0), str(r.custom_id)) for r in rows],
                       tagged=sum(1 for r in queued if r.model_requested == AUTO_MODEL))


def decide(settings: Settings, rows: list[Request], *, catalog: Catalog, policy_name: str, knob: float | None,
           tagger: Tagger, policy: Callable[[str], RoutingPolicy]) -> list[RouteDecision]:
    """Tag and route the auto requests of a batch; concrete-model requests pass through."""
    auto = [r for r in rows if r.model_requested == AUTO_MODEL]
    reqs = [_route_request(r) for r in auto]
    if reqs:
        for req, tags in zip(reqs, tagger.tag_batch([q.prompt for q in reqs]), strict=True):
            req.tags = tags
        ctx = RoutingContext(knob=knob, exploration_rate=settings.exploration_rate)
        routed = iter(route_batch(reqs, catalog, ctx, policy_name, get=policy))
    else:
        routed = iter(())
    return [next(routed) if r.model_requested == AUTO_MODEL else _fixed_decision(r) for r in rows]
