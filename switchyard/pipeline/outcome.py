"""Outcomes: judged results that the score refresh folds into the tag x model tables.

They arrive three ways, all ending as ``Outcome`` rows linked to a model and the
request's canonical tags:

- feedback on a finished request (``switchyard feedback``, later the API): a verdict
  (win / tie / loss) or a scalar quality in [0, 1], from a judge or a user;
- ``switchyard scores import DATASET_DIR``: a routing dataset's train split, tagged
  with the configured tagger and aligned to the canonical vocabulary (built from that
  same train split when none exists yet);
- the ``--online`` evaluation replays, which use the pure core instead.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import col, select

from switchyard.config import Settings
from switchyard.datasets import load_dataset
from switchyard.embeddings import prompt_texts
from switchyard.errors import InputError, NotFound
from switchyard.store.db import session_scope
from switchyard.store.models import Job, Outcome, Request, RequestState
from switchyard.tagging.vocabulary import Vocabulary, build_vocabulary, default_embed

VERDICTS = ("win", "tie", "loss")
SOURCES = ("judge", "user", "import")
FEEDBACK_FIELDS = ("verdict", "quality", "source", "request_id", "job_id", "custom_id", "judge_version")


@dataclass
class Feedback:
    """One piece of feedback on a finished request, addressed by id or by (job, custom_id)."""

    verdict: str | None = None
    quality: float | None = None
    source: str = "user"
    request_id: int | None = None
    job_id: str | None = None
    custom_id: str | None = None
    judge_version: str | None = None

    def check(self, where: str = "feedback") -> None:
        if (self.verdict is None) == (self.quality is None):
            raise InputError(f"{where}: give exactly one of verdict (win|tie|loss) or quality (0..1)",
                             field="verdict")
        if self.verdict is not None and self.verdict not in VERDICTS:
            raise InputError(f"{where}: verdict {self.verdict!r} is not one of win, tie, loss", field="verdict")
        if self.quality is not None and not (math.isfinite(self.quality) and 0.0 <= self.quality <= 1.0):
            raise InputError(f"{where}: quality {self.quality!r} must be a number in [0, 1]", field="quality")
        if self.source not in SOURCES:
            raise InputError(f"{where}: source {self.source!r} is not one of {', '.join(SOURCES)}",
                             field="source")
        if self.request_id is None and not (self.job_id and self.custom_id):
            raise InputError(f"{where}: name the request by request_id, or by job_id and custom_id",
                             field="request_id")


def record_feedback(settings: Settings, fb: Feedback, *, owner: str | None = None) -> int:
    """Store one outcome for a dispatched request. Returns its sequence number.

    With ``owner`` (an API key id), only that key's requests can be judged."""
    fb.check()
    with session_scope(settings) as s:
        if fb.request_id is not None:
            req = s.get(Request, fb.request_id)
        else:
            req = s.exec(select(Request).where(Request.job_id == fb.job_id,
                                               Request.custom_id == fb.custom_id)).first()
        who = fb.request_id if fb.request_id is not None else f"{fb.job_id}/{fb.custom_id}"
        if req is not None and owner is not None:
            job = s.get(Job, req.job_id)
            req = req if job is not None and job.owner == owner else None
        if req is None:
            raise NotFound(f"request {who} does not exist")
        if req.state != RequestState.succeeded or not req.model:
            raise InputError(f"request {who} has no answer to judge (state {req.state}); "
                             "feedback applies to succeeded requests", field="request_id")
        o = Outcome(request_id=req.id, model=req.model, tags=list(req.tags or []), verdict=fb.verdict,
                    quality=fb.quality, source=fb.source, judge_version=fb.judge_version)
        s.add(o)
        s.flush()
        return int(o.seq or 0)


def parse_feedback_lines(lines: Iterable[str], name: str
                         ) -> tuple[list[tuple[int, Feedback]], list[dict[str, Any]]]:
    """Feedback JSONL -> ((line number, item) pairs, error lines naming the line, field and fix)."""
    good: list[tuple[int, Feedback]] = []
    errors: list[dict[str, Any]] = []
    for n, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        where = f"{name} line {n}"
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise InputError(f"{where}: expected a JSON object", field="")
            unknown = sorted(set(obj) - set(FEEDBACK_FIELDS))
            if unknown:  # a typo ("verdit") would otherwise silently lose the verdict
                raise InputError(f"{where}: unknown field(s) {', '.join(unknown)}; allowed: "
                                 f"{', '.join(FEEDBACK_FIELDS)}", field=unknown[0])
            fb = Feedback(**obj)
            fb.check(where)
            good.append((n, fb))
        except json.JSONDecodeError as e:
            errors.append({"line": n, "field": "", "error": f"{where}: invalid JSON ({e.msg})"})
        except TypeError as e:
            errors.append({"line": n, "field": "", "error": f"{where}: {e}"})
        except InputError as e:
            errors.append({"line": n, "field": getattr(e, "field", "") or "", "error": str(e)})
    return good, errors


