"""``switchyard eval`` end to end on a real routing dataset (a small seeded subset), with the
offline MiniLM tagger, plus the no-peek check on a poisoned copy and the online replay."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from switchyard.cli import _load_commands, app

_load_commands()  # as ``main()`` does: every command, so ``eval`` is a subcommand
runner = CliRunner()
LIMIT = "40"


def run_eval(dataset: Path, out_dir: Path, cache: Path, *extra: str) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    result = runner.invoke(app, [
        "eval", str(dataset), "--policy", "tagrouter", "--policy", "knn", "--out", str(out_dir / "report.json"),
        "--decisions", str(out_dir / "decisions.jsonl"), "--limit", LIMIT, "--cache-dir", str(cache), *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out_dir / "report.json").read_text())


@pytest.fixture(scope="module")
def alpaca(shared_data: Path) -> Path:
    return shared_data / "routing" / "alpaca_eval_ae2"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_eval_writes_the_report_plot_and_decisions(alpaca: Path, cache: Path, tmp_path: Path) -> None:
    report = run_eval(alpaca, tmp_path, cache, "--plot", str(tmp_path / "curve.png"))
    assert report["dataset"] == "alpaca_eval_ae2" and report["split"] == "test"
    assert report["run"]["test_prompts"] == int(LIMIT) and report["run"]["train_prompts"] == int(LIMIT)
    assert len(report["models"]) == 11
    assert set(report["policies"]) == {"tagrouter", "knn", "random"}
    for pol in report["policies"].values():
        assert {"apgr", "cpt80", "cpt95", "quality_at_strong_cost", "points"} <= set(pol)
        assert len(pol["points"]) >= 21
        for p in pol["points"]:
            assert set(p) == {"knob", "cost_usd", "quality", "accept_rate", "share"}
            assert sum(p["share"].values()) == pytest.approx(1.0)
    o, strong = report["oracle"], report["models"][report["reference"]["strong"]]
    assert o["quality"] >= strong["quality"]
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    lines = [json.loads(x) for x in (tmp_path / "decisions.jsonl").read_text().splitlines()]
    assert len(lines) == sum(len(p["points"]) for p in report["policies"].values())
    assert all(len(line["choices"]) == int(LIMIT) for line in lines)


def test_eval_on_a_poisoned_copy_makes_the_same_decisions(alpaca: Path, cache: Path, tmp_path: Path) -> None:
    """Invert every test-split quality in a copy: decisions must not move (only train is learned)."""
    poisoned = tmp_path / "poisoned"
    shutil.copytree(alpaca, poisoned)  # a temporary copy, never inside the repository
    test_ids = {json.loads(x)["prompt_id"] for x in (alpaca / "prompts.jsonl").read_text().splitlines()
                if json.loads(x)["split"] == "test"}
    rows = list(csv.DictReader((alpaca / "outcomes.csv").open(encoding="utf-8")))
    with (poisoned / "outcomes.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            if r["prompt_id"] in test_ids and r["quality"]:
                r = {**r, "quality": f"{1 - float(r['quality']):.6f}"}
            w.writerow(r)
    clean = run_eval(alpaca, tmp_path / "clean", cache)
    bad = run_eval(poisoned, tmp_path / "bad", cache)
    assert clean["models"] != bad["models"]  # the test outcomes did change
    clean_dec = (tmp_path / "clean" / "decisions.jsonl").read_text()
    assert clean_dec == (tmp_path / "bad" / "decisions.jsonl").read_text()
    for name in clean["policies"]:  # same choices, same costs
        assert [p["cost_usd"] for p in clean["policies"][name]["points"]] == \
            [p["cost_usd"] for p in bad["policies"][name]["points"]]


def test_eval_online_adds_a_learning_curve(alpaca: Path, cache: Path, tmp_path: Path) -> None:
    report = run_eval(alpaca, tmp_path, cache, "--online", "--refresh-every", "10", "--start", "empty",
                      "--exploration", "0.3", "--no-random")
    onl = report["online"]
    assert onl["start"] == "empty" and onl["refresh_every"] == 10 and onl["requests"] == int(LIMIT)
    assert len(onl["windows"]) == 4
    assert onl["windows"][0]["models_seen"] <= onl["windows"][-1]["models_seen"]
    assert set(report["policies"]) == {"tagrouter", "knn"}


def test_eval_rejects_a_malformed_dataset(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "dataset.json").write_text("{}")
    result = runner.invoke(app, ["eval", str(bad), "--out", str(tmp_path / "r.json")])
    assert result.exit_code == 2
    assert "prompts.jsonl" in result.output  # names the missing file
    assert not (tmp_path / "r.json").exists()
    result = runner.invoke(app, ["eval", str(bad), "--start", "sideways"])
    assert result.exit_code == 2 and "--start" in result.output


def test_eval_pareto_draws_tryages_front(alpaca: Path, cache: Path, tmp_path: Path) -> None:
    report = run_eval(alpaca, tmp_path, cache, "--pareto", "cost")
    front = report["pareto"]
    assert front["flag"] == "cost" and front["points"] and front["front"]
    assert Path(front["plot"]).read_bytes()[:4] == b"\x89PNG"
    labels = {p["label"] for p in front["points"] + front["models"]}
    assert set(front["front"]) <= labels  # the front is drawn through measured points
