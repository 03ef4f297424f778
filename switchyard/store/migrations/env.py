"""Alembic environment: the SQLModel metadata, the URL from Settings (never alembic.ini)."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlmodel import SQLModel

from switchyard.store import models  # noqa: F401 - registers the tables

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        from sqlalchemy import create_engine

        connectable = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with connectable.connect() as conn:
            _run(conn)
    else:
        _run(connectable)


def _run(conn: Any) -> None:
    context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
