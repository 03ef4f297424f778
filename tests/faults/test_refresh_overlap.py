"""Overlapping refresh_scores runs, forced concurrently in separate processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from switchyard.config import Settings
from switchyard.pipeline.refresh import refresh_scores
from switchyard.store.db import dispose_engines, init_db, session_scope
from switchyard.store.scores import list_versions, load_counts
from tests.support.factories import make_outcomes


def outcomes() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i in range(300):
        rows.append({"model": "ab"[i % 2], "tags": [f"t{i % 7}", "shared"], "verdict": ["win", "tie", "loss"][i % 3]})
        rows.append({"model": "c", "tags": [f"t{i % 5}"], "quality": (i % 10) / 10})
    return rows


def cells(s: Settings, version: int) -> list[dict[str, object]]:
    with session_scope(s) as sess:
        return sorted(load_counts(sess, version).to_cells(), key=lambda c: (str(c["tag"]), str(c["model"])))


def test_concurrent_refreshes_fold_once_and_match_a_single_run(tmp_path: Path) -> None:
    shared = Settings(data_dir=tmp_path / "shared", refresh_settle_s=0.0)
    single = Settings(data_dir=tmp_path / "single", refresh_settle_s=0.0)
    for s in (shared, single):
        init_db(s)
        make_outcomes(s, outcomes())
    dispose_engines()
    env = {**os.environ, "SWITCHYARD_DATA_DIR": str(shared.data_dir), "SWITCHYARD_REFRESH_SETTLE_S": "0"}
    procs = [subprocess.Popen([sys.executable, "-m", "switchyard.cli", "scores", "refresh"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [json.loads(p.communicate(timeout=120)[0]) for p in procs]
    statuses = sorted(r["status"] for r in results)
    assert statuses.count("refreshed") == 1, statuses
    assert set(statuses) <= {"refreshed", "locked", "nothing_new"}
    assert refresh_scores(shared).status == "nothing_new"  # re-running the window is a no-op
    assert refresh_scores(single).version == 1
    assert [v["version"] for v in list_versions(shared)] == [1]
    assert cells(shared, 1) == cells(single, 1)  # identical to a single run
    dispose_engines()
