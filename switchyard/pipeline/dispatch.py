"""Dispatch one routed request: claim it, call its model's provider, store the result.

Guarantees, with the database as the source of truth:
- a request whose result is stored is never sent to a provider again (the claim is a
  conditional UPDATE on a non-terminal state);
- each provider call is counted in ``attempts`` *before* it is made, so a crash mid-call
  still counts;
- ``deliveries`` counts consecutive deliveries that never reported back (a worker died
  mid-call); past ``max_deliveries`` the request is dead-lettered instead of looping;
- transient errors come back as :class:`Retry` with a jittered delay; permanent ones
  fail fast into the error file;
- a provider result is stored with in-process retries (:func:`retrying`): a database
  blip after a paid call does not throw the result away and call the provider again.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, update
from sqlmodel import col, select

from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.errors import PermanentError, SwitchyardError, TransientError
from switchyard.jobs import chat_completion
from switchyard.pipeline.budget import release as budget_release
from switchyard.pipeline.budget import reserve
from switchyard.pipeline.counters import finish_request, mark_finalizing_if_done
from switchyard.pipeline.judge import should_judge
from switchyard.pipeline.retry import backoff_delay
from switchyard.providers.base import ChatCall, ChatResult, Provider, build_provider
from switchyard.store.db import retrying, session_scope
from switchyard.store.models import REQUESTS, DeadLetter, Job, JobStatus, Request, RequestState, utcnow

# (provider name, limit) -> a context manager yielding True when a slot was obtained.
Limiter = Callable[[str, int], AbstractContextManager[bool]]


@contextlib.contextmanager
def no_limit(_name: str, _limit: int) -> Iterator[bool]:
    yield True


# Built once (see counters.py): the hot per-request statements reuse one compiled form.
_CLAIM = (update(REQUESTS).where(REQUESTS.c.id == bindparam("rid"),
                                 REQUESTS.c.state.in_([RequestState.routed, RequestState.dispatching]))
          .values(state=RequestState.dispatching, deliveries=REQUESTS.c.deliveries + 1))
_COUNT_ATTEMPT = update(REQUESTS).where(REQUESTS.c.id == bindparam("rid")).values(attempts=REQUESTS.c.attempts + 1)


@dataclass
class Done:
    state: str
    finalize: bool = False  # this request completed the job: enqueue the finalizer
    judge: bool = False  # sampled for judging: enqueue the judge task
    replan: bool = False  # a budgeted job: enqueue the budget planner (the next wave)


@dataclass
class Retry:
    countdown: float
    reason: str


def _claim(settings: Settings, request_id: int) -> tuple[Request, Job] | None:
    with session_scope(settings) as s:
        res = s.connection().execute(_CLAIM, {"rid": request_id})
        if res.rowcount != 1:
            return None  # finished already (or never routed): nothing to do, never call again
        # One query for both rows (the request and its job), not two.
        row = s.exec(select(Request, Job).join(Job, col(Job.id) == col(Request.job_id))
                     .where(col(Request.id) == request_id)).first()
        return (row[0], row[1]) if row else None


def _finish(settings: Settings, req: Request, state: RequestState, values: dict[str, Any],
            cost_usd: float = 0.0) -> Done:
    def write() -> Done:
        with session_scope(settings) as s:
            # The budget reservation goes in the same transaction as the outcome (and actual cost).
            budget_release(s, req.job_id, int(req.id or 0))
            moved = finish_request(s, int(req.id or 0), req.job_id, state, values=values, cost_usd=cost_usd)
            finalize = mark_finalizing_if_done(s, req.job_id)
            if not moved and not finalize:
                # A retry after a commit whose answer was lost: the first try may have moved the
                # job to finalizing and died before anyone enqueued the finalizer. Enqueue it
                # again (finalizing is idempotent) rather than strand the job.
                finalize = _job_status(s, req.job_id) == JobStatus.finalizing
            return Done(str(state), finalize=finalize)
    return retrying(write)


def _job_status(s: Any, job_id: str) -> str | None:
    return s.exec(select(Job.status).where(Job.id == job_id)).first()


def _fail(settings: Settings, req: Request, state: RequestState, code: str, message: str,
          extra: dict[str, Any] | None = None) -> Done:
    return _finish(settings, req, state, {"error": {"code": code, "message": message, **(extra or {})},
                                          "deliveries": 0})


def dispatch_request(settings: Settings, request_id: int, *, catalog: Catalog, limiter: Limiter = no_limit,
                     provider_for: Callable[[str], Provider] | None = None) -> Done | Retry:
    claimed = _claim(settings, request_id)
    if claimed is None:
        return Done("skipped", finalize=_finalizing(settings, request_id))
    req, job = claimed
    if job.status in (JobStatus.cancelling, JobStatus.cancelled, JobStatus.expired):
        return _fail(settings, req, RequestState.cancelled, "cancelled", f"the job was {job.status}")
    if req.deliveries > settings.max_deliveries:
        with session_scope(settings) as s:
            s.add(DeadLetter(request_id=request_id, job_id=req.job_id, task="dispatch", deliveries=req.deliveries,
                             reason="the worker died on every delivery of this request"))
        return _fail(settings, req, RequestState.failed, "dead_lettered",
                     f"a worker died {req.deliveries - 1} times while dispatching this request; dead-lettered")
    out = _call(settings, req, catalog, limiter, provider_for)
    if isinstance(out, Done):
        out.judge = out.state == RequestState.succeeded and should_judge(settings, job, req)
        out.replan = job.budget_usd is not None and not out.finalize
    return out


def _finalizing(settings: Settings, request_id: int) -> bool:
    """A duplicate delivery of a finished request: re-enqueue the finalizer if the job waits on it
    (the delivery that finished the job may have died before it enqueued the finalizer)."""
    with session_scope(settings) as s:
        job_id = s.exec(select(Request.job_id).where(Request.id == request_id)).first()
        return job_id is not None and _job_status(s, job_id) == JobStatus.finalizing


def _call(settings: Settings, req: Request, catalog: Catalog, limiter: Limiter,
          provider_for: Callable[[str], Provider] | None) -> Done | Retry:
    model = catalog.get(str(req.model))
    pconf = catalog.providers[model.provider]
    with limiter(pconf.name, pconf.max_concurrency) as got:
        if not got:  # every slot busy across the fleet: come back soon, not an attempt
            _release(settings, req)
            return Retry(countdown=0.05 + 0.2 * (time.time() % 1), reason="provider at its concurrency limit")
        # Waiting for a slot can take a while: a cancel or expiry in the meantime must win,
        # or a job would keep calling its provider after "cancelling" (found by a fault test).
        call = _chat_call(settings, req, model.upstream_name)
        status, budget, guard = retrying(lambda: _count_attempt(
            settings, req, model.cost(req.input_tokens, call.max_tokens), model.predicted_cost(req.input_tokens)))
        if status in (JobStatus.cancelling, JobStatus.cancelled, JobStatus.expired):
            return _fail(settings, req, RequestState.cancelled, "cancelled", f"the job was {status}")
        if guard == "wait":  # other calls of this job are in flight: their costs decide if this fits
            _release(settings, req)
            return Retry(countdown=0.2 + 0.3 * (time.time() % 1), reason="job budget: waiting for calls in flight")
        if guard == "over":
            return _fail(settings, req, RequestState.failed, "budget_exhausted",
                         f"the job's budget_usd ${budget:.6f} cannot cover this request's predicted cost "
                         f"on {model.id}; raise budget_usd or submit fewer lines")
        attempt = req.attempts + 1
        provider = provider_for(pconf.name) if provider_for else build_provider(pconf)
        started = time.perf_counter()
        try:
            result = provider.complete(call)
        except TransientError as e:
            return _transient(settings, req, attempt, e)
        except PermanentError as e:
            return _fail(settings, req, RequestState.failed, e.code, e.message, {"attempts": attempt})
        except Exception as e:
            return _transient(settings, req, attempt, SwitchyardError(f"{type(e).__name__}: {e}"))
    latency_ms = (time.perf_counter() - started) * 1000
    return _store(settings, req, catalog, result, attempt, latency_ms)


def _count_attempt(settings: Settings, req: Request, max_cost: float, predicted_cost: float
                   ) -> tuple[str, float | None, str]:
    """The job's status, its budget and the budget guard ("ok", "wait" or "over"); unless the job
    is ending or the guard refuses, count the attempt about to be made."""
    with session_scope(settings) as s:
        status, budget = s.exec(select(Job.status, Job.budget_usd).where(Job.id == req.job_id)).one()
        ending = status in (JobStatus.cancelling, JobStatus.cancelled, JobStatus.expired)
        guard = "ok"
        if not ending and budget is not None:
            budget_release(s, req.job_id, int(req.id or 0))  # a crashed delivery's reservation
            guard = reserve(s, req.job_id, int(req.id or 0), max_cost, predicted_cost)
        if not ending and guard == "ok":
            s.connection().execute(_COUNT_ATTEMPT, {"rid": req.id})
        return status, budget, guard


def _chat_call(settings: Settings, req: Request, upstream: str) -> ChatCall:
    body = dict(req.body or {})
    messages = body.pop("messages", [])
    body.pop("model", None)
    max_tokens = int(body.pop("max_tokens", body.pop("max_completion_tokens", settings.default_max_tokens)))
    allowed = {"temperature", "top_p", "stop", "seed", "presence_penalty", "frequency_penalty", "n",
               "response_format", "tools", "tool_choice", "user"}
    params = {k: v for k, v in body.items() if k in allowed}
    return ChatCall(model=upstream, messages=messages, max_tokens=max_tokens, params=params,
                    idempotency_key=f"{req.job_id}:{req.custom_id}", timeout_s=settings.provider_timeout_s)


def _release(settings: Settings, req: Request) -> None:
    def write() -> None:
        with session_scope(settings) as s:  # this delivery reported back: it did not die
            budget_release(s, req.job_id, int(req.id or 0))
            s.connection().execute(update(REQUESTS).where(REQUESTS.c.id == req.id).values(deliveries=0))
    retrying(write)


def _transient(settings: Settings, req: Request, attempt: int, e: SwitchyardError) -> Done | Retry:
    if attempt >= settings.max_attempts:
        return _fail(settings, req, RequestState.failed, e.code,
                     f"gave up after {attempt} attempts: {e.message}", {"attempts": attempt})
    _release(settings, req)
    delay = backoff_delay(attempt, base_s=settings.retry_base_s, max_s=settings.retry_max_s,
                          retry_after=getattr(e, "retry_after", None))
    return Retry(countdown=delay, reason=f"{e.code}: {e.message}")


def _store(settings: Settings, req: Request, catalog: Catalog, result: ChatResult, attempt: int,
           latency_ms: float) -> Done:
    model = catalog.get(str(req.model))
    cost = result.cost_usd if result.cost_usd is not None else model.cost(result.prompt_tokens,
                                                                            result.completion_tokens)
    body = result.body if result.body and "choices" in result.body else chat_completion(
        completion_id=f"chatcmpl-{req.job_id}-{req.id}", model=model.id, text=result.text,
        finish_reason=result.finish_reason, prompt_tokens=result.prompt_tokens,
        completion_tokens=result.completion_tokens, created=int(utcnow().timestamp()))
    extra = result.body if result.body and "choices" not in result.body else None
    values = {"response": {"body": body, "extra": extra}, "prompt_tokens": result.prompt_tokens,
              "completion_tokens": result.completion_tokens, "cost_usd": cost, "latency_ms": latency_ms,
              "deliveries": 0}
    return _finish(settings, req, RequestState.succeeded, values, cost_usd=cost)
