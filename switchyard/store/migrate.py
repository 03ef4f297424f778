"""Schema migrations (Alembic) with the URL from Settings: ``switchyard db upgrade``.

SQLite files and tests use ``init_db`` (create_all); PostgreSQL deployments run the
migrations, so a schema change ships as a reviewed revision under ``migrations/versions``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from switchyard.config import Settings
from switchyard.store.db import database_url, get_engine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url(settings).replace("%", "%%"))
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    cfg = alembic_config(settings)
    with get_engine(settings).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def revision(settings: Settings, message: str) -> None:
    """Autogenerate a revision from the models (developers: after changing store/models.py)."""
    cfg = alembic_config(settings)
    with get_engine(settings).begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=message, autogenerate=True)
