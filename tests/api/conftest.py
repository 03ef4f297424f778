"""The API served by uvicorn on loopback, in front of real workers on embedded Redis."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import uvicorn

from tests.support.openai_server import OpenAIServer
from tests.support.system import System, running_system, short_tmpdir, write_catalog


@dataclass
class Api:
    url: str
    system: System
    keys: dict[str, str]
    upstream: OpenAIServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_app(log_level: str = "warning") -> Iterator[str]:
    """The real app under uvicorn on a free loopback port, in a thread; yields its base URL."""
    from api.main import create_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="package")
def api() -> Iterator[Api]:
    upstream = OpenAIServer().start()
    data_dir = short_tmpdir()
    catalog = write_catalog(data_dir / "catalog.yaml", providers={
        "echo": {"kind": "openai", "base_url": upstream.url, "max_concurrency": 8}}, models=[
        {"id": "cheap", "provider": "echo", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.2},
        {"id": "strong", "provider": "echo", "usd_per_mtok_input": 5, "usd_per_mtok_output": 15}])
    env = {"SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
           "SWITCHYARD_TAGGER": "null", "SWITCHYARD_POLICY": "cheapest",
           "SWITCHYARD_INTERACTIVE_MAX_WAIT_MS": "250"}  # wide enough to coalesce concurrent chats
    with running_system(env) as sys_:
        from switchyard.auth import create_key

        keys = {name: create_key(sys_.settings, name).secret for name in ("alice", "bob")}
        with serve_app() as url:
            yield Api(url, sys_, keys, upstream)
    upstream.stop()
