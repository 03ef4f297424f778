"""Validation of job input lines: every bad case gives a line number, a field and a fix."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.catalog import Catalog
from switchyard.jobs import LineError, ParsedLine, parse_line, plan_shards, validate_lines

CATALOG = Catalog.model_validate({
    "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
    "models": [{"id": "small", "provider": "p", "context_length": 50}, {"id": "big", "provider": "p"}],
})


def run(*lines: str | bytes, max_tokens: int = 1000) -> list[ParsedLine | LineError]:
    raw = [x if isinstance(x, bytes) else x.encode() for x in lines]
    return validate_lines(raw, CATALOG, max_prompt_tokens=max_tokens, policy_ok=lambda p: p == "tagrouter")


def batch_line(cid: str, model: str = "switchyard/auto", content: str = "hello", **extra: object) -> str:
    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": model, "messages": [{"role": "user", "content": content}]}, **extra})


def test_batch_and_short_forms_parse() -> None:
    a, b = run(batch_line("a", routing={"policy": "tagrouter", "max_cost_usd": 0.1}),
               json.dumps({"custom_id": "b", "prompt": "hi there"}))
    assert isinstance(a, ParsedLine) and a.model == "switchyard/auto" and a.routing == {
        "policy": "tagrouter", "max_cost_usd": 0.1}
    assert isinstance(b, ParsedLine) and b.messages == [{"role": "user", "content": "hi there"}]
    assert a.input_tokens > 0 and b.prompt == "hi there"


@pytest.mark.parametrize(("line", "field", "words"), [
    ('{"custom_id": "x", "prompt": ', None, "not valid JSON"),
    ('["a list"]', None, "JSON object"),
    ('{"prompt": "no id"}', "custom_id", "custom_id"),
    ('{"custom_id": "x"}', "body", "body"),
    (batch_line("x", model="gpt-99"), "body.model", "unknown model"),
    ('{"custom_id": "x", "method": "GET", "body": {}}', "method", "POST"),
    ('{"custom_id": "x", "url": "/v1/embeddings", "body": {}}', "url", "/v1/chat/completions"),
    ('{"custom_id": "x", "body": {"model": "big", "messages": []}}', "body.messages", "non-empty"),
    ('{"custom_id": "x", "body": {"model": "big", "messages": [{"role": "robot", "content": "x"}]}}',
     "body.messages[0].role", "role"),
    ('{"custom_id": "x", "body": {"model": "big", "messages": [{"role": "user", "content": "x"}], '
     '"max_tokens": -1}}', "body.max_tokens", "positive"),
    (batch_line("x", routing={"policy": "nope"}), "routing.policy", "unknown policy"),
    (batch_line("x", routing={"max_cost_usd": "cheap"}), "routing.max_cost_usd", "number"),
    (batch_line("x", routing={"deny": ["gpt-99"]}), "routing.deny", "not in the catalog"),
    ("   ", None, "blank line"),
])
def test_each_bad_line_names_its_field(line: str, field: str | None, words: str) -> None:
    (err,) = run(line)
    assert isinstance(err, LineError), err
    assert err.line_no == 1 and err.field == field
    assert words in err.message


def test_bad_lines_do_not_sink_the_rest() -> None:
    out = run(batch_line("a"), "{oops", batch_line("a", content="again"), b"\xff\xfe not utf8", batch_line("c"))
    kinds = [type(x).__name__ for x in out]
    assert kinds == ["ParsedLine", "LineError", "LineError", "LineError", "ParsedLine"]
    dup = out[2]
    assert isinstance(dup, LineError) and dup.code == "duplicate_custom_id" and "line 1" in dup.message
    assert isinstance(out[3], LineError) and "UTF-8" in out[3].message


def test_empty_file_is_one_error() -> None:
    (err,) = run()
    assert isinstance(err, LineError) and err.code == "empty_file" and err.line_no == 1


def test_over_long_prompt_rejected_by_global_cap_and_model_context() -> None:
    long = "word " * 200
    a, b, c = run(batch_line("a", content=long), batch_line("b", model="small", content="word " * 60),
                  batch_line("c", model="big", content="word " * 60), max_tokens=150)
    assert isinstance(a, LineError) and a.code == "prompt_too_long" and "150" in a.message
    assert isinstance(b, LineError) and "50" in b.message  # the small model's context length
    assert isinstance(c, ParsedLine)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    (res,) = run(raw.replace(b"\n", b" ")) or [None]
    assert isinstance(res, ParsedLine | LineError)


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=30))
def test_arbitrary_json_gives_parsed_or_error(obj: object) -> None:
    (res,) = run(json.dumps(obj))
    assert isinstance(res, ParsedLine | LineError)
    if isinstance(res, LineError):
        assert res.message


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    (res,) = run("[" * 100_000 + "]" * 100_000)
    assert isinstance(res, LineError)


def test_shards_sorted_by_length_and_capped() -> None:
    items = [(i, n) for i, n in enumerate([5, 100, 1, 50, 7, 3, 300])]
    shards = plan_shards(items, batch_size=3, max_tokens=120)
    assert sorted(k for s in shards for k in s) == list(range(7))
    assert all(len(s) <= 3 for s in shards)
    lengths = [dict(items)[k] for s in shards for k in s]
    assert lengths == sorted(lengths)
    for s in shards:
        assert len(s) == 1 or sum(dict(items)[k] for k in s) <= 120


# --- property tests: a wrong type in any field is a LineError naming that field ---------------
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=12)


def _with(path: tuple[str | int, ...], value: object) -> dict[str, object]:
    """A valid batch line with the value at ``path`` replaced."""
    line: dict[str, object] = json.loads(batch_line("c1"))
    node: object = line
    for key in path[:-1]:
        node = node[key]  # type: ignore[index]
    node[path[-1]] = value  # type: ignore[index]
    return line


# (path into the line, the field the error must name)
_FIELDS = [
    (("custom_id",), "custom_id"),
    (("method",), "method"),
    (("url",), "url"),
    (("body",), "body"),
    (("body", "model"), "body.model"),
    (("body", "messages"), "body.messages"),
    (("body", "messages", 0), "body.messages[0]"),
    (("body", "messages", 0, "role"), "body.messages[0].role"),
    (("body", "messages", 0, "content"), "body.messages[0].content"),
    (("body", "max_tokens"), "body.max_tokens"),
    (("routing",), "routing"),
]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_FIELDS), _json_values, st.integers(1, 10_000))
def test_any_value_in_any_field_is_parsed_or_names_that_field(where: tuple[tuple[str | int, ...], str],
                                                              value: object, line_no: int) -> None:
    path, field = where
    res = parse_line(json.dumps(_with(path, value)).encode(), line_no, CATALOG)
    assert isinstance(res, ParsedLine | LineError)
    if isinstance(res, LineError):
        assert res.line_no == line_no and res.message
        assert res.field is not None and res.field.startswith(field.split("[")[0]), (res.field, field)
        assert f"line {line_no}:" in res.describe("in.jsonl")


@settings(max_examples=150, deadline=None)
@given(_json_values, _json_values)
def test_content_parts_of_any_shape_never_crash(text: object, kind: object) -> None:
    line = _with(("body", "messages", 0, "content"), [{"type": kind, "text": text}, {"type": "text", "text": "hi"}])
    res = parse_line(json.dumps(line).encode(), 3, CATALOG)
    assert isinstance(res, ParsedLine | LineError)
    if isinstance(res, LineError):
        assert res.field and res.field.startswith("body.messages[0].content"), res


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=1, max_size=40).filter(lambda b: not _utf8(b)), st.integers(0, 20))
def test_invalid_utf8_anywhere_is_a_clear_error(junk: bytes, at: int) -> None:
    good = batch_line("c1").encode()
    (res,) = run(good[:at] + junk + good[at:])
    assert isinstance(res, LineError) and "UTF-8" in res.message and res.line_no == 1


def _utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_huge_lines_are_refused_without_parsing() -> None:
    from switchyard.jobs import MAX_LINE_BYTES

    huge = batch_line("c1", content="x" * (MAX_LINE_BYTES + 10))
    res = parse_line(huge.encode(), 7, CATALOG)
    assert isinstance(res, LineError) and res.line_no == 7 and "byte limit" in res.message


@settings(max_examples=30, deadline=None)
@given(st.integers(50, 200_000), st.sampled_from(["[", "{\"a\":"]))
def test_deep_nesting_of_any_depth_is_an_error(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    res = parse_line((opener * depth + "1" + closer * depth).encode(), 2, CATALOG)
    assert isinstance(res, LineError) and res.line_no == 2
