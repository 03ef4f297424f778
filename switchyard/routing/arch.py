"""Arch-Router: preference-aligned routing (katanemo/Arch-Router-1.5B).

Tran et al., "Arch-Router: Aligning LLM Routing with Human Preferences" (2025). The
operator writes **routes** (YAML, :class:`RouteConfig`): a ``name``, a plain-language
``description`` of a domain or action, an ordered list of ``models`` and a
``selection_policy`` for that list (``none``: the first eligible, ``cheapest``,
``fastest``: lowest ``latency_ms``), plus a ``default_model``. The router reads the
conversation and names the route that matches the user's latest intent, or ``other``.
A request may carry its own routes in ``routing.routes``; they replace the configured ones.

The router prompt is the model card's contract, verbatim (:data:`TASK_INSTRUCTION`,
:data:`FORMAT_PROMPT`, :func:`format_prompt`): one user message holding the task
instruction, ``<routes>`` with a JSON list of ``{name, description}``, ``<conversation>``
with a JSON list of messages, then the format instruction (answer ``{"route": "other"}``
when the latest intent is irrelevant or fulfilled, else ``{"route": "route_name"}``).
The conversation is trimmed as the reference gateway (archgw) does it
(:func:`trim_conversation`): system, developer, tool and empty messages are dropped, the
newest messages are kept within a token budget (``arch_token_budget``, 2,048 cl100k
tokens), and the last user turn is always kept. Replies are parsed forgivingly
(:func:`parse_route`: code fences stripped, single quotes accepted).

Backends (``arch_backend``):
    - ``embedding`` (the offline default): MiniLM cosine between the latest user intent
      and each route's description, made request-shaped (:class:`EmbeddingBackend`);
      below ``arch_threshold``, or for small talk, the answer is ``other``;
    - ``hf``: a local Arch-Router checkpoint (``arch_model``: a directory, a cached id or a
      .gguf), batched greedy generation, left-padded, under ``torch.inference_mode``;
    - ``openai``: an OpenAI-compatible endpoint serving the router (Ollama, vLLM):
      ``arch_base_url``, model ``arch_model``, key in the env var ``arch_api_key_env``.

Outcomes: a route name -> that route's model; ``other`` -> ``default_model`` (not a
failure); an empty, unparseable or unknown reply, or a failed router call ->
``default_model`` with ``fallback=True`` and the reason. When neither the route's
models nor the default model is eligible, the policy's documented default applies:
the cheapest eligible model (:func:`~switchyard.routing.base.fallback_decision`).
"""

from __future__ import annotations

import ast
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from switchyard.catalog import Catalog, parse_yaml, read_text
from switchyard.errors import ConfigError
from switchyard.routing.base import (
    RouteDecision,
    RouteRequest,
    RoutingContext,
    eligible_models,
    fallback_decision,
    policies,
)

log = logging.getLogger(__name__)

# --- the model card's prompt contract (katanemo/Arch-Router-1.5B, "How to use") ------------
TASK_INSTRUCTION = """
You are a helpful assistant designed to find the best suited route.
You are provided with route description within <routes></routes> XML tags:
<routes>

{routes}

</routes>

<conversation>

{conversation}

</conversation>
"""

FORMAT_PROMPT = """
Your task is to decide which route is best suit with user intent on the conversation in <conversation></conversation> XML tags. Follow the instruction:
1. If the latest intent from user is irrelevant or user intent is full filled, response with other route {"route": "other"}.
2. You must analyze the route descriptions and find the best match route for user latest intent.
3. You only response the name of the route that best matches the user's request, use the exact name in the <routes></routes>.

Based on your analysis, provide your response in the following JSON formats if you decide to match any route:
{"route": "route_name"}
"""  # noqa: E501 - the model card's wording, kept verbatim

OTHER = "other"
DROPPED_ROLES = frozenset({"system", "developer", "tool", "function"})


def format_prompt(routes: Sequence[dict[str, str]], conversation: Sequence[dict[str, str]]) -> str:
    """The router's single user message (the model card's ``format_prompt``)."""
    return TASK_INSTRUCTION.format(routes=json.dumps(list(routes)), conversation=json.dumps(list(conversation))) \
        + FORMAT_PROMPT


