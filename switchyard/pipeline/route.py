"""Decision only: tag and route requests without dispatching (``switchyard route``, ``POST /v1/route``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
