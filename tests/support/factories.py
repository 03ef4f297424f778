"""Factories for rows the tests need, written through the real SQL store."""

from __future__ import annotations

import uuid
from typing import Any

from switchyard.config import Settings
from switchyard.store.db import session_scope
from switchyard.store.models import Job, JobStatus, Outcome, Request, RequestState


def make_job(settings: Settings, **fields: Any) -> str:
    job_id = fields.pop("id", f"batch_{uuid.uuid4().hex[:12]}")
    with session_scope(settings) as s:
        s.add(Job(id=job_id, status=fields.pop("status", JobStatus.completed), **fields))
    return job_id


def make_request(settings: Settings, job_id: str, custom_id: str, *, model: str = "m-small",
                 tags: list[str] | None = None, state: str = RequestState.succeeded, **fields: Any) -> int:
    with session_scope(settings) as s:
        r = Request(job_id=job_id, line_no=fields.pop("line_no", 1), custom_id=custom_id, state=state, model=model,
                    tags=tags or [], prompt=fields.pop("prompt", f"prompt {custom_id}"), **fields)
        s.add(r)
        s.flush()
        return int(r.id or 0)


def make_outcomes(settings: Settings, rows: list[dict[str, Any]]) -> list[int]:
    """Outcome rows: each dict gives model, tags and a verdict or a quality."""
    with session_scope(settings) as s:
        objs = [Outcome(**{"source": "judge", **r}) for r in rows]
        s.add_all(objs)
        s.flush()
        return [int(o.seq or 0) for o in objs]


def write_dataset(path: Any, prompts: list[tuple[str, str, str]], outcomes: list[tuple[str, str, float | None]],
                  models: dict[str, tuple[float, float]], name: str = "tiny") -> Any:
    """A routing dataset in the FORMAT.md layout: prompts (id, text, split), outcomes
    (prompt id, model, quality or None) and models (id -> USD per 1M input/output tokens)."""
    import json
    from pathlib import Path

    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    (d / "dataset.json").write_text(json.dumps({"name": name, "source": "test", "license": "test",
                                                 "quality": "0/1", "accept_threshold": 0.5}))
    (d / "prompts.jsonl").write_text("".join(json.dumps({"prompt_id": p, "prompt": t, "split": sp,
                                                          "category": None, "input_tokens": 10}) + "\n"
                                             for p, t, sp in prompts))
    (d / "outcomes.csv").write_text("prompt_id,model,quality,output_tokens,cost_usd\n" + "".join(
        f"{p},{m},{'' if q is None else q},20,0.001\n" for p, m, q in outcomes))
    (d / "models.csv").write_text("model,usd_per_mtok_input,usd_per_mtok_output,description\n" + "".join(
        f"{m},{a},{b},\n" for m, (a, b) in models.items()))
    return d