# --- route config ----------------------------------------------------------------------------
class Route(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    name: str = Field(min_length=1)
    description: str = Field(min_length=1)
    models: list[str] = Field(default_factory=list, description="preferred models, in order")
    selection_policy: Literal["none", "cheapest", "fastest"] = "none"

    def prompt_entry(self) -> dict[str, str]:
        return {"name": self.name, "description": self.description}


class RouteConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routes: list[Route] = Field(min_length=1)
    default_model: str | None = Field(None, description="for 'other', bad replies and routes with no eligible model")

    def model_post_init(self, _context: Any) -> None:
        names = [r.name for r in self.routes]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"route names must be unique; repeated: {', '.join(dup)}")
        if OTHER in names:
            raise ValueError("'other' is reserved (the router's answer when no route matches)")

    @classmethod
    def from_yaml_text(cls, text: str, *, source: str = "<routes>") -> RouteConfig:
        data = parse_yaml(text, source)
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the route config must be a mapping with 'routes:' and 'default_model:'")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ConfigError(f"{source}: field '{loc}': {err['msg']}") from None

    @classmethod
    def load(cls, path: Path | None = None) -> RouteConfig:
        """``path``, or the example config shipped in ``switchyard/data/routes.yaml``."""
        if path is None:
            text = resources.files("switchyard").joinpath("data/routes.yaml").read_text(encoding="utf-8")
            return cls.from_yaml_text(text, source="switchyard/data/routes.yaml")
        return cls.from_yaml_text(read_text(path, "route config", "SWITCHYARD_ROUTES_PATH"), source=str(path))


def request_routes(raw: list[dict[str, Any]]) -> list[Route]:
    """A request's ``routing.routes`` as routes (raises ValueError with the reason)."""
    try:
        routes = [Route.model_validate(r) for r in raw]
    except ValidationError as e:
        err = e.errors()[0]
        raise ValueError(f"routing.routes.{'.'.join(str(x) for x in err['loc'])}: {err['msg']}") from None
    if not routes:
        raise ValueError("routing.routes is empty")
    names = [r.name for r in routes]
    if len(set(names)) != len(names) or OTHER in names:
        raise ValueError("routing.routes names must be unique and not 'other'")
    return routes


# --- conversation trimming (archgw RouterModelV1.generate_request) ------------------------------
def _text(content: Any) -> str:
    from switchyard.jobs import message_text

    return message_text(content)


def trim_conversation(messages: Sequence[dict[str, Any]], budget: int = 2048,
                      count: Callable[[str], int] | None = None) -> list[dict[str, str]]:
    """The messages the router sees: ``[{role, content}]``, oldest first.

    Drops system, developer, tool and empty messages; walks from the newest message back,
    keeping messages while their summed tokens (cl100k, content only) stay within
    ``budget``; the last user turn is always kept, even alone over the budget; a newer
    non-user message that does not fit is skipped, an older one ends the walk.
    """
    if count is None:
        from switchyard.tokens import count_tokens

        count = count_tokens
    kept = [{"role": str(m.get("role")), "content": _text(m.get("content"))} for m in messages
            if m.get("role") not in DROPPED_ROLES]
    kept = [m for m in kept if m["content"].strip()]
    last_user = max((i for i, m in enumerate(kept) if m["role"] == "user"), default=len(kept) - 1)
    out: list[dict[str, str]] = []
    used = 0
    for i in range(len(kept) - 1, -1, -1):
        n = count(kept[i]["content"])
        if i == last_user:
            out.append(kept[i])
            used += n
            continue
        if used + n > budget:
            if i > last_user:
                continue
            break
        out.append(kept[i])
        used += n
    return out[::-1]


def conversation_of(request: RouteRequest) -> list[dict[str, Any]]:
    return list(request.messages) or [{"role": "user", "content": request.prompt}]


# --- parsing ---------------------------------------------------------------------------------
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_MAX_PARSE_CHARS = 2000
_ROUTE_FIELD = re.compile(r"""["']?route["']?\s*:\s*["']([^"']*)["']""")


@dataclass
class Parsed:
    route: str | None  # a known route name, OTHER, or None
    status: str  # "route" | "other" | "empty" | "unparseable" | "unknown"
    raw: str


