"""``POST /v1/route`` (decision only), ``POST /v1/feedback``, ``GET /v1/scores``, ``GET /v1/models``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.deps import catalog, owner, route_batcher, settings
from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.pipeline.outcome import Feedback, record_feedback
from switchyard.pipeline.route import RouteBatcher, request_from_messages
from switchyard.routing.base import RoutingOptions
from switchyard.store.scores import list_versions, show

router = APIRouter(tags=["routing"])


class RouteIn(BaseModel):
    messages: list[dict[str, Any]]
    routing: RoutingOptions = Field(default_factory=RoutingOptions)


@router.post("/v1/route")
def route(body: RouteIn, _: str = Depends(owner), batcher: RouteBatcher = Depends(route_batcher)) -> dict[str, Any]:
    # Concurrent calls are coalesced into one tagging + routing batch (settings.route_max_wait_ms).
    return batcher.route(request_from_messages(body.messages, body.routing)).to_json()


class FeedbackIn(BaseModel):
    request_id: int | None = None
    batch_id: str | None = None
    custom_id: str | None = None
    verdict: str | None = None
    quality: float | None = None
    source: str = "user"


@router.post("/v1/feedback")
def feedback(body: FeedbackIn, key: str = Depends(owner), s: Settings = Depends(settings)) -> dict[str, Any]:
    fb = Feedback(verdict=body.verdict, quality=body.quality, source=body.source, request_id=body.request_id,
                  job_id=body.batch_id, custom_id=body.custom_id)
    return {"object": "feedback", "seq": record_feedback(s, fb, owner=key)}


@router.get("/v1/scores")
def scores(version: int | None = None, model: str | None = None, tag: str | None = None, top: int = 20,
           _: str = Depends(owner), s: Settings = Depends(settings)) -> dict[str, Any]:
    out: dict[str, Any] = {"object": "list", "versions": list_versions(s)}
    if out["versions"]:
        table = show(s, version, top)
        if model:
            table["models"] = {m: v for m, v in table["models"].items() if m == model}
        if tag:
            for v in table["models"].values():
                v["top_tags"] = [t for t in v["top_tags"] if tag in t[0]]
        out["table"] = table
    return out


@router.get("/v1/models")
def models(_: str = Depends(owner), cat: Catalog = Depends(catalog)) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": m.id, "object": "model", "owned_by": m.provider,
                                        **m.model_dump(mode="json", exclude={"id"})} for m in cat.models]}
