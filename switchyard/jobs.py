"""Job input lines (OpenAI Batch format) -> validated requests; output and error line shapes.

Input, one JSON object per line, either the OpenAI Batch form::

    {"custom_id": "a", "method": "POST", "url": "/v1/chat/completions",
     "body": {"model": "switchyard/auto", "messages": [...], "max_tokens": 64},
     "routing": {"policy": "tagrouter", "max_cost_usd": 0.01, "flags": {...}}}

or the short form ``{"custom_id": "a", "prompt": "..."}``.

Validation never stops at the first bad line: :func:`validate_lines` returns, for every
input line, either a :class:`ParsedLine` or a :class:`LineError` naming the line
number, the field and the fix. Every input line ends in exactly one output or error line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from pydantic import ValidationError

from switchyard import AUTO_MODEL
from switchyard.catalog import Catalog
from switchyard.routing.base import RoutingOptions
from switchyard.tokens import count_batch

ENDPOINT = "/v1/chat/completions"
ROLES = {"system", "developer", "user", "assistant", "tool"}
MAX_LINE_BYTES = 4 * 1024 * 1024


@dataclass
class ParsedLine:
    line_no: int
    custom_id: str
    model: str  # AUTO_MODEL or a catalog id
    messages: list[dict[str, Any]]
    body: dict[str, Any]
    routing: dict[str, Any] | None
    prompt: str  # the latest user message, as text
    input_tokens: int = 0


@dataclass
class LineError:
    line_no: int
    message: str
    field: str | None = None
    custom_id: str | None = None
    code: str = "invalid_input"
    extra: dict[str, Any] = dc_field(default_factory=dict)

    def describe(self, file: str | None = None) -> str:
        where = f"{file}:" if file else ""
        fld = f" field '{self.field}':" if self.field else ""
        return f"{where}line {self.line_no}:{fld} {self.message}"


class _Bad(Exception):
    def __init__(self, message: str, fld: str | None = None, code: str = "invalid_input") -> None:
        super().__init__(message)
        self.message, self.field, self.code = message, fld, code


def message_text(content: Any) -> str:
    """The text of a chat message ``content``: a string or a list of text parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p["text"] for p in content
                         if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""


def _check_messages(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list) or not messages:
        raise _Bad("must be a non-empty list of {role, content} objects", "body.messages")
    for i, m in enumerate(messages):
        fld = f"body.messages[{i}]"
        if not isinstance(m, dict):
            raise _Bad("must be an object with 'role' and 'content'", fld)
        role = m.get("role")
        if not isinstance(role, str) or role not in ROLES:  # a list or object is not hashable: check type first
            raise _Bad(f"role must be one of {sorted(ROLES)}, not {_short(role)}", f"{fld}.role")
        content = m.get("content")
        if content is not None and not isinstance(content, str | list):
            raise _Bad("content must be a string or a list of content parts", f"{fld}.content")
        if isinstance(content, list):
            _check_parts(content, f"{fld}.content")
    if not any(m["role"] == "user" and message_text(m.get("content")).strip() for m in messages):
        raise _Bad("needs at least one user message with text", "body.messages")
    return messages


def _check_parts(parts: list[Any], fld: str) -> None:
    for j, p in enumerate(parts):
        if not isinstance(p, dict) or not isinstance(p.get("type"), str):
            raise _Bad("each content part must be an object with a string 'type'", f"{fld}[{j}]")
        if p["type"] == "text" and not isinstance(p.get("text"), str):
            raise _Bad("a text part needs a string 'text'", f"{fld}[{j}].text")