def parse_route(text: str | None, names: Sequence[str]) -> Parsed:
    """Forgiving parse of the router's reply: ``{"route": "name"}``, fenced, single-quoted,
    or a bare route name. Unknown names and junk never raise."""
    raw = text or ""
    s = _FENCE.sub("", raw.strip()).strip()
    if not s:
        return Parsed(None, "empty", raw)
    value: Any = None
    # A real answer is a few dozen characters; a babbling model's kilobytes of brackets go
    # to the regex only (the JSON decoder and literal_eval recurse per nesting level).
    for attempt in (s, s.replace("'", '"')) if len(s) <= _MAX_PARSE_CHARS else ():
        try:
            value = json.loads(attempt)
            break
        except (ValueError, RecursionError):
            continue
    if value is None and len(s) <= _MAX_PARSE_CHARS:
        try:
            value = ast.literal_eval(s)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            value = None
    if isinstance(value, dict):
        route = value.get("route")
        value = route if isinstance(route, str) or route is None else str(route)
    elif not isinstance(value, str):
        m = _ROUTE_FIELD.search(s)
        value = m.group(1) if m else (s if s in names or s.lower() == OTHER else None)
    if value is None:
        return Parsed(None, "unparseable", raw)
    name = value.strip()
    if not name:
        return Parsed(None, "empty", raw)
    if name.lower() == OTHER:
        return Parsed(OTHER, "other", raw)
    if name in names:
        return Parsed(name, "route", raw)
    folded = {n.lower(): n for n in names}
    if name.lower() in folded:
        return Parsed(folded[name.lower()], "route", raw)
    return Parsed(None, "unknown", raw)


# --- backends -----------------------------------------------------------------------------------------
@dataclass
class RouterCall:
    conversation: list[dict[str, str]]  # trimmed
    routes: list[Route]


@dataclass
class RouterReply:
    text: str | None  # the router's raw answer (None when the call failed)
    error: str | None = None
    score: float | None = None  # embedding backend: the best cosine
    scores: dict[str, float] | None = None  # embedding backend: cosine per route


class Backend(Protocol):
    name: str

    def route_batch(self, calls: Sequence[RouterCall]) -> list[RouterReply]: ...


# Request-shaped small talk (greetings, thanks, goodbyes): an intent that is irrelevant to
# any route or says the previous one is fulfilled, which Arch-Router answers with "other".
SMALL_TALK = (
    "hello there", "hey, how are you?", "good evening", "thank you so much", "that helps, thanks",
    "perfect, that's exactly what I needed", "nice, it works now", "ok bye", "see you later", "great job",
)


class EmbeddingBackend:
    """Offline: MiniLM cosine of the latest user intent with each route.

    A route is represented by its ``name: description`` and by request-shaped sentences
    made from its name and from each comma-separated part of its description ("Can you
    help me with <part>?"), because user turns are requests, not descriptions; a route's
    score is the best cosine over them. The latest user turn decides alone when its best
    score reaches ``threshold``; otherwise the earlier user turns are mixed in (weight
    ``context_weight``) to read a follow-up ("and 23% of it?"). Below ``threshold``, or
    when the latest turn is closer to small talk (:data:`SMALL_TALK`) than to every
    route, the answer is ``other``.
    """

    name = "embedding"

    def __init__(self, threshold: float = 0.25, context_weight: float = 0.5,
                 embed_fn: Callable[[Sequence[str]], np.ndarray] | None = None) -> None:
        self.threshold, self.context_weight = threshold, context_weight
        self.embed_fn = embed_fn
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        fn = self.embed_fn
        if fn is None:
            from switchyard.embeddings import get_embedder

            fn = get_embedder().encode
        todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if todo:
            vecs = np.asarray(fn(todo), dtype=np.float32)
            with self._lock:
                if len(self._cache) > 100_000:
                    self._cache.clear()
                for t, v in zip(todo, vecs, strict=True):
                    self._cache[t] = v / max(float(np.linalg.norm(v)), 1e-12)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)

    @staticmethod
    def route_texts(route: Route) -> list[str]:
        name = route.name.replace("_", " ").replace("-", " ").strip()
        parts = [p.strip() for p in re.split(r"[,;]", route.description) if p.strip()]
        return [f"{name}: {route.description}", f"Can you help me with {name}?",
                *[f"Can you help me with {p}?" for p in parts]]

    def route_scores(self, q: np.ndarray, routes: Sequence[Route]) -> np.ndarray:
        """Best cosine per route of a unit query [384]. Shape: [R]."""
        return np.array([float((self._embed(self.route_texts(r)) @ q).max()) for r in routes])

    @staticmethod
    def intents(call: RouterCall) -> tuple[str, str]:
        """(the last user turn, the earlier user turns joined) of a trimmed conversation."""
        users = [m["content"] for m in call.conversation if m["role"] == "user"]
        if not users:
            return "", ""
        return users[-1], "\n".join(users[:-1])[-2000:]

    def route_batch(self, calls: Sequence[RouterCall]) -> list[RouterReply]:
        if not calls:
            return []
        intents = [self.intents(c) for c in calls]
        texts = [t for pair in intents for t in pair if t]
        vec = dict(zip(texts, self._embed(texts), strict=True)) if texts else {}
        talk = self._embed(list(SMALL_TALK))  # [S, 384]
        out = []
        for call, (last, earlier) in zip(calls, intents, strict=True):
            if not last:
                out.append(RouterReply(text="", error="no user message"))
                continue
            cos = self.route_scores(vec[last], call.routes)  # [R]
            small_talk = float((talk @ vec[last]).max())
            used_context = False
            if cos.max() < self.threshold and earlier and small_talk < cos.max():
                q = vec[last] + self.context_weight * vec[earlier]
                cos = self.route_scores(q / max(float(np.linalg.norm(q)), 1e-12), call.routes)
                used_context = True
            best = int(np.argmax(cos))
            matched = cos[best] >= self.threshold and small_talk < cos[best]
            name = call.routes[best].name if matched else OTHER
            scores = {r.name: round(float(c), 4) for r, c in zip(call.routes, cos, strict=True)}
            scores["_small_talk"] = round(small_talk, 4)
            if used_context:
                scores["_used_context"] = 1.0
            out.append(RouterReply(text=json.dumps({"route": name}), score=float(cos[best]), scores=scores))
        return out


