"""Versioned tag x model score tables in SQL: cells, versions, the served table.

A version's ``ScoreCell`` rows hold the *cumulative* outcome counts (the five
``COUNT_FIELDS``) up to its watermark, so any version rebuilds its
:class:`~switchyard.scoring.ScoreTable` exactly and a rollback is a status change.
The served table is the one ``promoted`` version; workers cache it per version number,
and cache *which* version is promoted for ``score_version_check_s`` seconds, so a request
costs no query at all: a promotion by another process is picked up within that interval
(one small query), and one by this process (refresh, rollback) at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from switchyard.config import Settings
from switchyard.errors import NotFound
from switchyard.scoring import COUNT_FIELDS, ScorerConfig, ScoreTable, TagCounts, TagScorer
from switchyard.store.db import database_url, session_scope
from switchyard.store.models import ScoreCell, ScoreVersion

PROMOTED, CANDIDATE, REJECTED, RETIRED = "promoted", "candidate", "rejected", "retired"

_cache_lock = threading.Lock()
_cache: dict[str, ScoreTable] = {}  # "db url|version" -> table
_promoted: dict[str, tuple[float, int | None]] = {}  # db url -> (monotonic time checked, promoted version)
_KEEP_TABLES = 4  # versions kept per process: the served one plus a few for diff/show


def scorer(settings: Settings) -> TagScorer:
    return TagScorer(ScorerConfig.from_settings(settings))


def promoted_version(s: Session) -> ScoreVersion | None:
    return s.exec(select(ScoreVersion).where(ScoreVersion.status == PROMOTED)
                  .order_by(col(ScoreVersion.version).desc())).first()


def latest_version(s: Session) -> ScoreVersion | None:
    return s.exec(select(ScoreVersion).order_by(col(ScoreVersion.version).desc())).first()


def load_counts(s: Session, version: int) -> TagCounts:
    cells = s.exec(select(ScoreCell).where(ScoreCell.version == version))
    return TagCounts.from_cells({"tag": c.tag, "model": c.model, **{f: getattr(c, f) for f in COUNT_FIELDS}}
                                for c in cells)


def write_version(s: Session, counts: TagCounts, *, parent: int | None, watermark: int, status: str,
                  metrics: dict[str, Any], note: str) -> ScoreVersion:
    """Insert a new version and its cells in the caller's transaction."""
    last = latest_version(s)
    v = ScoreVersion(version=(last.version + 1) if last else 1, parent=parent, watermark=watermark,
                     status=status, n_outcomes=round(counts.n_outcomes), metrics=metrics, note=note)
    s.add(v)
    s.flush()
    s.bulk_insert_mappings(ScoreCell, [{"version": v.version, **c} for c in counts.to_cells()])
    return v


def promote(s: Session, version: int) -> None:
    """Make ``version`` the served table; the previously served one is retired."""
    s.execute(update(ScoreVersion).where(col(ScoreVersion.status) == PROMOTED)
              .values(status=RETIRED))
    s.execute(update(ScoreVersion).where(col(ScoreVersion.version) == version).values(status=PROMOTED))
    forget_promoted()  # this process changed it: do not serve the old version until the next check


def table_for(settings: Settings, version: int) -> ScoreTable:
    """The table of one version, built once per process."""
    key = f"{database_url(settings)}|{version}"
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    with session_scope(settings) as s:
        if s.get(ScoreVersion, version) is None:
            raise NotFound(f"score version {version} does not exist (see `switchyard scores list`)")
        counts = load_counts(s, version)
    table = scorer(settings).table(counts, version=version)
    with _cache_lock:
        _cache[key] = table
        while len(_cache) > _KEEP_TABLES:  # dicts keep insertion order: the oldest built goes first
            _cache.pop(next(iter(_cache)))
    return table


def promoted_number(settings: Settings, *, now: float | None = None) -> int | None:
    """The promoted version's number, queried at most once per ``score_version_check_s``."""
    url = database_url(settings)
    now = time.monotonic() if now is None else now
    with _cache_lock:
        hit = _promoted.get(url)
    if hit is not None and now - hit[0] < settings.score_version_check_s:
        return hit[1]
    with session_scope(settings) as s:
        v = promoted_version(s)
        number = v.version if v else None
    with _cache_lock:
        _promoted[url] = (now, number)
    return number


