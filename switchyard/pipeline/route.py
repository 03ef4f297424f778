"""Decision only: tag and route requests without dispatching (``switchyard route``, ``POST /v1/route``)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from switchyard.catalog import Catalog
from switchyard.config import Settings
from switchyard.errors import InputError
from switchyard.jobs import message_text
from switchyard.pipeline.tag_and_route import cached_policy, cached_tagger, tag_requests
from switchyard.routing.base import (
    RouteDecision,
    RouteRequest,
    RoutingContext,
    RoutingOptions,
    RoutingPolicy,
    route_batch,
)
from switchyard.tokens import count_tokens


def request_from_messages(messages: Sequence[dict[str, Any]], options: RoutingOptions,
                          request_id: str = "0") -> RouteRequest:
    """A conversation as a route request: the latest user text is the prompt."""
    prompt = next((message_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
    if not prompt.strip():
        raise InputError("the conversation needs a user message with text", field="messages")
    tokens = count_tokens("\n".join(message_text(m.get("content")) for m in messages))
    return RouteRequest(id=request_id, prompt=prompt, messages=list(messages), input_tokens=tokens, options=options)


def decide_requests(settings: Settings, requests: list[RouteRequest], *, catalog: Catalog,
                    policy: str | None = None, knob: float | None = None,
                    get: Callable[[str], RoutingPolicy] = cached_policy) -> list[RouteDecision]:
    """Tag (aligned to the vocabulary) and route ``requests`` in one batch; a preview never explores."""
    if not requests:
        return []
    tags, dropped = tag_requests(settings, cached_tagger(settings.tagger), [r.prompt for r in requests])
    for r, t in zip(requests, tags, strict=True):
        r.tags = t
    ctx = RoutingContext(knob=knob if knob is not None else settings.knob, exploration_rate=0.0)
    decisions = route_batch(requests, catalog, ctx, policy or settings.policy, get=get)
    for d, n in zip(decisions, dropped, strict=True):
        d.details["dropped_tags"] = n
    return decisions


def route_one(settings: Settings, messages: Sequence[dict[str, Any]], options: RoutingOptions, *,
              catalog: Catalog) -> RouteDecision:
    return decide_requests(settings, [request_from_messages(messages, options)], catalog=catalog)[0]


@dataclass
class _Slot:
    request: RouteRequest
    done: threading.Event = field(default_factory=threading.Event)
    decision: RouteDecision | None = None
    error: BaseException | None = None


class RouteBatcher:
    """Micro-batcher for decision-only calls: concurrent :meth:`route` calls in one process
    (the API's request threads) are decided in one :func:`decide_requests` batch, so one
    tagging pass serves them all.

    No thread of its own: the first caller of a batch leads it. It waits up to ``max_wait_s``
    for others to join (less once ``max_batch`` are waiting) and for the batch before it to
    finish (one batch is decided at a time), then takes every waiting request, decides them
    together and hands each caller its decision; callers arriving meanwhile form the next
    batch, so under load a batch holds whatever arrived while the previous one ran.
    ``max_wait_s = 0`` turns batching off (each call decides alone).
    A failure of the batch is raised in every caller of that batch.
    """

    def __init__(self, settings: Settings, catalog: Catalog, *, max_batch: int = 32, max_wait_s: float = 0.002,
                 decide: Callable[[list[RouteRequest]], list[RouteDecision]] | None = None) -> None:
        self.max_batch, self.max_wait_s = max(1, max_batch), max(0.0, max_wait_s)
        self._decide = decide or (lambda reqs: decide_requests(settings, reqs, catalog=catalog))
        self._lock = threading.Lock()
        self._pending: list[_Slot] = []
        self._full = threading.Event()
        self._busy = threading.Lock()
        self.batch_sizes: list[int] = []  # of the last 1,000 batches: how well calls coalesce

    def route(self, request: RouteRequest) -> RouteDecision:
        if self.max_wait_s == 0:
            decision = self._decide([request])[0]
            decision.details["route_batch"] = 1
            return decision
        slot = _Slot(request)
        with self._lock:
            self._pending.append(slot)
            lead = len(self._pending) == 1
            if len(self._pending) >= self.max_batch:
                self._full.set()
        if lead:
            self._full.wait(self.max_wait_s)
            # One batch decided at a time: calls arriving meanwhile queue up and form the next batch,
            # so the batch grows with the load instead of many small batches competing for the CPU.
            with self._busy:
                with self._lock:
                    batch, self._pending = self._pending, []
                    self._full.clear()
                self._run(batch)
        slot.done.wait()
        if slot.error is not None:
            raise slot.error
        assert slot.decision is not None
        return slot.decision

    def _run(self, batch: list[_Slot]) -> None:
        self.batch_sizes = [*self.batch_sizes[-999:], len(batch)]
        try:
            decisions = self._decide([s.request for s in batch])
            for s, d in zip(batch, decisions, strict=True):
                d.details["route_batch"] = len(batch)  # visible in the response: proof of coalescing
                s.decision = d
        except BaseException as e:  # every caller of the batch sees the failure, none hangs
            for s in batch:
                s.error = e
        finally:
            for s in batch:
                s.done.set()
