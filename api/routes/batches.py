"""OpenAI Batch API over Switchyard jobs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header
from pydantic import BaseModel

from api.deps import catalog, owner, settings
from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.pipeline.batches import batch_json, create_batch
from switchyard.pipeline.control import cancel_job, get_job, list_jobs
from workers.submit import enqueue_finalize, enqueue_job

router = APIRouter(prefix="/v1/batches", tags=["batches"])


class BatchIn(BaseModel):
    input_file_id: str
    endpoint: str
    completion_window: str = "24h"
    metadata: dict[str, Any] | None = None


@router.post("")
def create(body: BatchIn, key: str = Depends(owner), s: Settings = Depends(settings),
           cat: Catalog = Depends(catalog),
           idempotency_key: str | None = Header(None, alias="Idempotency-Key")) -> dict[str, Any]:
    made = create_batch(s, input_file_id=body.input_file_id, endpoint=body.endpoint, window=body.completion_window,
                        owner=key, catalog=cat, metadata=body.metadata, idempotency_key=idempotency_key)
    if made.new and made.plan is not None:
        enqueue_job(made.job_id) if made.plan.n_shards else enqueue_finalize(made.job_id)
    return batch_json(get_job(s, made.job_id, owner=key))


@router.get("/{batch_id}")
def retrieve(batch_id: str, key: str = Depends(owner), s: Settings = Depends(settings)) -> dict[str, Any]:
    return batch_json(get_job(s, batch_id, owner=key))


@router.get("")
def list_(limit: int = 20, after: str | None = None, key: str = Depends(owner),
          s: Settings = Depends(settings)) -> dict[str, Any]:
    jobs = list_jobs(s, limit=min(max(limit, 1), 100) + 1, after=after, owner=key)
    page = [batch_json(j) for j in jobs[:limit]]
    return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None, "has_more": len(jobs) > limit}


@router.post("/{batch_id}/cancel")
def cancel(batch_id: str, key: str = Depends(owner), s: Settings = Depends(settings)) -> dict[str, Any]:
    get_job(s, batch_id, owner=key)  # 404 for another key's batch
    if cancel_job(s, batch_id):
        enqueue_finalize(batch_id)
    return batch_json(get_job(s, batch_id, owner=key))
