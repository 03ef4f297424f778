"""Score refresh: fold outcomes newer than the watermark into a new score table version.

Run by the beat task ``refresh_scores`` (and ``switchyard scores refresh``). One run:

1. takes a lease-style lock row (``SchedulerState``), so overlapping runs (two beats, a
   manual refresh beside the schedule) do nothing instead of double-counting;
2. in **one transaction**: reads the outcomes with ``seq > watermark``, adds them to the
   latest version's cumulative counts, writes the new version and its cells, and moves
   the watermark. A crash anywhere rolls all of it back, so a rerun folds the same
   outcomes exactly once;
3. gates promotion: the newest ``refresh_holdout_frac`` of the new outcomes are held
   back, a candidate is built without them, and it is promoted only when its error on
   them is not worse than the served table's (mean squared error of the predicted
   reward against the observed one). Too few held-back outcomes skip the gate.

A rejected version keeps its counts: the next refresh builds on it, so no outcome is
ever lost, and a later version can still be promoted once the evidence supports it.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from switchyard.config import Settings
from switchyard.scoring import ScoreTable, TagCounts, TagScorer
from switchyard.store.db import session_scope
from switchyard.store.models import Outcome, SchedulerState, utcnow
from switchyard.store.scores import (
    CANDIDATE,
    PROMOTED,
    REJECTED,
    latest_version,
    load_counts,
    promote,
    promoted_version,
    scorer,
    write_version,
)

LOCK_NAME = "refresh_scores"


@dataclass
class RefreshResult:
    status: str  # refreshed | nothing_new | locked
    version: int | None = None
    promoted: bool = False
    n_new: int = 0
    watermark: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "version": self.version, "promoted": self.promoted, "n_new": self.n_new,
                "watermark": self.watermark, "metrics": self.metrics}


# --- the lock ----------------------------------------------------------------------------
def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def acquire_lock(settings: Settings, owner: str) -> bool:
    """Atomic compare-and-set on the lock row; an expired lease (a crashed run) is taken over."""
    now = utcnow()
    with session_scope(settings) as s:
        if s.get(SchedulerState, LOCK_NAME) is None:
            try:
                s.execute(insert(SchedulerState).values(name=LOCK_NAME, watermark=0))
                s.commit()
            except IntegrityError:  # another process created it first
                s.rollback()
        got = s.execute(update(SchedulerState)
                        .where(col(SchedulerState.name) == LOCK_NAME,
                               or_(col(SchedulerState.locked_until).is_(None),
                                   col(SchedulerState.locked_until) < now))
                        .values(locked_by=owner, locked_until=now + dt.timedelta(seconds=settings.refresh_lock_s)))
        return bool(got.rowcount)  # type: ignore[attr-defined]


def release_lock(settings: Settings, owner: str) -> None:
    with session_scope(settings) as s:
        s.execute(update(SchedulerState).where(col(SchedulerState.name) == LOCK_NAME,
                                               col(SchedulerState.locked_by) == owner)
                  .values(locked_by=None, locked_until=None))


# --- outcomes -> counts ------------------------------------------------------------------
def counts_of(outcomes: list[Outcome]) -> TagCounts:
    counts = TagCounts()
    counts.add_outcomes(outcomes)  # a row with a verdict and a quality counts once, as its verdict
    return counts


def observed_reward(o: Outcome, sc: TagScorer) -> float | None:
    c = sc.config
    if o.verdict in ("win", "tie", "loss"):
        return {"win": c.s_win, "tie": c.s_tie, "loss": c.s_loss}[o.verdict]
    if o.quality is not None and np.isfinite(o.quality):
        return c.s_loss + float(np.clip(o.quality, 0, 1)) * (c.s_win - c.s_loss)
    return None


def prediction_error(table: ScoreTable | None, outcomes: list[Outcome], sc: TagScorer) -> float | None:
    """Mean squared error of the table's predicted reward S(M, tags) on ``outcomes``."""
    rows = [(o, r) for o in outcomes if (r := observed_reward(o, sc)) is not None]
    if table is None or not rows:
        return None
    s, _ = table.aggregate([o.tags or [] for o, _ in rows])  # [B, M]
    col_of = {m: j for j, m in enumerate(table.models)}
    pooled = float(np.mean(table.global_rate)) if len(table.models) else 0.0
    pred = np.array([s[i, col_of[o.model]] if o.model in col_of else pooled for i, (o, _) in enumerate(rows)])
    obs = np.array([r for _, r in rows])
    return float(np.mean((pred - obs) ** 2))


