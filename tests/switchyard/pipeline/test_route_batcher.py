"""The /v1/route micro-batcher: concurrent calls share one decision batch, each gets its own answer."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.pipeline.route import RouteBatcher, request_from_messages, route_one
from switchyard.routing.base import RouteDecision, RouteRequest, RoutingOptions

CATALOG = Catalog.from_yaml_text("""
providers: {p: {kind: openai, base_url: 'http://127.0.0.1:9/v1'}}
models:
  - {id: cheap, provider: p, usd_per_mtok_input: 0.1, usd_per_mtok_output: 0.2}
  - {id: strong, provider: p, usd_per_mtok_input: 5, usd_per_mtok_output: 15}
""")


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, reqs: list[RouteRequest]) -> list[RouteDecision]:
        with self.lock:
            self.batches.append([r.id for r in reqs])
        return [RouteDecision(model=f"for-{r.id}", policy="test", reason="") for r in reqs]


def call_together(batcher: RouteBatcher, n: int) -> list[str]:
    start = threading.Barrier(n)

    def one(i: int) -> str:
        start.wait()
        d = batcher.route(RouteRequest(id=str(i), prompt=f"p{i}"))
        return f"{d.model}" if d.details.get("route_batch") in (1, n) else "bad batch size"

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrent_calls_are_decided_in_one_batch() -> None:
    rec = Recorder()
    # A long wait that the full batch cuts short: all eight arrive, one decide call serves them.
    batcher = RouteBatcher(Settings(), CATALOG, max_batch=8, max_wait_s=5.0, decide=rec)
    models = call_together(batcher, 8)
    assert models == [f"for-{i}" for i in range(8)]  # each caller gets its own decision
    assert len(rec.batches) == 1 and sorted(rec.batches[0], key=int) == [str(i) for i in range(8)]
    assert batcher.batch_sizes == [8]


def test_zero_wait_turns_batching_off() -> None:
    rec = Recorder()
    batcher = RouteBatcher(Settings(), CATALOG, max_batch=8, max_wait_s=0.0, decide=rec)
    assert call_together(batcher, 4) == [f"for-{i}" for i in range(4)]
    assert sorted(len(b) for b in rec.batches) == [1, 1, 1, 1]


def test_calls_arriving_while_a_batch_runs_form_the_next_batch() -> None:
    release = threading.Event()
    batches: list[list[str]] = []

    def slow(reqs: list[RouteRequest]) -> list[RouteDecision]:
        batches.append([r.id for r in reqs])
        if len(batches) == 1:
            release.wait(10)  # the first batch is still being decided while the others arrive
        return [RouteDecision(model=r.id, policy="test", reason="") for r in reqs]

    batcher = RouteBatcher(Settings(), CATALOG, max_batch=32, max_wait_s=0.001, decide=slow)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.route, RouteRequest(id="first", prompt="x"))
        while not batches:
            time.sleep(0.001)
        rest = [pool.submit(batcher.route, RouteRequest(id=str(i), prompt="x")) for i in range(5)]
        while len(batcher._pending) < 5:  # all five queued behind the running batch
            time.sleep(0.001)
        release.set()
        assert first.result(timeout=10).model == "first"
        assert [f.result(timeout=10).model for f in rest] == [str(i) for i in range(5)]
    assert batches[0] == ["first"] and sorted(batches[1]) == [str(i) for i in range(5)]
    assert len(batches) == 2


def test_a_failing_batch_fails_every_caller_and_the_next_batch_works() -> None:
    calls = {"n": 0}

    def flaky(reqs: list[RouteRequest]) -> list[RouteDecision]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("policy exploded")
        return [RouteDecision(model="ok", policy="test", reason="") for _ in reqs]

    batcher = RouteBatcher(Settings(), CATALOG, max_batch=3, max_wait_s=5.0, decide=flaky)
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(batcher.route, RouteRequest(id=str(i), prompt="x")) for i in range(3)]
        for f in futures:
            with pytest.raises(RuntimeError, match="policy exploded"):
                f.result(timeout=10)
    assert batcher.route(RouteRequest(id="9", prompt="x")).model == "ok"


def test_batched_decisions_equal_one_at_a_time(settings: Settings) -> None:
    cfg = settings.model_copy(update={"tagger": "null", "policy": "cheapest"})
    convs = [[{"role": "user", "content": f"question {i}"}] for i in range(6)]
    opts = [RoutingOptions(), RoutingOptions(deny=["cheap"]), RoutingOptions(), RoutingOptions(allow=["strong"]),
            RoutingOptions(), RoutingOptions()]
    alone = [route_one(cfg, c, o, catalog=CATALOG).model for c, o in zip(convs, opts, strict=True)]
    batcher = RouteBatcher(cfg, CATALOG, max_batch=6, max_wait_s=5.0)
    start = threading.Barrier(6)

    def one(i: int) -> str:
        start.wait()
        return batcher.route(request_from_messages(convs[i], opts[i])).model

    with ThreadPoolExecutor(6) as pool:
        together = list(pool.map(one, range(6)))
    assert together == alone == ["cheap", "strong", "cheap", "strong", "cheap", "cheap"]
    assert batcher.batch_sizes == [6]
