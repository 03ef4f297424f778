"""Onboarding a held-out model by probe job, on real processes: alpaca_eval_ae2's pool is
imported without Mixtral (concise), the probe job sends train prompts to it through the
normal queues (answers replayed from the dataset), a judge on the local OpenAI-protocol
server scores them, and the refreshed table routes test prompts to it where it is good."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from switchyard.datasets import load_dataset
from switchyard.evaluation import apgr_metrics, prepare, reference, single_models, sweep
from switchyard.onboarding import submit_probe_job, tag_report, wait_for_verdicts
from switchyard.pipeline.control import get_job
from switchyard.pipeline.outcome import import_dataset
from switchyard.pipeline.refresh import refresh_scores
from switchyard.routing.tagrouter import TagRouterPolicy
from switchyard.store.scores import current_table
from switchyard.tagging.keywords import KeywordTagger
from tests.support.openai_server import OpenAIServer
from tests.support.system import System, running_system, short_tmpdir, wait_for, write_catalog

HELD_OUT = "Mixtral-8x7B-Instruct-v0.1_concise"
N_PROBES = 409  # the whole train split (its first half alone happens to show Mixtral at its worst)


def score_judge(messages: list[dict[str, Any]], model: str) -> str | None:
    """Reads the replayed answer's recorded quality and scores it 1-10, as a careful judge would."""
    m = re.search(r"judged quality (\d\.\d+)", messages[-1]["content"])
    return f"Score: {1 + 9 * float(m.group(1)):.2f}" if m else "Score: 1"


@pytest.fixture(scope="module")
def alpaca(shared_data: Path) -> Path:
    return shared_data / "routing" / "alpaca_eval_ae2"


@pytest.fixture(scope="module")
def system(alpaca: Path) -> Iterator[System]:
    server = OpenAIServer(responder=score_judge).start()
    ds = load_dataset(alpaca)
    expected = ds.expected_output_tokens(ds.split_indices("train"))
    data_dir = short_tmpdir()
    catalog = write_catalog(data_dir / "catalog.yaml", providers={
        "replay": {"kind": "replay", "max_concurrency": 32, "options": {"dataset": str(alpaca)}},
        "judges": {"kind": "openai", "base_url": server.url, "max_concurrency": 16}},
        models=[{"id": m.model, "provider": "replay", "usd_per_mtok_input": m.usd_per_mtok_input,
                 "usd_per_mtok_output": m.usd_per_mtok_output, "expected_output_tokens": expected[m.model]}
                for m in ds.models] + [{"id": "judge", "provider": "judges"}])
    env = {"SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
           "SWITCHYARD_TAGGER": "keywords", "SWITCHYARD_REFRESH_SETTLE_S": "0",
           "SWITCHYARD_DISPATCH_CONCURRENCY": "16"}
    try:
        with running_system(env) as sys_:
            yield sys_
    finally:
        server.stop()


def curve(table: Any, data: Any) -> tuple[dict[str, Any], list[Any]]:
    pts = sweep(TagRouterPolicy(table), data)
    return apgr_metrics(pts, reference(single_models(data))), pts


def test_onboarded_model_enters_every_tag_and_improves_the_eval_curve(system: System, alpaca: Path) -> None:
    s = system.settings
    imported = import_dataset(s, alpaca, exclude_models=[HELD_OUT], tagger="keywords")
    assert imported.outcomes > 3000 and refresh_scores(s).promoted
    before = current_table(s)
    assert before is not None and HELD_OUT not in before.models
    data = prepare(alpaca, tagger="keywords", tag_fn=KeywordTagger().tag_batch, embeddings=False, cache_dir=None,
                   canonical=False)
    m_before, pts_before = curve(before, data)
    assert all(p.share.get(HELD_OUT, 0) == 0 for p in pts_before)  # out of the pool: never chosen

    ds = load_dataset(alpaca)
    train = ds.split_indices("train")[:N_PROBES]
    from switchyard.catalog import Catalog
    from workers.submit import enqueue_job

    plan = submit_probe_job(s, HELD_OUT, [ds.prompts[i].prompt for i in train],
                            catalog=Catalog.load(s.catalog_path), judge_model="judge", mode="absolute")
    enqueue_job(plan.job_id)  # the normal queues: tag_and_route -> dispatch -> judge
    wait_for(lambda: get_job(s, plan.job_id).finished_at is not None, 120, "the probe job")
    assert wait_for_verdicts(s, plan.job_id, timeout_s=120) == N_PROBES
    result = refresh_scores(s, note="onboard")
    assert result.status == "refreshed" and result.promoted, result.metrics
    after = current_table(s)
    assert after is not None
    j = after.models.index(HELD_OUT)
    assert np.isfinite(after.rate[:, j]).all() and after.global_n[j] == N_PROBES  # a row in every tag
    rep = tag_report(after, HELD_OUT)
    assert rep.evidence and len(rep.wins) + len(rep.ties) + len(rep.losses) == len(rep.evidence)

    m_after, pts_after = curve(after, data)
    assert max(p.share.get(HELD_OUT, 0) for p in pts_after) > 0.3  # the curve's cheap-to-mid points use it
    # Routing now sends it test prompts, and those it gets are ones it is good at.
    theta = TagRouterPolicy.knob_default
    from switchyard.evaluation import make_context

    choices = [d.model for d in TagRouterPolicy(after).decide_batch(data.requests, data.catalog,
                                                                      make_context(data, knob=theta))]
    mine = np.array([c == HELD_OUT for c in choices])
    q = data.test_quality[:, data.models.index(HELD_OUT)]
    assert 0.05 < mine.mean() < 0.95
    assert q[mine].mean() > q[~mine].mean()
    # The eval curve improves by a measured amount (docs/judging.md has the figures).
    assert m_after["apgr"] > m_before["apgr"] + 0.02, (m_before, m_after)
    print(f"\nAPGR {m_before['apgr']:.4f} -> {m_after['apgr']:.4f}; {HELD_OUT} gets {mine.mean():.1%} of test "
          f"prompts at θ={theta} (quality {q[mine].mean():.4f} there vs {q[~mine].mean():.4f} elsewhere); "
          f"tags won {len(rep.wins)}, tied {len(rep.ties)}, lost {len(rep.losses)}")
