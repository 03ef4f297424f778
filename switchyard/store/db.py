"""Engine and sessions: SQLite by default (a file in the data dir), PostgreSQL by URL."""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from switchyard.config import Settings
from switchyard.errors import StoreUnavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    path = Path(settings.data_dir).resolve() / "switchyard.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the one writer; busy_timeout makes concurrent
    # worker processes wait for the write lock instead of failing at once.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def get_engine(settings: Settings) -> Engine:
    url = database_url(settings)
    with _lock:
        eng = _engines.get(url)
        if eng is None:
            if url.startswith("sqlite"):
                eng = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
                event.listen(eng, "connect", _sqlite_pragmas)
            else:
                # pre_ping replaces a pooled connection the server killed (restart, failover,
                # pg_terminate_backend) before it is used; connect_timeout bounds a hung connect.
                eng = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, pool_recycle=1800,
                                    connect_args={"connect_timeout": 10})
            _engines[url] = eng
    return eng


def init_db(settings: Settings) -> Engine:
    """Create missing tables (PostgreSQL deployments use ``switchyard db upgrade``)."""
    from switchyard.store import models  # noqa: F401 - registers the tables

    eng = get_engine(settings)
    SQLModel.metadata.create_all(eng)
    return eng


def is_unavailable(e: BaseException) -> bool:
    """A lost or refused connection, a timeout, a lock: the database, not the statement, failed.

    IntegrityError, ProgrammingError and DataError are bugs or bad data and stay permanent.
    (SQLite also reports a missing table as OperationalError: a worker on an unmigrated
    file retries with a logged warning until ``switchyard db upgrade`` runs.)
    """
    if isinstance(e, exc.DBAPIError) and e.connection_invalidated:
        return True
    return isinstance(e, exc.OperationalError | exc.InterfaceError | exc.TimeoutError)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error.

    A database that went away mid-transaction raises :class:`StoreUnavailable` (transient):
    nothing of the transaction was committed, unless the commit itself was cut off, so
    every write in the pipeline is a conditional UPDATE that a retry can repeat safely.
    """
    with Session(get_engine(settings), expire_on_commit=False) as s:
        try:
            yield s
            s.commit()
        except exc.SQLAlchemyError as e:
            _rollback_quietly(s)
            if is_unavailable(e):
                orig = e.orig if isinstance(e, exc.DBAPIError) else e
                first = (str(orig).splitlines() or [""])[0][:200]
                raise StoreUnavailable(f"database unavailable ({type(orig).__name__}): {first}") from e
            raise
        except BaseException:
            _rollback_quietly(s)
            raise


def _rollback_quietly(s: Session) -> None:
    with contextlib.suppress(exc.SQLAlchemyError):  # the connection is gone: the pool drops it
        s.rollback()


def retrying(fn: Callable[[], T], *, attempts: int = 4, base_s: float = 0.2) -> T:
    """Run ``fn`` (one or more whole transactions), again on :class:`StoreUnavailable`.

    For writes that must not be lost to a blip, such as a provider result already paid for:
    a killed connection is replaced by the pool on the next try. Longer outages still raise,
    and the worker retries the task with backoff.
    """
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except StoreUnavailable as e:
            if attempt == attempts:
                raise
            log.warning("%s; retrying (%d/%d)", e, attempt, attempts - 1)
            time.sleep(random.uniform(base_s, base_s * 2 ** attempt))
    raise AssertionError("unreachable")


def dispose_engines() -> None:
    with _lock:
        for eng in _engines.values():
            eng.dispose()
        _engines.clear()
