"""One gpu shard: load its requests, tag them in one batch, decide them in one batch, store.

Idempotent under redelivery: only ``queued`` requests are tagged and routed; requests
already ``routed`` (a crash after commit, before enqueueing dispatch) are returned again
so the shell re-enqueues them, and dispatch itself skips anything already finished.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import Session, col, select

from switchyard import AUTO_MODEL
from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.pipeline.counters import finish_request, mark_finalizing_if_done
from switchyard.pipeline.outcome import vocabulary_path
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
from switchyard.store.models import Job, JobStatus, Request, RequestState, utcnow
from switchyard.tagging import Tagger, get_tagger
from switchyard.tagging.vocabulary import Vocabulary, embed_for_topics

_lock = threading.Lock()
_taggers: dict[str, Tagger] = {}
_policies: dict[str, RoutingPolicy] = {}
_vocab: dict[str, tuple[float, Vocabulary]] = {}  # path -> (mtime, vocabulary)


def current_vocabulary(settings: Settings) -> Vocabulary | None:
    """The canonical vocabulary (written by ``scores import``), reloaded when its file changes."""
    path = vocabulary_path(settings)
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    with _lock:
        hit = _vocab.get(str(path))
        if hit is None or hit[0] != mtime:
            hit = (mtime, Vocabulary.load(path))
            _vocab[str(path)] = hit
        return hit[1]


def tag_requests(settings: Settings, tagger: Tagger, prompts: list[str]) -> tuple[list[list[str]], list[int]]:
    """Open tags -> canonical tags. Returns (tags, per-request count of tags dropped as unknown)."""
    raw = tagger.tag_batch(prompts)
    vocab = current_vocabulary(settings)
    if vocab is None:  # no vocabulary yet: the tags stay as the tagger wrote them
        return [list(t) for t in raw], [0] * len(raw)
    aligned = vocab.align(raw, settings.vocab_threshold, prompt_embeddings=embed_for_topics(vocab, prompts))
    dropped = [len(set(r)) - len(a) for r, a in zip(raw, aligned.tags, strict=True)]
    return aligned.tags, [max(0, d) for d in dropped]


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
    plan: bool = False  # a budgeted job: the budget planner releases the dispatches


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
        policy_name, knob, tagger_name, budgeted = job.default_policy, job.knob, job.tagger, job.budget_usd is not None
    queued = [r for r in rows if r.state == RequestState.queued]
    decisions = decide(settings, queued, catalog=catalog, policy_name=policy_name, knob=knob,
                       seed=zlib.crc32(f"{job_id}:{shard}".encode()),
                       tagger=tagger(tagger_name), policy=policy)
    with session_scope(settings) as s:
        store_decisions(s, queued, decisions)
    tagged = sum(1 for r in queued if r.model_requested == AUTO_MODEL)
    if budgeted:  # only waves the planner released are dispatched (again, after a redelivery)
        return ShardResult([(int(r.id or 0), str(r.custom_id)) for r in rows if r.budget_wave is not None],
                           tagged=tagged, plan=True)
    return ShardResult([(int(r.id or 0), str(r.custom_id)) for r in rows], tagged=tagged)


def store_decisions(s: Session, rows: list[Request], decisions: list[RouteDecision]) -> int:
    """Mark a batch routed in one executemany UPDATE (one statement prepared once, one commit
    by the caller), each row only if it is still ``queued``. Returns the number of rows moved."""
    if not rows:
        return 0
    table = Request.__table__  # type: ignore[attr-defined]
    stmt = (update(table).where(table.c.id == bindparam("rid"), table.c.state == RequestState.queued)
            .values(state=RequestState.routed, model=bindparam("b_model"), policy=bindparam("b_policy"),
                    tags=bindparam("b_tags"), routed_at=bindparam("b_at"), decision=bindparam("b_decision")))
    now = utcnow()
    params = [{"rid": r.id, "b_model": d.model, "b_policy": d.policy, "b_tags": d.tags, "b_at": now,
               "b_decision": d.to_json()} for r, d in zip(rows, decisions, strict=True)]
    res = s.connection().execute(stmt, params)
    return int(res.rowcount)


def decide(settings: Settings, rows: list[Request], *, catalog: Catalog, policy_name: str, knob: float | None,
           tagger: Tagger, policy: Callable[[str], RoutingPolicy], seed: int = 0) -> list[RouteDecision]:
    """Tag and route the auto requests of a batch; concrete-model requests pass through."""
    auto = [r for r in rows if r.model_requested == AUTO_MODEL]
    reqs = [_route_request(r) for r in auto]
    if reqs:
        tags, dropped = tag_requests(settings, tagger, [q.prompt for q in reqs])
        for req, t in zip(reqs, tags, strict=True):
            req.tags = t
        # Seeded per shard: a redelivered shard makes the same (exploration) decisions.
        ctx = RoutingContext(knob=knob, exploration_rate=settings.exploration_rate, seed=seed)
        decisions = route_batch(reqs, catalog, ctx, policy_name, get=policy)
        for d, n in zip(decisions, dropped, strict=True):
            d.details["dropped_tags"] = n  # vocabulary drift, visible per request and in metrics
        routed = iter(decisions)
    else:
        routed = iter(())
    return [next(routed) if r.model_requested == AUTO_MODEL else _fixed_decision(r) for r in rows]


# --- interactive traffic ----------------------------------------------------------------
def collect_interactive(settings: Settings, job_id: str) -> list[Request]:
    """This chat request plus other queued ones, up to ``interactive_max_batch``, waiting at most
    ``interactive_max_wait_ms`` for the batch to fill: one tagging call serves them all."""
    deadline = time.monotonic() + settings.interactive_max_wait_ms / 1000
    while True:
        with session_scope(settings) as s:
            own = list(s.exec(select(Request).where(Request.job_id == job_id,
                                                    Request.state == RequestState.queued)))
            others = list(s.exec(select(Request).join(Job, col(Job.id) == col(Request.job_id))
                                 .where(Job.kind == "chat", Request.state == RequestState.queued,
                                        Request.job_id != job_id)
                                 .order_by(col(Request.id)).limit(settings.interactive_max_batch)))
        rows = (own + others)[: max(settings.interactive_max_batch, len(own))]
        if len(rows) >= settings.interactive_max_batch or time.monotonic() >= deadline:
            return rows
        time.sleep(0.002)


def route_interactive(settings: Settings, job_id: str, *, catalog: Catalog,
                      tagger: Callable[[str], Tagger] = cached_tagger,
                      policy: Callable[[str], RoutingPolicy] = cached_policy) -> list[tuple[str, int, str]]:
    """Tag and route a micro-batch of chat requests. Returns (job, request, custom_id) to dispatch.

    Several workers may collect the same request; the conditional update lets one win, and
    the rest is harmless (dispatch claims each request once)."""
    rows = collect_interactive(settings, job_id)
    decisions = decide(settings, rows, catalog=catalog, policy_name=settings.policy, knob=settings.knob,
                       tagger=tagger(settings.tagger), policy=policy, seed=zlib.crc32(job_id.encode()))
    routed: list[tuple[str, int, str]] = []
    with session_scope(settings) as s:
        for r, d in zip(rows, decisions, strict=True):
            d.details["interactive_batch"] = len(rows)  # visible in the response: proof of coalescing
            res = s.execute(update(Request).where(col(Request.id) == r.id, col(Request.state) == RequestState.queued)
                            .values(state=RequestState.routed, model=d.model, policy=d.policy, tags=d.tags,
                              routed_at=utcnow(),
                                    decision=d.to_json()))
            if res.rowcount == 1 or r.job_id == job_id:  # type: ignore[attr-defined]
                routed.append((r.job_id, int(r.id or 0), str(r.custom_id)))
    return routed
