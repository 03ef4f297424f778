"""The routing contract: one Protocol, plain-data requests and decisions, a registry.

A :class:`RoutingPolicy` decides a whole batch at once::

    decisions = policy.decide_batch(requests, catalog, context)

It never raises for one bad request: it returns a decision with ``fallback=True``
and says why (see :func:`fallback_decision`, the documented default: the cheapest
eligible model). Learned policies also implement :class:`Trainable`.

Policy names are registry keys, with two composite forms:
``fixed:<model>`` and ``glider+<base>`` (GLIDER similarity added to a base policy).

Composition convention (:class:`ScoringPolicy`). A policy whose decision is
"per-model scores, then a cost rule" splits ``decide_batch`` in two::

    scores = policy.score_batch(requests, catalog, context)      # [B, M] over catalog.ids()
    decisions = policy.decide_from_scores(requests, scores, catalog, context)

Scores are higher-is-better and comparable across the models of one row (TagRouter's
S, Tryage's and MF's predicted quality); NaN marks a model that is ineligible for, or
unscorable on, that request and must never be chosen. ``decide_from_scores`` applies the
policy's own knob and cost rule (TagRouter: cheapest within theta of the best; Tryage:
argmax of score - lambda * penalty), so ``glider+<base>`` adds alpha * cos(query, key) to
the base's scores and lets the base decide: the knob stays the base's, so the composite's
eval curve overlays the base's. A base without these methods is composed through its
decisions' ``ranked`` list instead (scores for every eligible model).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from switchyard.catalog import Catalog
from switchyard.registry import Registry


class RoutingOptions(BaseModel):
    """The optional ``routing`` object of an input line, handed to the policy."""

    model_config = ConfigDict(extra="allow")

    policy: str | None = Field(None, description="registry key; default = the job's or the settings'")
    knob: float | None = Field(None, description="the policy's cost/quality knob (theta, lambda, alpha...)")
    max_cost_usd: float | None = Field(None, ge=0, description="predicted cost cap for this request")
    flags: dict[str, float] = Field(default_factory=dict, description="Tryage flags, e.g. {'cost': 1}")
    allow: list[str] | None = Field(None, description="only these models")
    deny: list[str] = Field(default_factory=list, description="never these models")
    routes: list[dict[str, Any]] | None = Field(None, description="Arch-Router routes replacing the config")


@dataclass
class RouteRequest:
    """What a policy sees of one request. Plain data, no ORM."""

    id: str
    prompt: str  # the latest user message
    messages: list[dict[str, Any]] = field(default_factory=list)  # the whole conversation
    input_tokens: int = 0
    tags: list[str] = field(default_factory=list)  # canonical tags from the tagger
    options: RoutingOptions = field(default_factory=RoutingOptions)
    embedding: np.ndarray | None = None  # [384] MiniLM, filled on demand by the context


@dataclass
class RouteDecision:
    model: str
    policy: str
    reason: str
    ranked: list[tuple[str, float]] = field(default_factory=list)  # (model, score), best first
    knob: float | None = None
    tags: list[str] = field(default_factory=list)
    fallback: bool = False
    predicted_cost_usd: float | None = None
    details: dict[str, Any] = field(default_factory=dict)  # policy-specific: per-model S, route, ...

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "policy": self.policy,
            "reason": self.reason,
            "ranked": [[m, round(float(s), 6)] for m, s in self.ranked],
            "knob": self.knob,
            "tags": list(self.tags),
            "fallback": self.fallback,
            "predicted_cost_usd": self.predicted_cost_usd,
            "details": self.details,
        }


@dataclass
class TrainingSet:
    """Outcomes to learn from: prompts x models. NaN = unknown (never 'bad')."""

    prompts: list[str]
    models: list[str]
    quality: np.ndarray  # [N, M] float64 in [0, 1], NaN = unknown
    cost: np.ndarray  # [N, M] float64 USD, NaN = unknown
    input_tokens: np.ndarray  # [N] int64
    accept_threshold: float = 0.5
    tags: list[list[str]] | None = None  # canonical tags per prompt, when a tagger ran
    embeddings: np.ndarray | None = None  # [N, 384] when computed


@dataclass
class RoutingContext:
    """Per-call knobs and shared services (the embedder) for policies."""

    knob: float | None = None
    exploration_rate: float = 0.0
    seed: int = 0
    embed_fn: Callable[[Sequence[str]], np.ndarray] | None = None
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def knob_for(self, request: RouteRequest, default: float) -> float:
        if request.options.knob is not None:
            return float(request.options.knob)
        return float(self.knob) if self.knob is not None else default

    def embed(self, requests: Sequence[RouteRequest]) -> np.ndarray:
        """MiniLM embeddings of the requests' prompts, cached on them. Shape: [B, 384]."""
        missing = [r for r in requests if r.embedding is None]
        if missing:
            fn = self.embed_fn
            if fn is None:
                from switchyard.embeddings import get_embedder

                fn = get_embedder().encode
            vecs = fn([r.prompt for r in missing])
            for r, v in zip(missing, vecs, strict=True):
                r.embedding = v
        if not requests:
            return np.zeros((0, 384), dtype=np.float32)
        return np.stack([r.embedding for r in requests if r.embedding is not None])


