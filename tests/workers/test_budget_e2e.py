"""Budgeted jobs on real processes: shards route, the planner releases waves as actual costs
arrive (replayed from routellm_gsm8k), dispatch guards the budget, and the lines the budget
cannot cover end in the error file with a reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from switchyard.datasets import load_dataset
from switchyard.pipeline.control import get_job
from switchyard.pipeline.refresh import refresh_scores
from tests.support.factories import make_outcomes
from tests.support.system import System, running_system, short_tmpdir, write_catalog

STRONG, WEAK = "gpt-4-1106-preview", "Mixtral-8x7B-Instruct-v0.1"


@pytest.fixture(scope="module")
def gsm8k(shared_data: Path) -> Path:
    return shared_data / "routing" / "routellm_gsm8k"


@pytest.fixture(scope="module")
def system(gsm8k: Path) -> Iterator[System]:
    data_dir = short_tmpdir()
    catalog = write_catalog(data_dir / "catalog.yaml", providers={
        "replay": {"kind": "replay", "max_concurrency": 8, "options": {"dataset": str(gsm8k)}}}, models=[
        {"id": STRONG, "provider": "replay", "usd_per_mtok_input": 10, "usd_per_mtok_output": 30,
         "expected_output_tokens": 150},
        {"id": WEAK, "provider": "replay", "usd_per_mtok_input": 0.6, "usd_per_mtok_output": 0.6,
         "expected_output_tokens": 150}])
    env = {"SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
           "SWITCHYARD_TAGGER": "null", "SWITCHYARD_POLICY": "tagrouter", "SWITCHYARD_REFRESH_SETTLE_S": "0",
           "SWITCHYARD_BUDGET_WAVE_MIN": "6", "SWITCHYARD_BATCH_SIZE": "16"}
    with running_system(env) as sys_:
        # A table where the strong model is better (global rates: no tags with the null tagger).
        make_outcomes(sys_.settings, [{"model": STRONG, "tags": [], "quality": 0.85}] * 20
                      + [{"model": WEAK, "tags": [], "quality": 0.6}] * 20)
        assert refresh_scores(sys_.settings).status == "refreshed"
        yield sys_


def job_lines(gsm8k: Path, n: int) -> list[dict[str, object]]:
    ds = load_dataset(gsm8k)
    test = [p for p in ds.prompts if p.split == "test"][:n]
    return [{"custom_id": p.prompt_id, "method": "POST", "url": "/v1/chat/completions",
             "body": {"model": "switchyard/auto", "messages": [{"role": "user", "content": p.prompt}],
                      "max_tokens": 2048}} for p in test]


def test_budget_buys_strong_answers_where_they_are_cheapest_and_is_never_overrun(
        system: System, gsm8k: Path) -> None:
    lines = job_lines(gsm8k, 30)
    _, all_weak, _ = system.run_job(lines, policy=f"fixed:{WEAK}")
    _, all_strong, _ = system.run_job(lines, policy=f"fixed:{STRONG}")
    c_weak = sum(o["switchyard"]["cost_usd"] for o in all_weak)
    c_strong = sum(o["switchyard"]["cost_usd"] for o in all_strong)
    budget = c_weak + 0.4 * (c_strong - c_weak)
    job_id, outs, errs = system.run_job(lines, budget_usd=budget, knob=0.0)
    job = get_job(system.settings, job_id)
    assert errs == [] and len(outs) == 30 and job.status == "completed"
    most = max(o["switchyard"]["cost_usd"] for o in all_strong)
    assert job.cost_usd <= budget + most  # never over by more than one request's cost
    assert job.cost_usd >= 0.6 * budget  # and the budget is actually spent on upgrades
    models = [o["switchyard"]["model"] for o in outs]
    assert 0 < models.count(STRONG) < 30  # at θ = 0 the policy alone would send all 30 to the strong model
    waves = {o["switchyard"]["details"]["budget"]["wave"] for o in outs}
    assert len(waves) >= 3  # re-planned as actual costs arrived
    # The decision records the planned model next to the policy's own pick.
    assert all(o["switchyard"]["details"]["budget"]["policy_model"] == STRONG for o in outs)


def test_a_budget_below_the_cheapest_plan_fails_the_remainder_with_a_reason(system: System, gsm8k: Path) -> None:
    lines = job_lines(gsm8k, 20)
    _, all_weak, _ = system.run_job(lines, policy=f"fixed:{WEAK}")
    costs = [o["switchyard"]["cost_usd"] for o in all_weak]
    budget = 0.5 * sum(costs)
    job_id, outs, errs = system.run_job(lines, budget_usd=budget)
    job = get_job(system.settings, job_id)
    assert len(outs) + len(errs) == 20 and 0 < len(errs) < 20  # every line ends exactly once
    assert {o["switchyard"]["model"] for o in outs} == {WEAK}
    for e in errs:
        assert e["error"]["code"] == "budget_exhausted"
        assert "budget_usd" in e["error"]["message"] and "raise budget_usd" in e["error"]["message"]
    assert job.cost_usd <= budget + max(costs)
