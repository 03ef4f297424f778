"""``POST /v1/chat/completions``: one request through the same gpu and dispatch queues."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from api.deps import catalog, owner, settings
from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.errors import InputError, PayloadTooLarge, ProviderTimeout
from switchyard.pipeline.batches import submit_chat
from switchyard.pipeline.control import get_job
from switchyard.pipeline.finalize import iter_lines
from switchyard.store.models import TERMINAL_JOB
from workers.submit import enqueue_finalize, enqueue_interactive

router = APIRouter(tags=["chat"])


def _json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; anything else is a 400 naming the problem (found by fuzzing: a 500)."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # bad JSON, bad UTF-8, or nested too deeply
        raise InputError("the request body must be a JSON object (see the OpenAI chat completions API)",
                         field="body") from None
    if not isinstance(body, dict):
        raise InputError(f"the request body must be a JSON object, not {type(body).__name__}", field="body")
    return body


@router.post("/v1/chat/completions")
async def chat(request: Request, key: str = Depends(owner), s: Settings = Depends(settings),
               cat: Catalog = Depends(catalog)) -> JSONResponse:
    raw = await request.body()
    if len(raw) > s.max_chat_body_bytes:
        raise PayloadTooLarge(f"request body is over {s.max_chat_body_bytes} bytes", field="messages")
    body = _json_object(raw)
    plan = await asyncio.to_thread(submit_chat, s, body, owner=key, catalog=cat)
    await asyncio.to_thread(enqueue_interactive if plan.n_shards else enqueue_finalize, plan.job_id)
    deadline = time.monotonic() + s.chat_timeout_s
    while (await asyncio.to_thread(get_job, s, plan.job_id)).status not in TERMINAL_JOB:
        if time.monotonic() > deadline:
            raise ProviderTimeout(f"no answer within {s.chat_timeout_s}s")
        await asyncio.sleep(0.05)
    ok, line = next(iter(await asyncio.to_thread(lambda: list(iter_lines(s, plan.job_id)))))
    if not ok:
        err = line["error"]
        status = (line.get("response") or {}).get("status_code") or 400
        return JSONResponse({"error": {"message": err["message"], "type": "invalid_request_error",
                                       "param": None, "code": err["code"]}}, status_code=status)
    out = {**line["response"]["body"], "switchyard": line["switchyard"]}
    return JSONResponse(out, headers={"x-switchyard-model": str(line["switchyard"]["model"])})
