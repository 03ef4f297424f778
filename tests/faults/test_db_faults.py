"""Fault 5: the database briefly unavailable. Every PostgreSQL backend of the workers is
killed (``pg_terminate_backend``) again and again while a job runs."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest

from switchyard.config import Settings
from switchyard.errors import StoreUnavailable
from switchyard.pipeline.control import get_job
from switchyard.store.models import TERMINAL_JOB
from tests.faults.conftest import check_invariant, fault_env, prompt_lines, submit
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.system import postgres_database, running_system, wait_for


@pytest.fixture
def pg_url() -> Iterator[str]:
    base = os.environ.get("SWITCHYARD_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("set SWITCHYARD_TEST_POSTGRES_URL (.ci/run does)")
    with postgres_database(base) as url:
        yield url


def _status(settings: Settings, job_id: str) -> str | None:
    """The job's status; None when the killer just cut this test's own connection too."""
    try:
        return get_job(settings, job_id).status
    except StoreUnavailable:
        return None


class BackendKiller:
    """Terminates every other session of one database every ``every_s`` seconds."""

    def __init__(self, db_url: str, every_s: float) -> None:
        import psycopg

        self.db = db_url.rsplit("/", 1)[1]
        self.conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
                                    + "/postgres", autocommit=True)
        self.every_s = every_s
        self.killed = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.kill_once()

    def kill_once(self) -> int:
        rows = self.conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = %s AND pid <> pg_backend_pid()", (self.db,)).fetchall()
        self.killed += sum(1 for (ok,) in rows if ok)
        self.rounds += 1
        return len(rows)

    def start(self) -> BackendKiller:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()


def test_killed_database_connections_are_retried_and_nothing_is_half_written(
        upstream: OpenAIServer, pg_url: str) -> None:
    env = fault_env(upstream, max_concurrency=6, SWITCHYARD_DATABASE_URL=pg_url, SWITCHYARD_BATCH_SIZE="8")
    lines = prompt_lines(60, "pgkill")
    for x in lines:
        upstream.script(x["prompt"], [Reply(200, delay_s=0.4)])
    with running_system(env) as system:
        log = system.data_dir / "workers.log"
        job_id = submit(system, lines)
        wait_for(lambda: len(upstream.calls) >= 3, 60, "the job under way")
        killer = BackendKiller(pg_url, every_s=0.1).start()
        try:
            # Kill every session of the database, ten times a second, until a worker has met a
            # dead connection mid-transaction (idle pooled ones are replaced silently by
            # pool_pre_ping) or the job is over: claims, stores and counters all get hit.
            wait_for(lambda: "database unavailable" in log.read_text(errors="replace")
                     or _status(system.settings, job_id) in TERMINAL_JOB, 90, "a kill mid-transaction")
            time.sleep(1.0)  # and some more
        finally:
            killer.stop()
        wait_for(lambda: get_job(system.settings, job_id).status in TERMINAL_JOB, 120, "the job after the kills")
        # A store cut off after the provider answered may call the provider once more, never after a
        # stored result (the in-process retry makes even that rare).
        outs, errs = check_invariant(system, job_id, lines, upstream, max_calls_per_prompt=2)
        job = get_job(system.settings, job_id)
        text = log.read_text(errors="replace")
    assert killer.killed > 0
    assert "database unavailable" in text and "retrying" in text  # the kills hit workers mid-transaction
    assert job.status == "completed" and errs == [], errs[:3]
    assert len(outs) == len(lines)