class HFBackend:
    """A local Arch-Router checkpoint: batched, left-padded greedy generation."""

    name = "hf"

    def __init__(self, model: str, *, gguf_file: str | None = None, max_new_tokens: int = 32, batch_size: int = 8,
                 device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from switchyard.tagging.hf import resolve_model

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        path, gguf = resolve_model(model, gguf_file)
        kwargs: dict[str, Any] = {"local_files_only": True}
        if gguf:
            kwargs["gguf_file"] = gguf
        try:
            tok: Any = AutoTokenizer.from_pretrained(path, **kwargs)
            lm: Any = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"arch hf backend: cannot load {model!r} locally (a directory, a cached model id "
                              f"or a .gguf; nothing is downloaded): {exc}") from exc
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if tok.pad_token is None:
            raise ConfigError(f"arch hf backend: tokenizer of {model!r} has neither a pad nor an eos token")
        self.tokenizer, self.model = tok, lm.to(self.device).eval()
        self.max_new_tokens, self.batch_size = max_new_tokens, max(1, batch_size)
        stop = {tok.eos_token_id, tok.pad_token_id, getattr(lm.generation_config, "eos_token_id", None)}
        self._stop: set[int] = set()
        for s in stop:
            if isinstance(s, int):
                self._stop.add(s)
            elif isinstance(s, list | tuple):
                self._stop.update(x for x in s if isinstance(x, int))
        self._lock = threading.Lock()

    def render(self, call: RouterCall) -> str:
        prompt = format_prompt([r.prompt_entry() for r in call.routes], call.conversation)
        messages = [{"role": "user", "content": prompt}]
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            if isinstance(text, str):
                return text
        return prompt

    def route_batch(self, calls: Sequence[RouterCall]) -> list[RouterReply]:
        ids = [self.tokenizer(self.render(c), add_special_tokens=False)["input_ids"] for c in calls]
        order = sorted(range(len(calls)), key=lambda i: -len(ids[i]))
        out: list[RouterReply] = [RouterReply(text=None, error="not run")] * len(calls)
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                try:
                    texts = self.generate([ids[i] for i in chunk])
                    for i, t in zip(chunk, texts, strict=True):
                        out[i] = RouterReply(text=t)
                except Exception as e:
                    log.warning("arch hf backend: generation failed: %s", e)
                    for i in chunk:
                        out[i] = RouterReply(text=None, error=f"generation failed: {e}")
        return out

    def generate(self, batch: list[list[int]]) -> list[str]:
        """Greedy continuation of each token list; one left-padded ``generate`` call."""
        import torch

        pad = self.tokenizer.pad_token_id
        width = max(len(x) for x in batch)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in batch], device=self.device)  # [B, T]
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in batch], device=self.device)  # [B, T]
        with torch.inference_mode():
            gen = self.model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=self.max_new_tokens,
                                      do_sample=False, num_beams=1, temperature=None, top_p=None, top_k=None,
                                      pad_token_id=pad)  # [B, T + T_new]
        texts = []
        for row in gen[:, width:].tolist():
            cut = next((k for k, t in enumerate(row) if t in self._stop), len(row))
            texts.append(str(self.tokenizer.decode(row[:cut], skip_special_tokens=True)).strip())
        return texts


