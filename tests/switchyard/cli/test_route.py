"""``switchyard route`` (decisions without dispatch, one or a batch), ``train`` and ``glider-keys``.

In-process through Typer's CliRunner (the real app and option parsing), plus one run of
the real entry point in a subprocess (slow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import switchyard.cli.route  # noqa: F401 - registers route, train, glider-keys
from switchyard.cli import app
from switchyard.config import reset_settings
from tests.switchyard.routing.test_quality import write_dataset

ROUTES = {"default_model": "tiny", "routes": [
    {"name": "translation", "description": "translating text from one human language into another",
     "models": ["chef", "tiny"], "selection_policy": "none"},
    {"name": "code_generation", "description": "writing new code, functions and scripts", "models": ["coder"]}]}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Path]:
    """A data dir, a four-model catalog and no tagger; the environment is restored afterwards."""
    saved = dict(os.environ)
    cat = tmp_path / "catalog.yaml"
    cat.write_text(yaml.safe_dump({"providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
                                   "models": [
        {"id": "tiny", "provider": "p", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.1},
        {"id": "coder", "provider": "p", "usd_per_mtok_input": 1, "usd_per_mtok_output": 2},
        {"id": "chef", "provider": "p", "usd_per_mtok_input": 1, "usd_per_mtok_output": 2},
        {"id": "big", "provider": "p", "usd_per_mtok_input": 10, "usd_per_mtok_output": 30}]}))
    (tmp_path / "routes.yaml").write_text(yaml.safe_dump(ROUTES))
    os.environ.update({"SWITCHYARD_DATA_DIR": str(tmp_path / "data"), "SWITCHYARD_CATALOG_PATH": str(cat),
                       "SWITCHYARD_TAGGER": "null"})
    reset_settings()
    yield tmp_path
    os.environ.clear()
    os.environ.update(saved)
    reset_settings()


def run(*args: str) -> tuple[int, str]:
    """(exit code, stdout); on failure the output holds stderr too (the error message)."""
    res = CliRunner().invoke(app, list(args))
    return res.exit_code, res.stdout if res.exit_code == 0 else res.output


def test_route_one_prompt(env: Path) -> None:
    code, out = run("route", "What is 2+2?", "--policy", "cheapest")
    assert code == 0, out
    d = json.loads(out)
    assert d["model"] == "tiny" and d["policy"] == "cheapest" and d["ranked"][0][0] == "tiny"
    assert {"reason", "tags", "knob", "fallback", "predicted_cost_usd"} <= set(d)


def test_route_a_conversation_with_arch(env: Path) -> None:
    convo = env / "convo.json"
    convo.write_text(json.dumps([{"role": "system", "content": "be brief"},
                                 {"role": "user", "content": "Write a python function that sorts a list."},
                                 {"role": "assistant", "content": "def f(x): return sorted(x)"},
                                 {"role": "user", "content": "Now translate 'good night, sleep well' into French."}]))
    code, out = run("route", "--file", str(convo), "--policy", "arch", "--routes", str(env / "routes.yaml"))
    assert code == 0, out
    d = json.loads(out)
    assert d["route"] == "translation" and d["model"] == "chef" and d["policy"] == "arch"
    assert d["details"]["conversation_messages"] == 3  # the system message was dropped


def test_route_batch_in_job_format(env: Path) -> None:
    lines = [
        {"custom_id": "a", "prompt": "hello there"},
        {"custom_id": "b", "method": "POST", "url": "/v1/chat/completions",
         "body": {"model": "switchyard/auto", "messages": [{"role": "user", "content": "Translate 'cat' to Spanish"}]},
         "routing": {"policy": "arch"}},
        {"custom_id": "c", "body": {"model": "big", "messages": [{"role": "user", "content": "hi"}]}},
        {"custom_id": "d", "prompt": "x", "routing": {"policy": "no-such-policy"}},
        {"custom_id": "e", "prompt": "expensive please", "routing": {"allow": ["big"]}},
    ]
    path = env / "jobs.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{not json\n")
    code, out = run("route", "--batch", str(path), "--policy", "cheapest", "--routes", str(env / "routes.yaml"))
    assert code == 0, out
    got = [json.loads(x) for x in out.strip().splitlines()]
    assert [g.get("custom_id") for g in got] == ["a", "b", "c", "d", "e", None]
    assert got[0]["model"] == "tiny" and got[0]["policy"] == "cheapest"
    assert got[1]["policy"] == "arch" and got[1]["route"] == "translation" and got[1]["model"] == "chef"
    assert got[2] == {"custom_id": "c", "model": "big", "policy": "explicit",
                      "reason": "the request named a concrete model: no routing"}
    assert got[3]["error"]["field"] == "routing.policy"
    assert got[4]["model"] == "big"
    assert got[5]["line"] == 6 and got[5]["error"]["code"] == "invalid_json"


def test_route_errors_are_clear(env: Path) -> None:
    code, out = run("route")
    assert code == 2 and "give the prompt" in out
    code, out = run("route", "hi", "--policy", "nope")
    assert code == 2 and "unknown routing policy 'nope'" in out
    code, out = run("route", "--file", str(env / "missing.json"))
    assert code == 2 and "cannot read" in out


def test_train_then_route_with_the_artifact(env: Path) -> None:
    ds = write_dataset(env / "ds", n=160)
    code, out = run("train", "tryage", str(ds))
    assert code == 0, out
    rep = json.loads(out)
    assert rep["artifact"] == str(env / "data" / "artifacts" / "tryage.pt") and Path(rep["artifact"]).is_file()
    code, out = run("route", "recipe flour bake oven sauce", "--policy", "tryage", "--knob", "0")
    assert code == 0, out
    d = json.loads(out)
    assert not d["fallback"] and d["policy"] == "tryage" and set(d["details"]["predicted_quality"]) == {
        "tiny", "coder", "chef", "big"}
    code, out = run("route", "recipe flour", "--policy", "tryage", "--knob", "100", "--flag", "size=1")
    assert code == 0 and json.loads(out)["details"]["flags"] == {"size": 1.0}
    code, out = run("train", "knn", str(ds))
    assert code == 2 and "trainable policies" in out


def test_train_glider_shows_its_keys(env: Path) -> None:
    ds = write_dataset(env / "ds", n=160)
    code, out = run("train", "glider", str(ds))
    assert code == 0, out
    keys = json.loads(out)["keys"]
    assert keys and all(v.startswith("best on: ") for v in keys.values())
    code, out = run("glider-keys", "--keys", "train")
    assert code == 0, out
    table = json.loads(out)
    assert {m: v["key"] for m, v in table.items()} == keys and {v["source"] for v in table.values()} == {"train"}


@pytest.mark.slow
def test_entry_point_in_a_subprocess(env: Path) -> None:
    path = env / "jobs.jsonl"
    path.write_text(json.dumps({"custom_id": "only", "prompt": "hi"}) + "\n")
    res = subprocess.run([sys.executable, "-m", "switchyard.cli", "route", "--batch", str(path), "--policy",
                          "cheapest"], env=dict(os.environ), capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["custom_id"] == "only"
