"""Onboarding a new model by probe job: ``switchyard models onboard MODEL_ID --probe PROMPTS.jsonl``.

1. :func:`submit_probe_job` turns the probe prompts into an ordinary bulk job: every line
   is ``switchyard/auto`` restricted to the new model (``routing.allow``), so the gpu
   workers tag it like any routed request, and the job's metadata asks for every answer
   of the new model to be judged (``judge_sample_rate = 1``, ``judge_models``). It runs
   through the normal queues (tag_and_route, dispatch, judge), visible in Flower.
2. The judge (:mod:`switchyard.pipeline.judge`) compares each answer with the reference
   model's answer to the same prompt (pairwise; a stored answer is reused, otherwise the
   reference is called, on the judge's account) or scores it alone (absolute).
3. :func:`finish` waits for the verdicts, folds them into a new score version, and
   reports per tag whether the new model now wins, ties or loses against the best of the
   current pool. The model has a column in every tag's scores from then on (tags it was
   never probed on fall back to its global record): no retraining.

Scale: absolute scores land on the [0, 1] quality scale of imported datasets. Pairwise
verdicts mean "beats the reference": comparable with imported outcomes only when the
reference is the dataset's own reference (AlpacaEval's is GPT-4 Turbo); pick absolute
when onboarding into a pool learnt from imports against another reference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import func
from sqlmodel import select

from switchyard import AUTO_MODEL
from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.errors import InputError
from switchyard.jobs import message_text
from switchyard.pipeline.intake import JobPlan, submit_job
from switchyard.scoring import GLOBAL_TAG, ScoreTable
from switchyard.store.db import session_scope
from switchyard.store.models import Job, Outcome, Request, RequestState


def read_probes(path: Path) -> list[str]:
    """Probe prompts: JSONL of ``{"prompt"}``, or OpenAI Batch lines (the last user message)."""
    prompts: list[str] = []
    for n, raw in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise InputError(f"{path} line {n}: invalid JSON ({e.msg})", field="") from None
        msgs = (obj.get("body") or {}).get("messages") if isinstance(obj, dict) else None
        text = obj.get("prompt") if isinstance(obj, dict) else None
        if text is None and msgs:
            text = next((message_text(m.get("content")) for m in reversed(msgs) if m.get("role") == "user"), None)
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{path} line {n}: give a non-empty \"prompt\" (or body.messages with a user message)",
                             field="prompt")
        prompts.append(text)
    if not prompts:
        raise InputError(f"{path} holds no probe prompts", field="prompt")
    return prompts


def probe_metadata(model: str, *, judge_model: str, mode: str, reference: str | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"onboard": model, "judge_sample_rate": 1.0, "judge_models": [model],
                            "judge_model": judge_model, "judge_mode": mode}
    if reference:
        meta["judge_reference"] = reference
    return meta


def submit_probe_job(settings: Settings, model: str, prompts: Sequence[str], *, catalog: Catalog,
                     judge_model: str, mode: str = "pairwise", reference: str | None = None,
                     max_tokens: int | None = None) -> JobPlan:
    for name, m in (("model", model), ("judge", judge_model), ("reference", reference)):
        if m is not None and m not in catalog:
            raise InputError(f"{name} {m!r} is not in the catalog; add it there first", field=name)
    if mode == "pairwise" and not reference:
        raise InputError("pairwise onboarding needs --reference MODEL (or use --mode absolute)", field="reference")
    lines = [json.dumps({"custom_id": f"probe-{i}", "method": "POST", "url": "/v1/chat/completions",
                         "body": {"model": AUTO_MODEL, "messages": [{"role": "user", "content": p}],
                                  "max_tokens": max_tokens or settings.default_max_tokens},
                         "routing": {"allow": [model], "policy": "cheapest"}}).encode()
             for i, p in enumerate(prompts)]
    return submit_job(settings, lines, catalog=catalog, input_name=f"onboard:{model}", policy="cheapest",
                      metadata=probe_metadata(model, judge_model=judge_model, mode=mode, reference=reference))


def judged_count(settings: Settings, job_id: str) -> tuple[int, int]:
    """(judge outcomes stored, succeeded requests) of a job."""
    with session_scope(settings) as s:
        judged = s.exec(select(func.count()).select_from(Outcome).join(Request, Request.id == Outcome.request_id)  # type: ignore[arg-type]
                        .where(Request.job_id == job_id, Outcome.source == "judge")).one()
        ok = s.exec(select(func.count()).select_from(Request).where(
            Request.job_id == job_id, Request.state == RequestState.succeeded)).one()
    return int(judged), int(ok)


def wait_for_verdicts(settings: Settings, job_id: str, *, timeout_s: float = 600, quiet_s: float = 5.0) -> int:
    """Wait until every succeeded probe has a judge outcome (or none arrived for ``quiet_s``:
    a judge budget or a failing judge). Returns the number of judge outcomes."""
    deadline, last, last_change = time.monotonic() + timeout_s, -1, time.monotonic()
    while time.monotonic() < deadline:
        with session_scope(settings) as s:
            job = s.get(Job, job_id)
            finished = job is not None and job.finished_at is not None
        judged, ok = judged_count(settings, job_id)
        if finished and judged >= ok:
            return judged
        if judged != last:
            last, last_change = judged, time.monotonic()
        elif finished and time.monotonic() - last_change > quiet_s:
            return judged
        time.sleep(0.2)
    return max(last, 0)


@dataclass
class TagReport:
    model: str
    wins: list[str] = field(default_factory=list)
    ties: list[str] = field(default_factory=list)
    losses: list[str] = field(default_factory=list)
    evidence: dict[str, int] = field(default_factory=dict)  # tag -> the new model's outcomes on it
    global_rate: float | None = None
    pool_best_global: float | None = None

    def to_json(self) -> dict[str, Any]:
        return self.__dict__


def tag_report(table: ScoreTable, model: str, *, margin: float = 0.02) -> TagReport:
    """Per tag the new model has outcomes on: its rate against the best pool model's
    (a model with outcomes on that tag); within ``margin`` on the reward scale is a tie."""
    rep = TagReport(model)
    if model not in table.models:
        return rep
    j = table.models.index(model)
    pool = [k for k, m in enumerate(table.models) if k != j and table.global_n[k] > 0]
    rep.global_rate = float(table.global_rate[j])
    rep.pool_best_global = float(max(table.global_rate[pool])) if pool else None
    for t, tag in enumerate(table.tags):
        if tag == GLOBAL_TAG or table.n[t, j] <= 0:
            continue
        seen = [k for k in pool if table.n[t, k] > 0]
        best = float(np.max(table.rate[t, seen])) if seen else rep.pool_best_global
        if best is None:
            continue
        diff = float(table.rate[t, j]) - best
        (rep.wins if diff > margin else rep.ties if diff >= -margin else rep.losses).append(tag)
        rep.evidence[tag] = round(float(table.n[t, j]))
    for lst in (rep.wins, rep.ties, rep.losses):
        lst.sort(key=lambda tg: -rep.evidence[tg])
    return rep
