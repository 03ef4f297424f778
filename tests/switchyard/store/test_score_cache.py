"""The served score table is cached per version: no query per request, reload on a version change."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlmodel import col

from switchyard.config import Settings
from switchyard.pipeline.refresh import refresh_scores
from switchyard.store.db import get_engine, session_scope
from switchyard.store.models import ScoreVersion
from switchyard.store.scores import CANDIDATE, PROMOTED, clear_cache, current_table, rollback
from tests.support.factories import make_outcomes


@pytest.fixture
def cfg(settings: Settings) -> Iterator[Settings]:
    clear_cache()
    yield settings.model_copy(update={"refresh_settle_s": 0.0, "score_version_check_s": 60.0})
    clear_cache()


@contextmanager
def counting_queries(settings: Settings) -> Iterator[list[str]]:
    seen: list[str] = []

    def on_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    engine = get_engine(settings)
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def two_versions(cfg: Settings) -> None:
    """Version 1 promoted, version 2 written as a bare candidate (as another process might)."""
    make_outcomes(cfg, [{"model": "a", "tags": ["python"], "verdict": "win"} for _ in range(3)])
    assert refresh_scores(cfg).version == 1
    make_outcomes(cfg, [{"model": "b", "tags": ["python"], "verdict": "win"} for _ in range(3)])
    assert refresh_scores(cfg).version == 2
    with session_scope(cfg) as s:  # back to 1 served, 2 a candidate, behind this process's cache
        s.execute(update(ScoreVersion).where(col(ScoreVersion.version) == 2).values(status=CANDIDATE))
        s.execute(update(ScoreVersion).where(col(ScoreVersion.version) == 1).values(status=PROMOTED))
    clear_cache()


def promote_elsewhere(cfg: Settings, version: int) -> None:
    """What another process's promotion looks like from here: rows change, no call into this cache."""
    with session_scope(cfg) as s:
        s.execute(update(ScoreVersion).values(status="retired"))
        s.execute(update(ScoreVersion).where(col(ScoreVersion.version) == version).values(status=PROMOTED))


def test_a_fresh_cached_version_costs_no_query(cfg: Settings) -> None:
    two_versions(cfg)
    first = current_table(cfg, now=1000.0)
    assert first is not None and first.version == 1
    with counting_queries(cfg) as queries:
        again = [current_table(cfg, now=1000.0 + dt) for dt in (0.0, 1.0, 59.0)]
    assert queries == []
    assert all(t is first for t in again)  # the same object: not rebuilt per call


def test_a_promotion_elsewhere_is_picked_up_after_the_check_interval(cfg: Settings) -> None:
    two_versions(cfg)
    assert current_table(cfg, now=1000.0).version == 1  # type: ignore[union-attr]
    promote_elsewhere(cfg, 2)
    assert current_table(cfg, now=1030.0).version == 1  # type: ignore[union-attr]  # still cached
    with counting_queries(cfg) as queries:
        reloaded = current_table(cfg, now=1061.0)
    assert reloaded is not None and reloaded.version == 2
    assert queries  # it asked the database (and built version 2's table)
    with counting_queries(cfg) as queries:
        assert current_table(cfg, now=1062.0) is reloaded
    assert queries == []


def test_a_promotion_in_this_process_is_served_at_once(cfg: Settings) -> None:
    two_versions(cfg)
    assert current_table(cfg, now=1000.0).version == 1  # type: ignore[union-attr]
    rollback(cfg, 2)  # "rollback" to any version goes through promote()
    assert current_table(cfg, now=1000.5).version == 2  # type: ignore[union-attr]


def test_no_table_yet_is_cached_too(cfg: Settings) -> None:
    assert current_table(cfg, now=1000.0) is None
    with counting_queries(cfg) as queries:
        assert current_table(cfg, now=1010.0) is None
    assert queries == []