def current_table(settings: Settings, *, now: float | None = None) -> ScoreTable | None:
    """The promoted table, or None before anything was imported or refreshed.

    Hot path of every routed batch: no query while the cached version is fresh, and the
    table of a version is built once (``table_for``), so a version change costs one rebuild."""
    number = promoted_number(settings, now=now)
    return table_for(settings, number) if number is not None else None


def forget_promoted() -> None:
    """Make the next :func:`current_table` ask the database which version is promoted."""
    with _cache_lock:
        _promoted.clear()


def list_versions(settings: Settings, limit: int = 50) -> list[dict[str, Any]]:
    with session_scope(settings) as s:
        rows = s.exec(select(ScoreVersion).order_by(col(ScoreVersion.version).desc()).limit(limit))
        return [version_json(v) for v in rows]


def version_json(v: ScoreVersion) -> dict[str, Any]:
    return {"version": v.version, "parent": v.parent, "status": v.status, "watermark": v.watermark,
            "n_outcomes": v.n_outcomes, "metrics": v.metrics, "note": v.note,
            "created_at": v.created_at.isoformat()}


def rollback(settings: Settings, version: int) -> dict[str, Any]:
    """Serve an earlier version again. Its counts stay as they were; later outcomes are not lost
    (they remain in the newer versions' cells and in the outcome log)."""
    with session_scope(settings) as s:
        v = s.get(ScoreVersion, version)
        if v is None:
            raise NotFound(f"score version {version} does not exist (see `switchyard scores list`)")
        promote(s, version)
        s.flush()
        s.refresh(v)
        return version_json(v)


@dataclass
class CellChange:
    tag: str
    model: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float:
        return (self.after or 0.0) - (self.before or 0.0)


def show(settings: Settings, version: int | None, top: int = 10) -> dict[str, Any]:
    """A version's summary: per model its global rate and best tags."""
    if version is None:
        with session_scope(settings) as s:
            v = promoted_version(s)
            if v is None:
                raise NotFound("no promoted score version yet: run `switchyard scores import` or a refresh")
            version = v.version
    t = table_for(settings, version)
    with session_scope(settings) as s:
        meta = version_json(s.get(ScoreVersion, version))  # type: ignore[arg-type]
    models = {}
    for j, m in enumerate(t.models):
        order = np.argsort(-t.scores[:, j])[:top]
        models[m] = {"global_rate": round(float(t.global_rate[j]), 4), "outcomes": int(t.global_n[j]),
                     "top_tags": [[t.tags[i], round(float(t.scores[i, j]), 4)] for i in order]}
    return {**meta, "n_tags": len(t.tags), "models": models}


def diff(settings: Settings, a: int, b: int, top: int = 20) -> dict[str, Any]:
    """Score changes from version ``a`` to ``b``: new tags and models, and the largest moves."""
    ta, tb = table_for(settings, a), table_for(settings, b)
    cells_a = _score_map(ta)
    cells_b = _score_map(tb)
    changes = [CellChange(t, m, cells_a.get((t, m)), cells_b.get((t, m))) for (t, m) in set(cells_a) | set(cells_b)]
    changes.sort(key=lambda c: -abs(c.delta))
    return {"from": a, "to": b,
            "models_added": sorted(set(tb.models) - set(ta.models)),
            "models_removed": sorted(set(ta.models) - set(tb.models)),
            "tags_added": len(set(tb.tags) - set(ta.tags)), "tags_removed": len(set(ta.tags) - set(tb.tags)),
            "outcomes": [float(ta.global_n.sum()), float(tb.global_n.sum())],
            "largest_changes": [{"tag": c.tag, "model": c.model, "before": c.before, "after": c.after,
                                 "delta": round(c.delta, 6)} for c in changes[:top]]}


def _score_map(t: ScoreTable) -> dict[tuple[str, str], float]:
    out = {("*", m): float(t.global_rate[j]) for j, m in enumerate(t.models)}
    rows, cols = np.nonzero(t.n > 0)
    for i, j in zip(rows, cols, strict=True):
        out[(t.tags[i], t.models[j])] = float(t.scores[i, j])
    return out


def count_versions(s: Session) -> int:
    return int(s.exec(select(func.count()).select_from(ScoreVersion)).one())


def clear_cache(keys: Iterable[str] | None = None) -> None:
    with _cache_lock:
        for k in list(keys or _cache):
            _cache.pop(k, None)
        _promoted.clear()
