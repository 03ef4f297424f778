"""Judge one finished request: call the judge model, store its verdict as an outcome.

The ``judge`` queue's task (``workers/judge.py``) calls :func:`judge_request`. Which
requests get judged is decided when dispatch stores an answer (:func:`should_judge`):
a deterministic hash of ``job:custom_id`` below the sample rate, so a redelivered
dispatch makes the same choice.

Per-job settings live in the job's metadata and override the global ones
(``judge_sample_rate``, ``judge_model``, ``judge_mode``, ``judge_reference``,
``judge_budget_usd``, plus ``judge_models``: only requests answered by these models).

Cost: the judge's calls (and a reference answer it had to generate) are added to
``Job.judge_cost_usd``, never to the job's generation cost. Before any call, the
predicted cost is reserved with a conditional UPDATE that fails when the judge budget
would be exceeded, so concurrent judge tasks cannot overspend it together beyond their
prediction error; the reservation is then corrected to the actual cost.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from switchyard.catalog import Catalog, Model
from switchyard.config import Settings
from switchyard.errors import PermanentError, TransientError
from switchyard.judging import (
    JUDGE_VERSION,
    Judgement,
    absolute_messages,
    combine_absolute,
    combine_pairwise,
    pairwise_messages,
)
from switchyard.pipeline.retry import backoff_delay
from switchyard.providers.base import ChatCall, ChatResult, Provider, build_provider
from switchyard.store.db import session_scope
from switchyard.store.models import Job, Outcome, Request, RequestState
from switchyard.tokens import count_tokens


@dataclass
class JudgeConfig:
    sample_rate: float
    model: str | None
    mode: str
    reference: str | None
    budget_usd: float | None
    models: list[str] | None  # only judge answers of these models (None = all)


def judge_config(settings: Settings, job: Job) -> JudgeConfig:
    meta = job.metadata_ or {}
    budget = meta.get("judge_budget_usd", settings.judge_budget_usd)
    models = meta.get("judge_models")
    if isinstance(models, str):  # API metadata values are strings: "a,b"
        models = [m.strip() for m in models.split(",") if m.strip()]
    return JudgeConfig(sample_rate=float(meta.get("judge_sample_rate", settings.judge_sample_rate)),
                       model=meta.get("judge_model", settings.judge_model),
                       mode=str(meta.get("judge_mode", settings.judge_mode)),
                       reference=meta.get("judge_reference", settings.judge_reference),
                       budget_usd=None if budget is None else float(budget),
                       models=list(models) if models else None)


def sampled(job_id: str, custom_id: str, rate: float) -> bool:
    """Deterministic: the same request gets the same answer on every delivery."""
    if rate <= 0:
        return False
    h = int.from_bytes(hashlib.blake2b(f"{job_id}:{custom_id}".encode(), digest_size=8).digest(), "big")
    return h / 2**64 < rate


def should_judge(settings: Settings, job: Job, req: Request) -> bool:
    cfg = judge_config(settings, job)
    if not cfg.model or (cfg.models is not None and req.model not in cfg.models):
        return False
    return sampled(job.id, str(req.custom_id), cfg.sample_rate)


@dataclass
class JudgeDone:
    status: str  # judged | skipped | failed
    reason: str = ""
    seq: int | None = None


@dataclass
class JudgeRetry:
    countdown: float
    reason: str


def answer_text(req: Request) -> str:
    body = (req.response or {}).get("body") or {}
    try:
        return str(body["choices"][0]["message"]["content"] or "")
    except (KeyError, IndexError, TypeError):
        return ""


def stored_answer(settings: Settings, prompt: str, model: str) -> str | None:
    """A stored answer of ``model`` to the same prompt (any job), if one exists."""
    with session_scope(settings) as s:
        rows = s.exec(select(Request).where(Request.prompt == prompt, Request.model == model,
                                            Request.state == RequestState.succeeded).limit(1))
        row = next(iter(rows), None)
    return answer_text(row) if row is not None else None


class _Calls:
    """The judge's provider calls for one judgement, with their summed cost."""

    def __init__(self, settings: Settings, catalog: Catalog, key: str,
                 provider_for: Callable[[str], Provider] | None) -> None:
        self.settings, self.catalog, self.key, self.provider_for = settings, catalog, key, provider_for
        self.cost = 0.0
        self.n = 0

    def __call__(self, model_id: str, messages: list[dict[str, Any]], max_tokens: int) -> str:
        model = self.catalog.get(model_id)
        pconf = self.catalog.providers[model.provider]
        provider = self.provider_for(pconf.name) if self.provider_for else build_provider(pconf)
        self.n += 1
        call = ChatCall(model=model.upstream_name, messages=messages, max_tokens=max_tokens,
                        params={"temperature": 0}, idempotency_key=f"{self.key}:{self.n}",
                        timeout_s=self.settings.provider_timeout_s)
        result: ChatResult = provider.complete(call)
        self.cost += result.cost_usd if result.cost_usd is not None else model.cost(result.prompt_tokens,
                                                                                  result.completion_tokens)
        return result.text


def _predicted(model: Model, messages: list[dict[str, Any]], max_tokens: int) -> float:
    return model.cost(count_tokens("\n".join(str(m["content"]) for m in messages)), max_tokens)