def _short(value: Any, limit: int = 60) -> str:
    """A value for an error message, cut short: bad input may be megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_custom_id(obj: dict[str, Any]) -> str:
    cid = obj.get("custom_id")
    if not isinstance(cid, str) or not cid.strip():
        raise _Bad("needs a non-empty string custom_id (your key for this request)", "custom_id")
    if len(cid) > 512:
        raise _Bad("custom_id is longer than 512 characters; shorten it", "custom_id")
    return cid


def _check_body(obj: dict[str, Any]) -> tuple[str, list[dict[str, Any]], dict[str, Any]]:
    if "prompt" in obj and "body" not in obj:  # the short form
        prompt = obj["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise _Bad("must be a non-empty string", "prompt")
        model = obj.get("model", AUTO_MODEL)
        if not isinstance(model, str):
            raise _Bad("must be a string", "model")
        messages = [{"role": "user", "content": prompt}]
        short: dict[str, Any] = {"model": model, "messages": messages}
        if "max_tokens" in obj:
            mt = obj["max_tokens"]
            if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
                raise _Bad("must be a positive integer", "max_tokens")
            short["max_tokens"] = mt
        return model, messages, short
    if obj.get("method", "POST") != "POST":
        raise _Bad(f"method must be 'POST', not {_short(obj.get('method'))}", "method")
    if obj.get("url", ENDPOINT) != ENDPOINT:
        raise _Bad(f"url must be '{ENDPOINT}', not {_short(obj.get('url'))}", "url")
    body = obj.get("body")
    if not isinstance(body, dict):
        raise _Bad("needs a 'body' object (or use the short form {\"custom_id\", \"prompt\"})", "body")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise _Bad(f"needs a model id, or '{AUTO_MODEL}' to let Switchyard route", "body.model")
    messages = _check_messages(body.get("messages"))
    mt = body.get("max_tokens", body.get("max_completion_tokens"))
    if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 1):
        raise _Bad("must be a positive integer", "body.max_tokens")
    return model, messages, body


def _check_routing(obj: dict[str, Any], catalog: Catalog, policy_ok: Callable[[str], bool]) -> dict[str, Any] | None:
    raw = obj.get("routing")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _Bad("must be an object like {\"policy\": \"tagrouter\", \"max_cost_usd\": 0.01}", "routing")
    try:
        opts = RoutingOptions.model_validate(raw)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(x) for x in err["loc"])
        raise _Bad(err["msg"], f"routing.{loc}") from None
    if opts.policy is not None and not policy_ok(opts.policy):
        raise _Bad(f"unknown policy {_short(opts.policy)}; run 'switchyard route --help' for the list",
                   "routing.policy")
    for key in ("allow", "deny"):
        for m in getattr(opts, key) or []:
            if m not in catalog:
                raise _Bad(f"model {_short(m)} is not in the catalog", f"routing.{key}", code="unknown_model")
    return raw


def parse_line(raw: bytes, line_no: int, catalog: Catalog,
               policy_ok: Callable[[str], bool] = lambda _: True) -> ParsedLine | LineError:
    """Parse and check one line; never raises."""
    cid: str | None = None
    try:
        if len(raw) > MAX_LINE_BYTES:
            raise _Bad(f"line is {len(raw)} bytes, over the {MAX_LINE_BYTES}-byte limit; split the prompt")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise _Bad(f"not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8") from None
        if not text.strip():
            raise _Bad("blank line; remove it (each line must be one JSON request)")
        try:
            obj = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as e:
            raise _Bad(f"not valid JSON ({getattr(e, 'msg', 'too deeply nested')})", code="invalid_json") from None
        if not isinstance(obj, dict):
            raise _Bad("each line must be a JSON object")
        cid = _check_custom_id(obj)
        model, messages, body = _check_body(obj)
        if model != AUTO_MODEL and model not in catalog:
            raise _Bad(f"unknown model {_short(model)}; use '{AUTO_MODEL}' or one of: {', '.join(catalog.ids())}",
                       "body.model", code="unknown_model")
        routing = _check_routing(obj, catalog, policy_ok)
    except _Bad as b:
        return LineError(line_no, b.message, b.field, cid, b.code)
    prompt = next(message_text(m.get("content")) for m in reversed(messages) if m["role"] == "user")
    return ParsedLine(line_no, cid, model, messages, body, routing, prompt)


def validate_lines(lines: Iterable[bytes], catalog: Catalog, *, max_prompt_tokens: int,
                   policy_ok: Callable[[str], bool] = lambda _: True) -> list[ParsedLine | LineError]:
    """Validate a whole file. Returns one entry per input line, in order (line numbers from 1).

    An empty file yields a single error for line 1, so the job still reports why it did nothing.
    """
    results: list[ParsedLine | LineError] = []
    seen: dict[str, int] = {}
    for line_no, raw in enumerate(lines, start=1):
        r = parse_line(raw.rstrip(b"\r\n"), line_no, catalog, policy_ok)
        if isinstance(r, ParsedLine):
            if r.custom_id in seen:
                r = LineError(line_no, f"duplicate custom_id {r.custom_id!r} (first on line {seen[r.custom_id]});"
                              " custom_ids must be unique in a job", "custom_id", r.custom_id, "duplicate_custom_id")
            else:
                seen[r.custom_id] = line_no
        results.append(r)
    if not results:
        return [LineError(1, "the file is empty; add one JSON request per line", code="empty_file")]
    _count_and_cap(results, catalog, max_prompt_tokens)
    return results


def _count_and_cap(results: list[ParsedLine | LineError], catalog: Catalog, max_prompt_tokens: int) -> None:
    """Exact token counts in one batched call, then reject over-long prompts."""
    parsed = [(i, r) for i, r in enumerate(results) if isinstance(r, ParsedLine)]
    texts = ["\n".join(message_text(m.get("content")) for m in r.messages) for _, r in parsed]
    counts = count_batch(texts)
    for (i, r), n in zip(parsed, counts, strict=True):
        r.input_tokens = int(n)
        limit = max_prompt_tokens if r.model == AUTO_MODEL else min(max_prompt_tokens,
                                                                     catalog.get(r.model).context_length)
        if n > limit:
            results[i] = LineError(r.line_no, f"prompt is {n} tokens, over the limit of {limit}; shorten it",
                                   "body.messages", r.custom_id, "prompt_too_long")


# --- output shapes (OpenAI batch output + the "switchyard" extension) ------------------------------
def chat_completion(*, completion_id: str, model: str, text: str, finish_reason: str, prompt_tokens: int,
                    completion_tokens: int, created: int) -> dict[str, Any]:
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason, "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


def output_line(*, request_id: int, custom_id: str, body: dict[str, Any],
                switchyard: dict[str, Any]) -> dict[str, Any]:
    return {"id": f"batch_req_{request_id}", "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": f"req_{request_id}", "body": body},
            "error": None, "switchyard": switchyard}


def error_line(*, request_id: int | None, custom_id: str | None, line_no: int, code: str, message: str,
               status_code: int | None = None, switchyard: dict[str, Any] | None = None) -> dict[str, Any]:
    response = None
    if status_code is not None:
        response = {"status_code": status_code, "request_id": f"req_{request_id}",
                    "body": {"error": {"code": code, "message": message}}}
    line: dict[str, Any] = {"id": f"batch_req_{request_id}" if request_id is not None else None,
                            "custom_id": custom_id, "line": line_no, "response": response,
                            "error": {"code": code, "message": message, "line": line_no}}
    if switchyard:
        line["switchyard"] = switchyard
    return line


def plan_shards(items: Sequence[tuple[int, int]], *, batch_size: int, max_tokens: int) -> list[list[int]]:
    """Group ``(key, tokens)`` into shards: sorted by length (less padding in batched
    tagging), at most ``batch_size`` items and about ``max_tokens`` summed tokens each
    (a single over-cap item still gets a shard of its own)."""
    shards: list[list[int]] = []
    cur: list[int] = []
    cur_tokens = 0
    for key, n in sorted(items, key=lambda kv: (kv[1], kv[0])):
        if cur and (len(cur) >= batch_size or cur_tokens + n > max_tokens):
            shards.append(cur)
            cur, cur_tokens = [], 0
        cur.append(key)
        cur_tokens += n
    if cur:
        shards.append(cur)
    return shards