@runtime_checkable
class RoutingPolicy(Protocol):
    name: str
    knob_name: str  # "theta", "lambda", "alpha", "k" ...
    knob_default: float

    def knob_grid(self, n: int = 21) -> list[float]:
        """Knob values the evaluation sweeps, from cheapest to best quality when meaningful."""
        ...

    def decide_batch(
        self, requests: Sequence[RouteRequest], catalog: Catalog, context: RoutingContext
    ) -> list[RouteDecision]: ...


@runtime_checkable
class Trainable(Protocol):
    def fit(self, train: TrainingSet, catalog: Catalog, context: RoutingContext) -> None: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path) -> None: ...


@runtime_checkable
class ScoringPolicy(Protocol):
    """A policy that can expose its per-model scores (see the module docstring)."""

    def score_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                    context: RoutingContext) -> np.ndarray:
        """Per-model scores. Shape: [len(requests), len(catalog.ids())] float64, NaN = not choosable."""
        ...

    def decide_from_scores(self, requests: Sequence[RouteRequest], scores: np.ndarray, catalog: Catalog,
                           context: RoutingContext) -> list[RouteDecision]: ...


# --- helpers every policy uses -------------------------------------------------------
def eligible_models(request: RouteRequest, catalog: Catalog) -> list[str]:
    """Catalog models this request may go to: available, allowed, not denied.

    ``max_cost_usd`` is applied too, but never empties the list: when every model is
    over the cap, only the cheapest survives (the decision's reason says so).
    """
    opts = request.options
    ids = catalog.available_ids()
    if opts.allow is not None:
        allowed = set(opts.allow)
        ids = [m for m in ids if m in allowed]
    if opts.deny:
        denied = set(opts.deny)
        ids = [m for m in ids if m not in denied]
    if opts.max_cost_usd is not None and ids:
        under = [m for m in ids if catalog.get(m).predicted_cost(request.input_tokens) <= opts.max_cost_usd]
        ids = under or [min(ids, key=lambda m: catalog.get(m).predicted_cost(request.input_tokens))]
    return ids


def cheapest(models: Sequence[str], catalog: Catalog, input_tokens: int) -> str:
    return min(models, key=lambda m: (catalog.get(m).predicted_cost(input_tokens), m))


def fallback_decision(request: RouteRequest, catalog: Catalog, policy: str, why: str,
                      knob: float | None = None) -> RouteDecision:
    """The documented default for one request a policy could not decide: the cheapest
    eligible model (or the catalog's cheapest when nothing is eligible)."""
    ids = eligible_models(request, catalog) or catalog.ids()
    model = cheapest(ids, catalog, request.input_tokens)
    return RouteDecision(model=model, policy=policy, reason=f"fallback to cheapest eligible model: {why}",
                         ranked=[(model, 0.0)], knob=knob, tags=list(request.tags), fallback=True,
                         predicted_cost_usd=catalog.get(model).predicted_cost(request.input_tokens))


# --- the registry ----------------------------------------------------------------------
policies: Registry[RoutingPolicy] = Registry("routing policy")

# Implementations register on import; imported lazily so the core stays light.
_MODULES = [
    "switchyard.routing.baselines",
    "switchyard.routing.tagrouter",
    "switchyard.routing.arch",
    "switchyard.routing.tryage",
    "switchyard.routing.glider",
    "switchyard.routing.mf",
    "switchyard.routing.cascade",
]


def _import_all() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a policy module not written yet
            if e.name != mod:
                raise


_GLIDER_OPTIONS = ("alpha", "keys", "lead_words", "rewrite_model")


def get_policy(name: str, **kwargs: Any) -> RoutingPolicy:
    """Build a policy by name: ``tagrouter``, ``fixed:<model>``, ``glider+tagrouter`` ..."""
    _import_all()
    if name.startswith("fixed:"):
        return policies.create("fixed", model=name.split(":", 1)[1], **kwargs)
    if name.startswith("glider+"):
        # alpha (and GLIDER's own options) belong to GLIDER, everything else to the base policy
        extra = {k: kwargs.pop(k) for k in _GLIDER_OPTIONS if kwargs.get(k) is not None}
        for k in _GLIDER_OPTIONS:
            kwargs.pop(k, None)
        base = get_policy(name.split("+", 1)[1], **kwargs)
        return policies.create("glider", base=base, **extra)
    return policies.create(name, **kwargs)


def policy_names() -> list[str]:
    _import_all()
    return policies.names()


def route_batch(requests: Sequence[RouteRequest], catalog: Catalog, context: RoutingContext,
                default_policy: str, get: Callable[[str], RoutingPolicy] = get_policy) -> list[RouteDecision]:
    """Decide a mixed batch: group requests by their policy, one ``decide_batch`` per group.

    A policy that raises for its whole group degrades to per-request fallbacks, so one
    broken policy never sinks the batch.
    """
    groups: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        groups.setdefault(r.options.policy or default_policy, []).append(i)
    out: list[RouteDecision | None] = [None] * len(requests)
    for name, idx in groups.items():
        sub = [requests[i] for i in idx]
        try:
            decisions = get(name).decide_batch(sub, catalog, context)
        except Exception as e:
            decisions = [fallback_decision(r, catalog, name, f"policy {name!r} failed: {e}") for r in sub]
        for i, d in zip(idx, decisions, strict=True):
            out[i] = d
    return [d for d in out if d is not None]