def _reserve(settings: Settings, job_id: str, amount: float, budget: float | None) -> bool:
    with session_scope(settings) as s:
        stmt = update(Job).where(col(Job.id) == job_id)
        if budget is not None:
            stmt = stmt.where(col(Job.judge_cost_usd) + amount <= budget + 1e-12)
        res = s.execute(stmt.values(judge_cost_usd=col(Job.judge_cost_usd) + amount))
        return bool(res.rowcount == 1)  # type: ignore[attr-defined]


def _adjust(settings: Settings, job_id: str, delta: float) -> None:
    with session_scope(settings) as s:
        s.execute(update(Job).where(col(Job.id) == job_id).values(judge_cost_usd=col(Job.judge_cost_usd) + delta))


def judge_request(settings: Settings, request_id: int, *, catalog: Catalog, attempt: int = 1,
                  provider_for: Callable[[str], Provider] | None = None) -> JudgeDone | JudgeRetry:
    with session_scope(settings) as s:
        req = s.get(Request, request_id)
        job = s.get(Job, req.job_id) if req else None
        done = s.exec(select(Outcome.seq).where(Outcome.request_id == request_id, Outcome.source == "judge")).first()
    if req is None or job is None or req.state != RequestState.succeeded or not req.model:
        return JudgeDone("skipped", "no succeeded request to judge")
    if done is not None:
        return JudgeDone("skipped", "already judged", int(done))  # a redelivered task judges nothing twice
    cfg = judge_config(settings, job)
    if not cfg.model or cfg.model not in catalog:
        return JudgeDone("skipped", f"judge model {cfg.model!r} is not in the catalog")
    if cfg.mode == "pairwise" and not cfg.reference:
        return JudgeDone("skipped", "pairwise judging needs a reference model (judge_reference)")
    if cfg.mode == "pairwise" and req.model == cfg.reference:
        # The reference against itself is a tie by definition: no judge call needed.
        j = Judgement("pairwise", JUDGE_VERSION["pairwise"], verdict="tie", detail={"reference_itself": True})
        return JudgeDone("judged", seq=_store(settings, req, j, cfg, 0.0))
    return _judge(settings, req, cfg, catalog, attempt, provider_for)


def _judge(settings: Settings, req: Request, cfg: JudgeConfig, catalog: Catalog, attempt: int,
           provider_for: Callable[[str], Provider] | None) -> JudgeDone | JudgeRetry:
    answer, judge = answer_text(req), catalog.get(str(cfg.model))
    ref_answer = stored_answer(settings, req.prompt, str(cfg.reference)) if cfg.mode == "pairwise" else None
    mt = settings.judge_max_tokens
    msgs = pairwise_messages(req.prompt, answer, ref_answer or answer) if cfg.mode == "pairwise" \
        else absolute_messages(req.prompt, answer)
    predicted = _predicted(judge, msgs, mt) * (2 if cfg.mode == "pairwise" else 1)
    if cfg.mode == "pairwise" and ref_answer is None and cfg.reference in catalog:
        predicted += catalog.get(str(cfg.reference)).predicted_cost(req.input_tokens)
    if not _reserve(settings, req.job_id, predicted, cfg.budget_usd):
        return JudgeDone("skipped", f"judge budget ${cfg.budget_usd} would be exceeded")
    calls = _Calls(settings, catalog, f"{req.job_id}:{req.custom_id}:judge", provider_for)
    try:
        if cfg.mode == "pairwise":
            if ref_answer is None:  # the reference's answer is not stored: generate it (judge spend)
                ref_answer = calls(str(cfg.reference), [{"role": "user", "content": req.prompt}],
                                   settings.default_max_tokens)
            first = calls(judge.id, pairwise_messages(req.prompt, answer, ref_answer), mt)
            swapped = calls(judge.id, pairwise_messages(req.prompt, ref_answer, answer), mt)
            j = combine_pairwise(first, swapped)
        else:
            j = combine_absolute(calls(judge.id, absolute_messages(req.prompt, answer), mt))
    except TransientError as e:
        _adjust(settings, req.job_id, calls.cost - predicted)
        if attempt >= settings.max_attempts:
            return JudgeDone("failed", f"gave up after {attempt} attempts: {e.message}")
        return JudgeRetry(backoff_delay(attempt, base_s=settings.retry_base_s, max_s=settings.retry_max_s,
                                        retry_after=getattr(e, "retry_after", None)), e.message)
    except PermanentError as e:
        _adjust(settings, req.job_id, calls.cost - predicted)
        return JudgeDone("failed", e.message)
    _adjust(settings, req.job_id, calls.cost - predicted)
    return JudgeDone("judged", seq=_store(settings, req, j, cfg, calls.cost))


def _store(settings: Settings, req: Request, j: Judgement, cfg: JudgeConfig, cost: float) -> int:
    with session_scope(settings) as s:
        o = Outcome(request_id=req.id, model=str(req.model), tags=list(req.tags or []), verdict=j.verdict,
                    quality=j.quality, source="judge", judge_version=j.version, judge_model=cfg.model,
                    cost_usd=cost, detail={**j.detail, "mode": j.mode, "reference": cfg.reference})
        s.add(o)
        s.flush()
        return int(o.seq or 0)
