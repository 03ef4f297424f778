"""The API served by uvicorn on loopback, in front of real workers on embedded Redis."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
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
        from api.main import create_app
        from switchyard.auth import create_key

        keys = {name: create_key(sys_.settings, name).secret for name in ("alice", "bob")}
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        yield Api(f"http://127.0.0.1:{port}", sys_, keys, upstream)
        server.should_exit = True
        thread.join(timeout=10)
    upstream.stop()
