"""The Alembic migrations build exactly the schema the models declare, on PostgreSQL too."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from switchyard.store import models  # noqa: F401 - registers the tables
from tests.support.system import postgres_database


def upgrade_cli(url: str) -> None:
    env = {**os.environ, "SWITCHYARD_DATABASE_URL": url}
    r = subprocess.run([sys.executable, "-m", "switchyard.cli", "db", "upgrade"], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def schema_diff(url: str) -> list[object]:
    eng = create_engine(url)
    with eng.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    eng.dispose()
    return list(diff)


def test_sqlite_upgrade_matches_the_models(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    upgrade_cli(url)
    upgrade_cli(url)  # idempotent: a second deploy applies nothing
    assert schema_diff(url) == []


@pytest.mark.postgres
def test_postgres_upgrade_matches_the_models() -> None:
    base = os.environ.get("SWITCHYARD_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("set SWITCHYARD_TEST_POSTGRES_URL (.ci/run does)")
    with postgres_database(base) as url:
        upgrade_cli(url)
        assert schema_diff(url) == []
