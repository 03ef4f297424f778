"""Worker deaths and shutdowns mid-batch, a Redis restart mid-job, a poison request."""

from __future__ import annotations

import signal
import threading
import time

from sqlmodel import select

from switchyard.pipeline.control import get_job
from switchyard.store.db import session_scope
from switchyard.store.models import TERMINAL_JOB, DeadLetter
from tests.faults.conftest import check_invariant, fault_env, prompt_lines, submit, unacked
from tests.support.openai_server import OpenAIServer, Reply
from tests.support.system import System, running_system, wait_for

SLOW = "tests.support.plugins:SlowTagger"


def done(system: System, job_id: str) -> bool:
    return get_job(system.settings, job_id).status in TERMINAL_JOB


def test_sigkill_gpu_main_mid_batch_is_redelivered_after_visibility_timeout(upstream: OpenAIServer) -> None:
    env = fault_env(upstream, SWITCHYARD_TAGGER=SLOW, SWITCHYARD_TEST_TAG_SLEEP_S="3", SWITCHYARD_BATCH_SIZE="4",
                    SWITCHYARD_VISIBILITY_TIMEOUT_S="6")
    lines = prompt_lines(12, "kill-gpu")
    with running_system(env) as system:
        job_id = submit(system, lines)
        wait_for(lambda: unacked(system) > 0, 60, "a shard in flight")
        gpu = system.embedded.procs["gpu"]
        gpu.send_signal(signal.SIGKILL)  # the main process only: no warm shutdown, no ack
        gpu.wait()
        started = time.monotonic()
        system.embedded.start_process("gpu")
        wait_for(lambda: done(system, job_id), 120, "the job after the kill")
        assert time.monotonic() - started >= 3  # it waited for redelivery, not a requeue
        check_invariant(system, job_id, lines, upstream)


def test_sigterm_requeues_at_once_without_the_visibility_timeout(upstream: OpenAIServer) -> None:
    env = fault_env(upstream, SWITCHYARD_TAGGER=SLOW, SWITCHYARD_TEST_TAG_SLEEP_S="2", SWITCHYARD_BATCH_SIZE="4",
                    SWITCHYARD_VISIBILITY_TIMEOUT_S="3600")
    lines = prompt_lines(12, "term-gpu")
    with running_system(env) as system:
        job_id = submit(system, lines)
        wait_for(lambda: unacked(system) > 0, 60, "a shard in flight")
        system.embedded.stop_process("gpu", signal.SIGTERM, timeout_s=60)  # warm: finishes its batch
        system.embedded.start_process("gpu")
        wait_for(lambda: done(system, job_id), 90, "the job after SIGTERM")  # far under 3600 s
        check_invariant(system, job_id, lines, upstream)


def test_embedded_redis_restart_mid_job_loses_nothing(upstream: OpenAIServer) -> None:
    env = fault_env(upstream, SWITCHYARD_VISIBILITY_TIMEOUT_S="8", SWITCHYARD_DISPATCH_CONCURRENCY="4")
    lines = prompt_lines(40, "redis-restart")
    for x in lines:
        upstream.script(x["prompt"], [Reply(200, delay_s=0.3)])
    with running_system(env) as system:
        job_id = submit(system, lines)
        wait_for(lambda: len(upstream.calls) >= 5, 60, "the job under way")
        system.embedded.redis.stop()  # SIGTERM: Redis writes its AOF and exits
        time.sleep(1.0)
        system.embedded.redis.start()  # same socket, same AOF
        wait_for(lambda: done(system, job_id), 120, "the job after the Redis restart")
        # A call in flight while the broker was down may be answered twice (the result was
        # stored after the restart ack was lost); nothing is ever answered three times.
        outs, errs = check_invariant(system, job_id, lines, upstream, max_calls_per_prompt=2)
        assert errs == [] and len(outs) == 40


def test_poison_request_is_dead_lettered_not_looped(upstream: OpenAIServer) -> None:
    env = fault_env(upstream, provider_kind="tests.support.plugins:PoisonProvider",
                    SWITCHYARD_VISIBILITY_TIMEOUT_S="3", SWITCHYARD_MAX_DELIVERIES="2",
                    SWITCHYARD_DISPATCH_CONCURRENCY="1")
    lines = [*prompt_lines(4, "fine"), {"custom_id": "poison", "prompt": "POISON pill"}]
    with running_system(env) as system:
        stop = threading.Event()

        def supervise() -> None:  # what systemd / compose `restart:` does in production
            while not stop.is_set():
                if system.embedded.procs["dispatch"].poll() is not None:
                    system.embedded.start_process("dispatch")
                time.sleep(0.3)

        sup = threading.Thread(target=supervise, daemon=True)
        sup.start()
        try:
            job_id = submit(system, lines)
            try:
                wait_for(lambda: done(system, job_id), 150, "the job with a poison request")
            except TimeoutError:
                from switchyard.store.models import Request

                with session_scope(system.settings) as s:
                    rows = [(r.custom_id, r.state, r.deliveries, r.attempts) for r in s.exec(select(Request))]
                raise AssertionError(f"stuck: {rows}; unacked={unacked(system)}") from None
        finally:
            stop.set()
            sup.join()
        outs, errs = check_invariant(system, job_id, lines, upstream)
        assert sorted(o["custom_id"] for o in outs) == ["r0", "r1", "r2", "r3"]
        assert [(e["custom_id"], e["error"]["code"]) for e in errs] == [("poison", "dead_lettered")]
        with session_scope(system.settings) as s:
            (dl,) = s.exec(select(DeadLetter)).all()
            assert dl.job_id == job_id and dl.deliveries > 2
