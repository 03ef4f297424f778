"""``GET /healthz`` (no key) and ``GET /metrics`` (Prometheus text)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import text

from api.deps import settings
from switchyard.config import Settings
from switchyard.metrics import snapshot
from switchyard.store.db import get_engine
from workers.app import QUEUES, producer
from workers.runtime import redis_client

router = APIRouter(tags=["health"])


def _workers_online() -> list[str]:
    replies = producer().control.ping(timeout=1.0) or []
    return sorted(name for r in replies for name in r)


@router.get("/healthz")
def healthz(s: Settings = Depends(settings)) -> JSONResponse:
    checks: dict[str, Any] = {}
    try:
        with get_engine(s).connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as e:  # a health check reports every failure, it never raises
        checks["database"] = f"error: {e}"
    try:
        redis_client().ping()
        checks["broker"] = "ok"
        checks["workers"] = _workers_online()
    except Exception as e:
        checks["broker"] = f"error: {e}"
        checks["workers"] = []
    ok = checks["database"] == "ok" and checks["broker"] == "ok" and bool(checks["workers"])
    return JSONResponse({"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503)


@router.get("/metrics")
def metrics(s: Settings = Depends(settings)) -> Response:
    reg = CollectorRegistry()
    snap = snapshot(s)
    g = Gauge("switchyard_requests", "Requests by state", ["state"], registry=reg)
    for state, n in snap.requests_by_state.items():
        g.labels(state).set(n)
    routed = Counter("switchyard_routed_requests", "Requests per chosen model and policy", ["model", "policy"],
                     registry=reg)
    for (model, policy), n in snap.routed.items():
        routed.labels(model, policy).inc(n)
    cost = Counter("switchyard_cost_usd", "Provider cost in USD", ["model"], registry=reg)
    for model, c in snap.cost_by_model.items():
        cost.labels(model).inc(c)
    Counter("switchyard_retries", "Provider attempts beyond the first", registry=reg).inc(snap.retries)
    fail = Counter("switchyard_failures", "Failed or invalid requests by reason", ["reason"], registry=reg)
    for reason, n in snap.failures_by_reason.items():
        fail.labels(reason).inc(n)
    jobs = Gauge("switchyard_jobs", "Jobs by status", ["status"], registry=reg)
    for status, n in snap.jobs_by_status.items():
        jobs.labels(status).set(n)
    lat = Histogram("switchyard_dispatch_latency_seconds", "Provider call latency (recent requests)",
                    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120), registry=reg)
    for ms in snap.latency_ms:
        lat.observe(ms / 1000)
    for name, doc, values in (("switchyard_stage_route_seconds", "Submit to routed: queue wait, tagging, routing",
                               snap.route_s),
                              ("switchyard_stage_total_seconds", "Submit to finished", snap.total_s)):
        h = Histogram(name, doc, buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800), registry=reg)
        for v in values:
            h.observe(v)
    tb = Histogram("switchyard_tagging_batch_size", "Requests per tagging/routing batch (gpu shard)",
                   buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=reg)
    for n in snap.tagging_batches:
        tb.observe(n)
    depth = Gauge("switchyard_queue_depth", "Messages waiting per queue", ["queue"], registry=reg)
    try:
        r = redis_client()
        for q in QUEUES:
            depth.labels(q).set(int(r.llen(q)))
    except Exception:  # the broker being down must not hide the SQL metrics
        pass
    return Response(generate_latest(reg), media_type=CONTENT_TYPE_LATEST)
