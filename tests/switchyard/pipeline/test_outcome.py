"""Outcomes from feedback and from dataset imports, through the real SQL store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlmodel import select

from switchyard.config import Settings
from switchyard.errors import InputError, NotFound
from switchyard.pipeline.outcome import Feedback, import_dataset, parse_feedback_lines, record_feedback
from switchyard.store.db import session_scope
from switchyard.store.models import Outcome, RequestState
from tests.support.factories import make_job, make_request, write_dataset


def test_feedback_links_the_requests_model_and_tags(settings: Settings) -> None:
    job = make_job(settings)
    rid = make_request(settings, job, "q1", model="m-large", tags=["python", "debugging"])
    seq = record_feedback(settings, Feedback(verdict="win", source="judge", job_id=job, custom_id="q1"))
    with session_scope(settings) as s:
        o = s.get(Outcome, seq)
        assert o is not None and (o.request_id, o.model, o.tags, o.verdict, o.source) == (
            rid, "m-large", ["python", "debugging"], "win", "judge")


@pytest.mark.parametrize("fb, field", [
    (Feedback(verdict="great", request_id=1), "verdict"),
    (Feedback(quality=1.5, request_id=1), "quality"),
    (Feedback(verdict="win", quality=0.5, request_id=1), "verdict"),
    (Feedback(verdict="win", source="oracle", request_id=1), "source"),
    (Feedback(verdict="win", job_id="j"), "request_id"),
])
def test_bad_feedback_names_the_field(settings: Settings, fb: Feedback, field: str) -> None:
    with pytest.raises(InputError) as e:
        record_feedback(settings, fb)
    assert e.value.field == field


def test_feedback_needs_a_succeeded_request(settings: Settings) -> None:
    job = make_job(settings)
    make_request(settings, job, "failed", state=RequestState.failed)
    with pytest.raises(InputError, match="no answer to judge"):
        record_feedback(settings, Feedback(verdict="loss", job_id=job, custom_id="failed"))
    with pytest.raises(NotFound):
        record_feedback(settings, Feedback(verdict="loss", job_id=job, custom_id="missing"))


def test_feedback_file_errors_carry_line_numbers() -> None:
    lines = [json.dumps({"job_id": "j", "custom_id": "a", "verdict": "win"}), "{not json",
             json.dumps({"job_id": "j", "custom_id": "b", "quality": 7}), "",
             json.dumps({"request_id": 3, "verdict": "tie", "colour": "red"})]
    good, errors = parse_feedback_lines(lines, "fb.jsonl")
    assert [n for n, _ in good] == [1]
    assert [(e["line"], e["field"]) for e in errors] == [(2, ""), (3, "quality"), (5, "colour")]
    assert "fb.jsonl line 2" in errors[0]["error"] and "colour" in errors[2]["error"]


def test_import_loads_the_train_split_once(settings: Settings, tmp_path: Path) -> None:
    prompts = [("p1", "Write a Python function to sort a list", "train"),
               ("p2", "Fix this Python bug in my sorting code", "train"),
               ("p3", "Write a short poem about the sea", "train"),
               ("p4", "Write a poem about autumn leaves", "train"),
               ("t1", "Write a Python script that reads a CSV file", "test")]
    outcomes = [(p, m, q) for p, _, _ in prompts for m, q in (("coder", 1.0), ("poet", 0.0))]
    outcomes.append(("p3", "poet", None))  # unjudged: skipped, as FORMAT.md says
    ds = write_dataset(tmp_path / "ds", prompts, [o for o in outcomes if not (o[0] == "p3" and o[1] == "poet"
                                                                            and o[2] == 0.0)],
                       {"coder": (1.0, 2.0), "poet": (0.1, 0.2)})
    result = import_dataset(settings, ds, tagger="offline", min_count=1)
    assert (result.prompts, result.outcomes, result.skipped_existing) == (4, 7, 0)
    with session_scope(settings) as s:
        rows = list(s.exec(select(Outcome)))
    assert {r.prompt_key for r in rows} == {"tiny:p1", "tiny:p2", "tiny:p3", "tiny:p4"}  # no test prompt
    assert all(r.source == "import" and r.tags for r in rows)
    assert Path(result.details["vocabulary_path"]).is_file() and result.vocabulary_size > 0
    again = import_dataset(settings, ds, tagger="offline")
    assert (again.outcomes, again.skipped_existing) == (0, 7)
