"""Benchmarks 5 (API memory) and 6 (interactive latency) against a real ``switchyard serve``.

    python -m benchmarks.bench_api [--quick] [--route-requests 400]

Each measurement starts ``switchyard serve`` as its own process (uvicorn + the embedded Redis
and workers, zero setup), so its memory and its CPU are its own, and the load comes from
this process over loopback HTTP.

- **5. API peak RSS under 200 concurrent chat requests.** 200 ``POST /v1/chat/completions``
  at once (``switchyard/auto``), routed through the interactive queue to the local
  OpenAI-protocol server (100 ms per call). Peak RSS = the API process's VmHWM afterwards.
- **6. ``POST /v1/route`` latency under 50 concurrent clients**, each sending its next request
  as soon as the last one returned, with the default offline tagger (MiniLM, in the API
  process) and ``tagrouter``; distinct prompts from the routing datasets so no call hits the
  embedder's cache; torch on one thread in the API process (it shares the two cores with the
  embedded workers and the load generator). Micro-batcher on (``SWITCHYARD_ROUTE_MAX_WAIT_MS`` = 2, up to 32 per batch)
  and off (0), on two fresh servers. Reports p50 / p99 (ms), throughput and the mean batch a
  call was decided in (``details.route_batch``). The same again with the ``null`` tagger: the
  HTTP, auth and decision overhead alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from benchmarks.perf_common import REPO, dataset_prompts, parser, peak_rss_mb, write_part
from tests.support.system import short_tmpdir, write_catalog


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(env: dict[str, str], upstream_url: str) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """A ``switchyard serve`` process; yields (base url, api key, process)."""
    import httpx

    from switchyard.auth import create_key
    from switchyard.config import Settings
    from switchyard.store.db import dispose_engines, init_db

    data_dir = short_tmpdir("syapi")
    catalog = write_catalog(data_dir / "catalog.yaml", providers={
        "upstream": {"kind": "openai", "base_url": upstream_url, "max_concurrency": 64}}, models=[
        {"id": "cheap", "provider": "upstream", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.2},
        {"id": "strong", "provider": "upstream", "usd_per_mtok_input": 5, "usd_per_mtok_output": 15}])
    full = {**os.environ, "SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_CATALOG_PATH": str(catalog),
            "SWITCHYARD_DISPATCH_CONCURRENCY": "64", **env}
    settings = Settings(data_dir=data_dir)
    init_db(settings)
    key = create_key(settings, "bench").secret
    dispose_engines()
    port = free_port()
    log = (data_dir / "serve.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "switchyard.cli", "serve", "--port", str(port)], env=full,
                            cwd=REPO, stdout=log, stderr=log, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"switchyard serve did not come up; see {data_dir / 'serve.log'}")
            time.sleep(0.5)
        yield url, key, proc
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C: serve stops its workers and Redis
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(data_dir, ignore_errors=True)


def chat_burst(url: str, key: str, n: int) -> dict[str, Any]:
    import httpx

    async def go() -> list[float]:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {key}"}, limits=limits,
                                     timeout=600) as client:
            async def one(i: int) -> float:
                t0 = time.perf_counter()
                r = await client.post("/v1/chat/completions", json={
                    "model": "switchyard/auto", "messages": [{"role": "user", "content": f"chat {i}: hello"}]})
                r.raise_for_status()
                return time.perf_counter() - t0

            return await asyncio.gather(*(one(i) for i in range(n)))

    t0 = time.perf_counter()
    lat = asyncio.run(go())
    return {"requests": n, "wall_s": round(time.perf_counter() - t0, 3),
            "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1),
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), 1)}


def route_load(url: str, key: str, prompts: list[str], clients: int) -> dict[str, Any]:
    """``clients`` threads in a closed loop until every prompt was routed once."""
    import httpx

    lat: list[float] = []
    sizes: list[int] = []  # the batch each call was decided in (details.route_batch)
    lock = threading.Lock()
    todo = iter(range(len(prompts)))
    errors = 0

    def client() -> None:
        nonlocal errors
        with httpx.Client(base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=600) as c:
            while True:
                with lock:
                    i = next(todo, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                r = c.post("/v1/route", json={"messages": [{"role": "user", "content": prompts[i]}]})
                dt = time.perf_counter() - t0
                with lock:
                    lat.append(dt)
                    errors += r.status_code != 200
                    if r.status_code == 200:
                        sizes.append(int(r.json()["details"].get("route_batch", 1)))

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"requests": len(lat), "errors": errors, "wall_s": round(wall, 3),
            "requests_per_s": round(len(lat) / wall, 2),
            "p50_ms": round(1000 * float(np.percentile(lat, 50)), 1),
            "p99_ms": round(1000 * float(np.percentile(lat, 99)), 1),
            "mean_ms": round(1000 * float(np.mean(lat)), 1),
            "mean_batch": round(float(np.mean(sizes)), 2) if sizes else None}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--route-requests", type=int, default=None)
    p.add_argument("--chats", type=int, default=200)
    p.add_argument("--clients", type=int, default=50)
    args = p.parse_args(argv)
    n_route = args.route_requests or (100 if args.quick else 400)
    from tests.support.openai_server import OpenAIServer

    upstream = OpenAIServer(latency_s=0.1).start()
    result: dict[str, Any] = {}
    try:
        with serve({"SWITCHYARD_TAGGER": "null", "SWITCHYARD_POLICY": "tagrouter"}, upstream.url) as (url, key, proc):
            chat_burst(url, key, 8)  # warm
            burst = chat_burst(url, key, args.chats)
            rss = peak_rss_mb(proc.pid)
        result["api_chat_burst"] = burst
        result["api_peak_rss_mb"] = rss["main"]
        prompts = [t for t, _ in dataset_prompts(n_route + 2 * args.clients, seed=11)]
        warm, prompts = prompts[: 2 * args.clients], prompts[2 * args.clients:]
        route: dict[str, Any] = {}
        # The default offline tagger (MiniLM in the API process), then the null tagger: HTTP + auth +
        # decision alone, i.e. what Switchyard adds when tagging is cheap or done elsewhere.
        for tagger in ("offline", "null"):
            for mode, wait_ms in (("batcher_on", "2"), ("batcher_off", "0")):
                env = {"SWITCHYARD_TAGGER": tagger, "SWITCHYARD_POLICY": "tagrouter", "SWITCHYARD_TORCH_THREADS": "1",
                       "SWITCHYARD_ROUTE_MAX_WAIT_MS": wait_ms, "SWITCHYARD_ROUTE_MAX_BATCH": "32"}
                key_name = mode if tagger == "offline" else f"null_tagger_{mode}"
                with serve(env, upstream.url) as (url, key, proc):
                    route_load(url, key, warm, args.clients)  # loads MiniLM, fills the label cache
                    route[key_name] = route_load(url, key, prompts, args.clients)
                    route[key_name]["api_peak_rss_mb"] = peak_rss_mb(proc.pid)["main"]
        result["route_latency"] = route
        result["route_p50_ms"] = route["batcher_on"]["p50_ms"]
        result["route_p99_ms"] = route["batcher_on"]["p99_ms"]
        result["route_p50_ms_batcher_off"] = route["batcher_off"]["p50_ms"]
        result["route_p99_ms_batcher_off"] = route["batcher_off"]["p99_ms"]
        result["route_p50_ms_null_tagger"] = route["null_tagger_batcher_on"]["p50_ms"]
        result["route_p99_ms_null_tagger"] = route["null_tagger_batcher_on"]["p99_ms"]
        result["api_setup"] = {"chats": args.chats, "route_clients": args.clients, "route_requests": len(prompts),
                               "upstream_latency_s": 0.1, "route_tagger": "offline", "policy": "tagrouter"}
    finally:
        upstream.stop()
    write_part("api", result)
    return result


if __name__ == "__main__":
    main()
