"""Provider storms across two dispatch workers, cancel mid-job, and a crashed CLI resumed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from switchyard.pipeline.control import cancel_job, get_job
from switchyard.store.models import TERMINAL_JOB
from tests.faults.conftest import check_invariant, fault_env, prompt_lines, submit
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.system import running_system, wait_for


def test_storm_backoff_and_a_limit_that_holds_across_two_dispatch_workers(upstream: OpenAIServer) -> None:
    env = fault_env(upstream, max_concurrency=3, SWITCHYARD_PROVIDER_TIMEOUT_S="1.5",
                    SWITCHYARD_RETRY_BASE_S="0.5", SWITCHYARD_MAX_ATTEMPTS="6")
    lines = prompt_lines(24, "storm")
    for x in lines[:20]:
        upstream.script(x["prompt"], [Reply(200, delay_s=0.3)])
    upstream.script("storm 20", [Reply(429, retry_after=1.0), Reply(500), Reply(503), Reply(200, delay_s=3.0),
                                 Reply(200, content="survived")])
    upstream.script("storm 21", [Reply(400)])
    with running_system(env) as system:
        system.embedded.start_process("dispatch2")
        job_id = submit(system, lines)
        wait_for(lambda: get_job(system.settings, job_id).status in TERMINAL_JOB, 180, "the storm job")
        outs, errs = check_invariant(system, job_id, lines, upstream, max_calls_per_prompt=2)
    assert upstream.peak_in_flight <= 3  # 2 workers x 16 threads, yet never more than the provider's limit
    by_id = {o["custom_id"]: o for o in outs}
    assert by_id["r20"]["response"]["body"]["choices"][0]["message"]["content"] == "survived"
    assert by_id["r20"]["switchyard"]["attempts"] == 5
    calls = upstream.calls_for("storm 20")
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 1.0  # Retry-After honoured
    assert all(g >= 0.1 for g in gaps[1:])  # backoff (equal jitter, base 0.5 s: at least 0.25 s) never hammers
    assert [(e["custom_id"], e["error"]["code"]) for e in errs] == [("r21", "provider_rejected")]
    assert len(upstream.calls_for("storm 21")) == 1  # a permanent 400 fails fast


def test_cancel_mid_job_starts_no_new_calls_and_keeps_partial_output(upstream: OpenAIServer) -> None:
    env = fault_env(upstream, max_concurrency=2)
    lines = prompt_lines(30, "cancel")
    for x in lines:
        upstream.script(x["prompt"], [Reply(200, delay_s=0.5)])
    with running_system(env) as system:
        job_id = submit(system, lines)
        wait_for(lambda: len(upstream.calls) >= 4, 60, "some calls")
        cancel_job(system.settings, job_id)
        assert get_job(system.settings, job_id).status in ("cancelling", "cancelled")
        at_cancel = time.time()  # the upstream records arrivals in epoch seconds
        wait_for(lambda: get_job(system.settings, job_id).status in TERMINAL_JOB, 60, "the cancelled job")
        outs, errs = check_invariant(system, job_id, lines, upstream)
    assert get_job(system.settings, job_id).status == "cancelled"
    assert 0 < len(outs) < 30 and all(e["error"]["code"] == "cancelled" for e in errs)
    late = [c for c in upstream.calls if c.at > at_cancel + 0.2]
    assert late == []  # nothing new started after the cancel (in-flight calls finished before)


def test_crashed_cli_is_resumed_without_redoing_stored_results(upstream: OpenAIServer) -> None:
    env = fault_env(upstream, max_concurrency=4)
    data = Path(env["SWITCHYARD_DATA_DIR"])
    lines = prompt_lines(16, "crash")
    for x in lines:
        upstream.script(x["prompt"], [Reply(200, delay_s=0.7)])
    src = data / "in.jsonl"
    src.write_text("".join(json.dumps(x) + "\n" for x in lines))
    full = {**os.environ, **env}
    proc = subprocess.Popen([sys.executable, "-m", "switchyard.cli", "run", str(src)], env=full, cwd=data,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: len(upstream.calls) >= 4, 120, "the job under way")
    proc.send_signal(signal.SIGKILL)  # no cleanup at all: its Redis and workers are orphaned
    proc.wait()
    listing = subprocess.run([sys.executable, "-m", "switchyard.cli", "jobs", "list"], env=full, cwd=data,
                             capture_output=True, text=True, check=True).stdout.split()
    r = subprocess.run([sys.executable, "-m", "switchyard.cli", "jobs", "resume", listing[0], "--out", "out.jsonl",
                        "--errors", "err.jsonl"], env=full, cwd=data, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    outs = [json.loads(x) for x in (data / "out.jsonl").read_text().splitlines()]
    assert sorted(o["custom_id"] for o in outs) == sorted(x["custom_id"] for x in lines)
    assert (data / "err.jsonl").read_text() == ""
    # Only a call in flight at the kill may be repeated; a stored result is never sent again.
    from collections import Counter

    assert max(Counter(c.prompt for c in upstream.calls).values()) <= 2
    leftovers = subprocess.run(["pgrep", "-af", str(data)], capture_output=True, text=True).stdout
    assert [x for x in leftovers.splitlines() if "pgrep" not in x] == []  # the orphans were reaped