class OpenAIBackend:
    """An OpenAI-compatible endpoint serving the router (the gateway's temperature 0.01)."""

    name = "openai"

    def __init__(self, base_url: str, model: str, *, api_key_env: str | None = None, timeout_s: float = 30.0,
                 max_new_tokens: int = 32, concurrency: int = 8) -> None:
        from switchyard.catalog import ProviderConfig
        from switchyard.providers.openai import OpenAIProvider

        self.model, self.max_new_tokens, self.timeout_s = model, max_new_tokens, timeout_s
        self.concurrency = max(1, concurrency)
        self.provider = OpenAIProvider(ProviderConfig(name="arch-router", kind="openai", base_url=base_url,
                                                      api_key_env=api_key_env, timeout_s=timeout_s))

    def route_batch(self, calls: Sequence[RouterCall]) -> list[RouterReply]:
        from switchyard.providers.base import ChatCall

        def one(call: RouterCall) -> RouterReply:
            prompt = format_prompt([r.prompt_entry() for r in call.routes], call.conversation)
            try:
                res = self.provider.complete(ChatCall(model=self.model, max_tokens=self.max_new_tokens,
                                                      messages=[{"role": "user", "content": prompt}],
                                                      params={"temperature": 0.01}, timeout_s=self.timeout_s))
                return RouterReply(text=res.text)
            except Exception as e:
                return RouterReply(text=None, error=f"router call failed: {e}")

        if len(calls) <= 1:
            return [one(c) for c in calls]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(calls))) as pool:
            return list(pool.map(one, calls))


def make_backend(kind: str, **kwargs: Any) -> Backend:
    """A backend from settings (``arch_*``), overridden by ``kwargs``."""
    from switchyard.config import get_settings

    s = get_settings()
    if kind == "embedding":
        return EmbeddingBackend(threshold=kwargs.get("threshold", s.arch_threshold),
                                embed_fn=kwargs.get("embed_fn"))
    if kind == "hf":
        return HFBackend(kwargs.get("model") or s.arch_model, gguf_file=kwargs.get("gguf_file"),
                         max_new_tokens=kwargs.get("max_new_tokens") or s.arch_max_new_tokens,
                         batch_size=kwargs.get("batch_size", 8))
    if kind == "openai":
        base_url = kwargs.get("base_url") or s.arch_base_url
        if not base_url:
            raise ConfigError("arch openai backend needs SWITCHYARD_ARCH_BASE_URL (e.g. http://localhost:11434/v1)")
        return OpenAIBackend(base_url, kwargs.get("model") or s.arch_model,
                             api_key_env=kwargs.get("api_key_env", s.arch_api_key_env),
                             timeout_s=kwargs.get("timeout_s", s.arch_timeout_s),
                             max_new_tokens=kwargs.get("max_new_tokens") or s.arch_max_new_tokens)
    raise ConfigError(f"unknown arch backend {kind!r}; choose embedding, hf or openai")


