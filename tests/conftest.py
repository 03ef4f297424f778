"""Shared fixtures. Tests use real parts: Redis, SQL, worker processes, HTTP, model code."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.config import Settings, reset_settings
from switchyard.store.db import dispose_engines, init_db
from tests.support.openai_server import OpenAIServer
from tests.support.system import SHARED_DATA, short_tmpdir

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "routing").is_dir():
        pytest.fail(f"routing datasets not found at {SHARED_DATA}; set SWITCHYARD_SHARED_DATA")
    return SHARED_DATA


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """Settings on a fresh SQLite file (no broker needed)."""
    s = Settings(data_dir=tmp_path / "data")
    init_db(s)
    yield s
    dispose_engines()
    reset_settings()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer().start()
    yield server
    server.stop()


@pytest.fixture
def short_dir() -> Path:
    return short_tmpdir()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs CUDA (CI has none)"))