# --- importing a routing dataset ------------------------------------------------------
@dataclass
class ImportResult:
    dataset: str
    split: str
    prompts: int
    outcomes: int
    skipped_existing: int
    vocabulary: str
    vocabulary_size: int
    dropped_tags: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return self.__dict__


def vocabulary_path(settings: Settings) -> Path:
    base = Path(settings.artifacts_dir) if settings.artifacts_dir else Path(settings.data_dir) / "artifacts"
    return base / "vocabulary.json"


def import_dataset(settings: Settings, path: str | Path, *, split: str = "train", tagger: str | None = None,
                   rebuild_vocabulary: bool = False, min_count: int = 2, merge_threshold: float = 0.85,
                   exclude_models: Sequence[str] | None = None) -> ImportResult:
    """Load a dataset split as ``import`` outcomes. Idempotent: (prompt, model) pairs already
    imported are skipped, so importing twice adds nothing. ``exclude_models`` leaves models
    out of the pool (to onboard one of them later by probe job)."""
    from switchyard.tagging import get_tagger

    ds = load_dataset(path)
    idx = ds.split_indices(split)
    prompts = [ds.prompts[i].prompt for i in idx]
    tag = get_tagger(tagger or settings.tagger)
    raw = tag.tag_batch(prompts)
    keys = [f"{ds.name}:{ds.prompts[i].prompt_id}" for i in idx]
    keep = [j for j, m in enumerate(ds.model_ids) if m not in set(exclude_models or ())]
    models, quality = [ds.model_ids[j] for j in keep], ds.quality[np.ix_(idx, np.array(keep, dtype=np.int64))]
    if getattr(tag, "canonical", False):  # its tags need no vocabulary (the keywords tagger)
        added, skipped = _insert_new(settings, _outcome_rows(keys, raw, models, quality))
        return ImportResult(ds.name, split, len(idx), added, skipped, "none", 0, 0, {"tagger": "canonical"})
    vpath = vocabulary_path(settings)
    emb = default_embed(prompt_texts(prompts)) if prompts else None  # [N, DIM]: topic tags (tagging/topics.py)
    if rebuild_vocabulary or not vpath.is_file():
        build_vocabulary(raw, min_count=min_count, merge_threshold=merge_threshold,
                         prompt_embeddings=emb).save(vpath)
    vocab = Vocabulary.load(vpath)
    aligned = vocab.align(raw, settings.vocab_threshold, prompt_embeddings=emb)
    rows = _outcome_rows(keys, aligned.tags, models, quality)
    added, skipped = _insert_new(settings, rows)
    return ImportResult(ds.name, split, len(idx), added, skipped, vocab.version, len(vocab), aligned.dropped,
                        {"vocabulary_path": str(vpath)})


def _outcome_rows(keys: Sequence[str], tags: Sequence[Sequence[str]], models: Sequence[str],
                  quality: np.ndarray) -> list[dict[str, Any]]:
    rows, cols = np.nonzero(np.isfinite(quality))  # unknown outcomes are not outcomes (FORMAT.md)
    return [{"prompt_key": keys[int(i)], "model": models[int(j)], "tags": list(tags[int(i)]),
             "quality": float(quality[i, j]), "source": "import"} for i, j in zip(rows, cols, strict=True)]


def _insert_new(settings: Settings, rows: list[dict[str, Any]]) -> tuple[int, int]:
    keys = sorted({r["prompt_key"] for r in rows})
    seen: set[tuple[str, str]] = set()
    with session_scope(settings) as s:
        for i in range(0, len(keys), 500):
            chunk = keys[i:i + 500]
            seen |= {(str(k), str(m)) for k, m in s.exec(
                select(Outcome.prompt_key, Outcome.model).where(col(Outcome.prompt_key).in_(chunk),
                                                               Outcome.source == "import"))}
        new = [r for r in rows if (r["prompt_key"], r["model"]) not in seen]
        for i in range(0, len(new), 2000):
            s.add_all([Outcome(**r) for r in new[i:i + 2000]])
            s.flush()
    return len(new), len(rows) - len(new)
