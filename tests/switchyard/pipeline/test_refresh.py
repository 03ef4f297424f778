"""The score refresh on a real SQLite store: watermark, versions, lock, promotion gate."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from switchyard.config import Settings
from switchyard.pipeline import refresh as refresh_mod
from switchyard.pipeline.refresh import LOCK_NAME, acquire_lock, refresh_scores
from switchyard.store.db import session_scope
from switchyard.store.models import SchedulerState, ScoreVersion
from switchyard.store.scores import current_table, diff, list_versions, rollback, show
from tests.support.factories import make_outcomes


@pytest.fixture
def cfg(settings: Settings) -> Settings:
    return settings.model_copy(update={"refresh_settle_s": 0.0, "refresh_min_holdout": 5})


def verdicts(model: str, tag: str, verdict: str, n: int) -> list[dict[str, Any]]:
    return [{"model": model, "tags": [tag], "verdict": verdict} for _ in range(n)]


def test_nothing_to_fold_makes_no_version(cfg: Settings) -> None:
    assert refresh_scores(cfg).status == "nothing_new"
    assert list_versions(cfg) == [] and current_table(cfg) is None


def test_first_refresh_folds_outcomes_into_a_promoted_version(cfg: Settings) -> None:
    seqs = make_outcomes(cfg, verdicts("a", "python", "win", 6) + verdicts("b", "python", "loss", 6)
                         + [{"model": "b", "tags": ["poetry"], "quality": 0.9}])
    r = refresh_scores(cfg)
    assert (r.status, r.version, r.promoted, r.n_new, r.watermark) == ("refreshed", 1, True, 13, max(seqs))
    table = current_table(cfg)
    assert table is not None and table.version == 1
    assert table.score("a", "python") > table.score("b", "python")
    counts = table.with_counts()
    ti, ma = counts.tags.index("python"), counts.models.index("a")
    assert counts.arr[ti, ma, 0] == 6  # six wins counted, once each


def test_refresh_is_idempotent_and_cumulative(cfg: Settings) -> None:
    make_outcomes(cfg, verdicts("a", "python", "win", 3))
    assert refresh_scores(cfg).version == 1
    assert refresh_scores(cfg).status == "nothing_new"  # a rerun folds nothing twice
    make_outcomes(cfg, verdicts("a", "python", "win", 2))
    r = refresh_scores(cfg)
    assert r.version == 2 and r.n_new == 2
    counts = current_table(cfg).with_counts()  # type: ignore[union-attr]
    assert counts.arr[counts.tags.index("python"), counts.models.index("a"), 0] == 5


def test_overlapping_run_is_locked_out_until_the_lease_expires(cfg: Settings) -> None:
    make_outcomes(cfg, verdicts("a", "python", "win", 3))
    assert acquire_lock(cfg, "other-host:1")
    assert refresh_scores(cfg).status == "locked"
    assert list_versions(cfg) == []
    with session_scope(cfg) as s:  # the other run crashed: its lease runs out
        s.get(SchedulerState, LOCK_NAME).locked_until = dt.datetime(2000, 1, 1)  # type: ignore[union-attr]
    assert refresh_scores(cfg).status == "refreshed"


def test_a_crash_mid_refresh_rolls_back_watermark_and_version(cfg: Settings,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    make_outcomes(cfg, verdicts("a", "python", "win", 3))

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("killed between writing the version and moving the watermark")

    monkeypatch.setattr(refresh_mod, "promote", boom)
    with pytest.raises(RuntimeError):
        refresh_scores(cfg)
    with session_scope(cfg) as s:
        assert s.get(SchedulerState, LOCK_NAME).watermark == 0  # type: ignore[union-attr]
        assert s.get(ScoreVersion, 1) is None
        assert s.get(SchedulerState, LOCK_NAME).locked_by is None  # type: ignore[union-attr]
    monkeypatch.undo()
    assert refresh_scores(cfg).n_new == 3  # the rerun folds them exactly once


def test_outcomes_younger_than_the_settle_window_wait(settings: Settings) -> None:
    cfg = settings.model_copy(update={"refresh_settle_s": 3600.0})
    make_outcomes(cfg, verdicts("a", "python", "win", 3))
    assert refresh_scores(cfg).status == "nothing_new"


def test_gate_rejects_a_version_that_predicts_recent_outcomes_worse(cfg: Settings) -> None:
    make_outcomes(cfg, verdicts("a", "python", "win", 40) + verdicts("b", "python", "loss", 40))
    assert refresh_scores(cfg).promoted
    # A burst of contradicting outcomes, then (newest, held back) the old pattern again.
    make_outcomes(cfg, verdicts("a", "python", "loss", 40) + verdicts("b", "python", "win", 40)
                  + verdicts("a", "python", "win", 10) + verdicts("b", "python", "loss", 10))
    r = refresh_scores(cfg)
    assert r.status == "refreshed" and not r.promoted
    assert r.metrics["mse_candidate"] > r.metrics["mse_served"]
    assert current_table(cfg).version == 1  # type: ignore[union-attr]
    assert [v["status"] for v in list_versions(cfg)] == ["rejected", "promoted"]


def test_gate_promotes_consistent_evidence_and_a_new_model_gains_a_row(cfg: Settings) -> None:
    make_outcomes(cfg, verdicts("a", "python", "win", 30))
    refresh_scores(cfg)
    make_outcomes(cfg, verdicts("a", "python", "win", 30) + verdicts("new-model", "python", "win", 20))
    r = refresh_scores(cfg)
    assert r.promoted
    table = current_table(cfg)
    assert table is not None and "new-model" in table.models  # no retraining, just outcome rows
    d = diff(cfg, 1, 2)
    assert d["models_added"] == ["new-model"] and d["largest_changes"]


def test_rollback_serves_an_earlier_version(cfg: Settings) -> None:
    make_outcomes(cfg, verdicts("a", "python", "win", 3))
    refresh_scores(cfg)
    make_outcomes(cfg, verdicts("b", "python", "win", 3))
    refresh_scores(cfg)
    assert current_table(cfg).version == 2  # type: ignore[union-attr]
    assert rollback(cfg, 1)["status"] == "promoted"
    assert current_table(cfg).version == 1  # type: ignore[union-attr]
    assert show(cfg, None)["version"] == 1
    assert {v["version"]: v["status"] for v in list_versions(cfg)} == {1: "promoted", 2: "retired"}


def test_an_outcome_with_verdict_and_quality_counts_once(cfg: Settings) -> None:
    make_outcomes(cfg, [{"model": "a", "tags": ["python"], "verdict": "win", "quality": 0.2}])
    refresh_scores(cfg)
    counts = current_table(cfg).with_counts()  # type: ignore[union-attr]
    cell = counts.arr[counts.tags.index("python"), counts.models.index("a")]
    assert list(cell) == [1.0, 0.0, 0.0, 0.0, 0.0]