# --- the policy -----------------------------------------------------------------------------------------
@policies.register("arch")
class ArchPolicy:
    """Arch-Router as a routing policy (no knob: one operating point)."""

    name = "arch"
    knob_name = "none"
    knob_default = 0.0

    def __init__(self, config: RouteConfig | None = None, *, routes_path: Path | str | None = None,
                 backend: str | Backend | None = None, token_budget: int | None = None, **backend_kwargs: Any) -> None:
        from switchyard.config import get_settings

        s = get_settings()
        if config is None:
            path = routes_path if routes_path is not None else s.routes_path
            config = RouteConfig.load(Path(path) if path is not None else None)
        self.config = config
        self.token_budget = token_budget or s.arch_token_budget
        self._backend_spec = backend or s.arch_backend
        self._backend_kwargs = backend_kwargs
        self._backend: Backend | None = None if backend is None or isinstance(backend, str) else backend

    def knob_grid(self, n: int = 21) -> list[float]:
        return [0.0]

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            spec = self._backend_spec
            self._backend = make_backend(spec if isinstance(spec, str) else "embedding", **self._backend_kwargs)
        return self._backend

    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        out: list[RouteDecision | None] = [None] * len(requests)
        calls: list[RouterCall] = []
        where: list[int] = []
        for i, r in enumerate(requests):
            try:
                routes = request_routes(r.options.routes) if r.options.routes is not None else self.config.routes
            except ValueError as e:
                out[i] = self._default(r, catalog, f"invalid {e}", fallback=True)
                continue
            calls.append(RouterCall(trim_conversation(conversation_of(r), self.token_budget), routes))
            where.append(i)
        try:
            replies = self.backend.route_batch(calls) if calls else []
        except Exception as e:
            replies = [RouterReply(text=None, error=f"router backend failed: {e}") for _ in calls]
        for i, call, reply in zip(where, calls, replies, strict=True):
            out[i] = self._decide_one(requests[i], call, reply, catalog)
        return [d for d in out if d is not None]

    def _decide_one(self, r: RouteRequest, call: RouterCall, reply: RouterReply, catalog: Catalog) -> RouteDecision:
        details: dict[str, Any] = {"backend": self.backend.name, "raw": reply.text,
                                   "conversation_messages": len(call.conversation)}
        if reply.scores is not None:
            details["similarity"] = reply.scores
        if reply.text is None:
            return self._default(r, catalog, reply.error or "the router gave no answer", fallback=True,
                                 details=details)
        parsed = parse_route(reply.text, [rt.name for rt in call.routes])
        details["route"] = parsed.route
        details["parse"] = parsed.status
        if parsed.status == "other":
            return self._default(r, catalog, "the router answered 'other' (no route matches the latest intent)",
                                 fallback=False, details=details)
        if parsed.route is None:
            why = {"empty": "the router's answer was empty",
                   "unknown": f"the router named an unknown route in {reply.text!r}"}.get(
                       parsed.status, f"the router's answer was unparseable: {reply.text[:80]!r}")
            return self._default(r, catalog, why, fallback=True, details=details)
        route = next(rt for rt in call.routes if rt.name == parsed.route)
        ok = set(eligible_models(r, catalog))
        cands = [m for m in route.models if m in ok]
        if not cands:
            return self._default(r, catalog, f"route {route.name!r} has no eligible model", fallback=True,
                                 details=details)
        chosen = self._select(route, cands, r, catalog)
        ranked = [(m, 1.0 - k / len(cands)) for k, m in enumerate([chosen, *[c for c in cands if c != chosen]])]
        ranked += [(m, 0.0) for m in eligible_models(r, catalog) if m not in cands]
        how = {"none": "first eligible model listed", "cheapest": "cheapest eligible model listed",
               "fastest": "fastest eligible model listed"}[route.selection_policy]
        score = f" (cos {reply.score:.2f})" if reply.score is not None else ""
        return RouteDecision(model=chosen, policy=self.name, knob=None, tags=list(r.tags), ranked=ranked,
                             reason=f"{chosen}: route {route.name!r}{score}, {how}",
                             predicted_cost_usd=catalog.get(chosen).predicted_cost(r.input_tokens), details=details)

    @staticmethod
    def _select(route: Route, cands: list[str], r: RouteRequest, catalog: Catalog) -> str:
        if route.selection_policy == "cheapest":
            return min(cands, key=lambda m: (catalog.get(m).predicted_cost(r.input_tokens), cands.index(m)))
        if route.selection_policy == "fastest":
            lat = {m: catalog.get(m).latency_ms for m in cands}
            return min(cands, key=lambda m: (lat[m] if lat[m] is not None else float("inf"), cands.index(m)))
        return cands[0]

    def _default(self, r: RouteRequest, catalog: Catalog, why: str, *, fallback: bool,
                 details: dict[str, Any] | None = None) -> RouteDecision:
        default = (r.options.model_extra or {}).get("default_model") or self.config.default_model
        details = {**(details or {}), "route": OTHER if not fallback else (details or {}).get("route")}
        if default and default in eligible_models(r, catalog):
            return RouteDecision(model=default, policy=self.name, reason=f"{default}: default model; {why}",
                                 ranked=[(default, 1.0)], tags=list(r.tags), fallback=fallback,
                                 predicted_cost_usd=catalog.get(default).predicted_cost(r.input_tokens),
                                 details=details)
        d = fallback_decision(r, catalog, self.name, f"{why}; default model {default!r} is not eligible")
        d.details.update(details)
        return d