def gate(settings: Settings, base: TagCounts, new: list[Outcome], served: ScoreTable | None,
         sc: TagScorer) -> tuple[bool, dict[str, Any]]:
    """Promote or not: the candidate without the held-back newest outcomes vs the served table."""
    n_hold = int(len(new) * settings.refresh_holdout_frac)
    if served is None:
        return True, {"gate": "first version: nothing to compare against"}
    if n_hold < settings.refresh_min_holdout:
        return True, {"gate": f"skipped: {n_hold} held-back outcomes < {settings.refresh_min_holdout}"}
    fit, held = new[: len(new) - n_hold], new[len(new) - n_hold:]
    # A model the served table has no column for (being onboarded) has no served prediction to
    # beat: its outcomes are folded, but only models both tables know are compared.
    known = set(served.models[k] for k in range(len(served.models)) if served.global_n[k] > 0)
    held = [o for o in held if o.model in known]
    if len(held) < settings.refresh_min_holdout:
        return True, {"gate": f"skipped: {len(held)} held-back outcomes of served models "
                              f"< {settings.refresh_min_holdout} (new models are not gated)"}
    candidate = sc.table(base.merge(counts_of(fit)))
    err_new, err_old = prediction_error(candidate, held, sc), prediction_error(served, held, sc)
    ok = err_new is None or err_old is None or err_new <= err_old * (1 + settings.refresh_tolerance) + 1e-12
    return ok, {"gate": "held-back outcomes", "n_holdout": n_hold, "mse_candidate": err_new,
                "mse_served": err_old}


# --- one refresh -------------------------------------------------------------------------
def refresh_scores(settings: Settings, *, note: str = "scheduled refresh") -> RefreshResult:
    owner = _owner()
    if not acquire_lock(settings, owner):
        return RefreshResult("locked")
    try:
        with session_scope(settings) as s:
            return _fold(s, settings, note)
    finally:
        release_lock(settings, owner)


def _fold(s: Session, settings: Settings, note: str) -> RefreshResult:
    state = s.get(SchedulerState, LOCK_NAME)
    watermark = state.watermark if state else 0
    settled = utcnow() - dt.timedelta(seconds=settings.refresh_settle_s)
    new = list(s.exec(select(Outcome).where(col(Outcome.seq) > watermark, col(Outcome.created_at) <= settled)
                      .order_by(col(Outcome.seq))))
    if not new:
        return RefreshResult("nothing_new", watermark=watermark)
    sc = scorer(settings)
    last, served_v = latest_version(s), promoted_version(s)
    base = load_counts(s, last.version) if last else TagCounts()
    served = sc.table(load_counts(s, served_v.version)) if served_v else None
    ok, metrics = gate(settings, base, new, served, sc)
    metrics.update({"n_new": len(new), "sources": _sources(new)})
    high = int(new[-1].seq or 0)
    v = write_version(s, base.merge(counts_of(new)), parent=last.version if last else None, watermark=high,
                      status=CANDIDATE, metrics=metrics, note=note)
    if ok:
        promote(s, v.version)
    else:
        v.status = REJECTED
    s.execute(update(SchedulerState).where(col(SchedulerState.name) == LOCK_NAME).values(watermark=high,
                                                                                         updated_at=utcnow()))
    return RefreshResult("refreshed", v.version, ok, len(new), high, metrics)


def _sources(outcomes: list[Outcome]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in outcomes:
        out[o.source] = out.get(o.source, 0) + 1
    return out


__all__ = ["PROMOTED", "RefreshResult", "refresh_scores"]
