"""Sessions: a lost database is a transient StoreUnavailable; a bad statement stays permanent."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import exc, text

from switchyard.config import Settings
from switchyard.errors import StoreUnavailable, TransientError
from switchyard.store.db import dispose_engines, init_db, retrying, session_scope
from switchyard.store.models import Job
from tests.support.system import postgres_database


def test_integrity_errors_are_not_mistaken_for_an_outage(settings: Settings) -> None:
    with session_scope(settings) as s:
        s.add(Job(id="j1", n_total=1))
    with pytest.raises(exc.IntegrityError), session_scope(settings) as s:
        s.add(Job(id="j1", n_total=1))


def test_retrying_repeats_only_store_outages() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise StoreUnavailable("database unavailable")
        return "ok"

    assert retrying(flaky, base_s=0.001) == "ok" and len(calls) == 3
    with pytest.raises(StoreUnavailable):
        retrying(lambda: (_ for _ in ()).throw(StoreUnavailable("down")), attempts=2, base_s=0.001)
    with pytest.raises(ValueError):  # anything else is not retried
        retrying(lambda: int("x"), base_s=0.001)


@pytest.fixture
def pg_settings(tmp_path: object) -> Iterator[Settings]:
    base = os.environ.get("SWITCHYARD_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("set SWITCHYARD_TEST_POSTGRES_URL (.ci/run does)")
    with postgres_database(base) as url:
        s = Settings(data_dir=f"{tmp_path}/d", database_url=url)
        init_db(s)
        yield s
        dispose_engines()


def test_a_killed_postgres_connection_is_transient_and_the_pool_recovers(pg_settings: Settings) -> None:
    with pytest.raises(StoreUnavailable) as info, session_scope(pg_settings) as s:
        s.add(Job(id="half", n_total=1))
        s.flush()
        s.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))  # the server kills this session
    assert isinstance(info.value, TransientError)
    with session_scope(pg_settings) as s:  # a fresh connection; the killed transaction left nothing
        assert s.get(Job, "half") is None
        s.add(Job(id="whole", n_total=1))
    with session_scope(pg_settings) as s:
        assert s.get(Job, "whole") is not None
