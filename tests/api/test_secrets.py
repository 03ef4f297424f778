"""Secrets (a provider's API key, a tenant's Switchyard key) never reach the worker logs,
the output and error files, or the task arguments that Flower shows: tasks carry ids only."""

from __future__ import annotations

import ast
import io
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.api.conftest import serve_app
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.system import running_system, short_tmpdir, write_catalog

PROVIDER_SECRET = "sk-prov-Zq8VtS3cr3tK3yDoNotLeak0123"


class EventLog:
    """Every Celery event on the broker (what Flower records), captured in a thread."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.ready = threading.Event()
        self.receiver: Any = None

    def _run(self) -> None:
        from workers.app import producer

        app = producer()
        with app.connection() as conn:
            self.receiver = app.events.Receiver(conn, handlers={"*": self.events.append})
            self.ready.set()
            self.receiver.capture(limit=None, timeout=None, wakeup=False)  # until should_stop

    def start(self) -> EventLog:
        self._thread.start()
        assert self.ready.wait(30)
        time.sleep(0.5)  # the receiver's queue is bound
        return self

    def stop(self) -> None:
        self.receiver.should_stop = True
        self._thread.join(timeout=10)


@pytest.fixture
def secret_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, dict[str, str], OpenAIServer, Any]]:
    upstream = OpenAIServer().start()
    data_dir = short_tmpdir("sysec")
    catalog = write_catalog(data_dir / "catalog.yaml", providers={
        "keyed": {"kind": "openai", "base_url": upstream.url, "api_key_env": "SY_TEST_PROVIDER_KEY",
                  "max_concurrency": 4}},
        models=[{"id": "cheap", "provider": "keyed", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.2}])
    env = {"SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
           "SWITCHYARD_TAGGER": "null", "SWITCHYARD_POLICY": "cheapest", "SWITCHYARD_RETRY_BASE_S": "0.1",
           "SWITCHYARD_RETRY_MAX_S": "0.5", "SWITCHYARD_MAX_ATTEMPTS": "2", "SWITCHYARD_WORKER_LOG_LEVEL": "DEBUG",
           "SWITCHYARD_INTERACTIVE_MAX_WAIT_MS": "50"}
    monkeypatch.setenv("SY_TEST_PROVIDER_KEY", PROVIDER_SECRET)  # the workers inherit it
    with running_system(env) as system:
        from switchyard.auth import create_key

        keys = {"alice": create_key(system.settings, "alice").secret}
        with serve_app(log_level="debug") as url:
            yield url, keys, upstream, system
    upstream.stop()


def test_no_secret_in_logs_files_or_task_arguments(secret_api: Any, capfd: pytest.CaptureFixture[str]) -> None:
    url, keys, upstream, system = secret_api
    api_secret = keys["alice"]
    hdr = {"Authorization": f"Bearer {api_secret}"}
    upstream.script("careless 401", [Reply(401, echo_auth=True)])
    upstream.script("careless 500", [Reply(500, echo_auth=True), Reply(503, echo_auth=True)])
    upstream.script("careless chat", [Reply(403, echo_auth=True)])
    lines = [{"custom_id": "ok", "prompt": "fine"}, {"custom_id": "r401", "prompt": "careless 401"},
             {"custom_id": "r500", "prompt": "careless 500"}, {"custom_id": "bad", "prompt": 7}]
    events = EventLog().start()
    try:
        f = requests.post(f"{url}/v1/files", headers=hdr, data={"purpose": "batch"}, timeout=30, files={
            "file": ("in.jsonl", io.BytesIO("".join(json.dumps(x) + "\n" for x in lines).encode()))}).json()
        b = requests.post(f"{url}/v1/batches", headers=hdr, timeout=30, json={
            "input_file_id": f["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}).json()
        deadline = time.monotonic() + 120
        while (batch := requests.get(f"{url}/v1/batches/{b['id']}", headers=hdr, timeout=30).json())["status"] \
                not in ("completed", "failed", "cancelled", "expired"):
            assert time.monotonic() < deadline, batch
            time.sleep(0.3)
        chat = requests.post(f"{url}/v1/chat/completions", headers=hdr, timeout=60, json={
            "model": "switchyard/auto", "messages": [{"role": "user", "content": "careless chat"}]})
        time.sleep(1.0)  # the last events reach the receiver
    finally:
        events.stop()
    out = requests.get(f"{url}/v1/files/{batch['output_file_id']}/content", headers=hdr, timeout=30).text
    err = requests.get(f"{url}/v1/files/{batch['error_file_id']}/content", headers=hdr, timeout=30).text

    # Not vacuous: the key was sent, the careless provider echoed it, and the requests failed.
    assert upstream.auth_headers == {f"Bearer {PROVIDER_SECRET}"}
    assert {json.loads(x)["custom_id"] for x in err.splitlines()} == {"r401", "r500", "bad"}
    assert err.count("you sent Authorization") >= 2 and "you sent Authorization" in chat.text
    sent = [e for e in events.events if e.get("type") == "task-sent"]
    assert len(sent) >= 6, [e.get("type") for e in events.events][:20]

    worker_log = (system.data_dir / "workers.log").read_text(errors="replace")
    assert "DEBUG" in worker_log or "INFO" in worker_log  # the workers logged at DEBUG
    captured = capfd.readouterr()
    places = {"worker log": worker_log, "output file": out, "error file": err, "chat reply": chat.text,
              "api and test output": captured.out + captured.err, "celery events": json.dumps(events.events,
                                                                                             default=str)}
    for secret in (PROVIDER_SECRET, api_secret, PROVIDER_SECRET[-12:], api_secret[-12:]):
        leaked = [where for where, text in places.items() if secret in text]
        assert leaked == [], f"secret ...{secret[-4:]} found in {leaked}"
    for e in sent:  # tasks carry ids only: id strings and integers (events hold the args' repr)
        args, kwargs = ast.literal_eval(e["args"]), ast.literal_eval(e["kwargs"])
        assert kwargs == {} and args, e
        for arg in args:
            assert isinstance(arg, int) or (isinstance(arg, str) and len(arg) <= 64
                                            and arg.replace("_", "").replace("-", "").isalnum()), e
