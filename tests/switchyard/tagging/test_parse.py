"""parse_tags: every answer shape an LLM tagger produces, and junk, never raising."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchyard.tagging.parse import MAX_TAG_WORDS, is_clean_tag, normalize_tag, parse_tags


@pytest.mark.parametrize(("text", "expected"), [
    # a JSON list of strings; case and duplicates are normalised away
    ('["Python", "coding", "python"]', ["python", "coding"]),
    # the TagGenerator / InsTag shape: a list of {"tag", "explanation"} objects
    ('[{"tag": "Email Writing", "explanation": "the user wants an email"}, '
     '{"tag": "Business", "explanation": "a landlord"}]', ["email writing", "business"]),
    # the same cut off by max_new_tokens: complete "tag" fields still count
    ('[{"tag": "math", "explanation": "arithmetic"}, {"tag": "word problem", "expl', ["math", "word problem"]),
    # a fenced JSON block after some prose
    ('Here are the tags:\n```json\n["summarization", "news"]\n```\nHope this helps!', ["summarization", "news"]),
    ('{"tags": ["law", "contracts"]}', ["law", "contracts"]),
    # comma- and newline-separated text, bullets, numbering and a "Tags:" prefix
    ("python, coding, data structures", ["python", "coding", "data structures"]),
    ("- Python\n- Coding\n* Linked lists", ["python", "coding", "linked lists"]),
    ("1. email writing\n2. landlord\n3) heating", ["email writing", "landlord", "heating"]),
    ("Tags: travel; japan; itinerary", ["travel", "japan", "itinerary"]),
    ("python: the query asks for python code\nrecursion", ["python", "recursion"]),
    # surface forms that are real tags survive
    ("C++, C#, Node.js, #hashtag", ["c++", "c#", "node.js", "hashtag"]),
    # junk: nothing, not an error
    ("", []),
    ("   \n\t", []),
    ("[]", []),
    ("[1, 2, 3]", []),
    ("12345, 678, 3.14", []),
    ("\x00\x01]]]{{{", []),
    ("The capital of France is Paris, the city of light and love.", []),
    ("x = none, f(x), $\\frac{1}{2}$", []),
    # a small model answering in prose: clauses are not tags, the noun phrases survive
    ("I'm sorry for any confusion, but as a text-based AI, I cannot help.", []),
    ("The answer is: plants, sandy soil", ["plants", "sandy soil"]),
    ("Hello, IT security, the beatles, and the kaneohe, the answer is", ["it security", "the beatles"]),
])
def test_answer_shapes(text: str, expected: list[str]) -> None:
    assert parse_tags(text) == expected


def test_max_tags_bounds_the_result() -> None:
    text = json.dumps([f"topic {i}x" for i in range(20)])
    assert parse_tags(text, max_tags=5) == [f"topic {i}x" for i in range(5)]


def test_non_string_input_gives_no_tags() -> None:
    assert parse_tags(None) == []  # type: ignore[arg-type]
    assert parse_tags(b"python") == []  # type: ignore[arg-type]


def test_normalize_tag_is_the_single_surface_form() -> None:
    forms = ["Python", " python.", "`python`", '"Python"', "#python", "PYTHON!", "python\n"]
    assert {normalize_tag(f) for f in forms} == {"python"}
    assert normalize_tag("Email_Writing") == "email writing"
    assert normalize_tag("  data   science ") == "data science"


@pytest.mark.parametrize("tag", ["python", "email writing", "c++", "c#", "node.js", "5-day work week",
                                 "q&a", "children's books", "机器学习", "हिन्दी"])
def test_clean_tags(tag: str) -> None:
    assert is_clean_tag(tag)


@pytest.mark.parametrize("tag", ["", "123", "3.14", "x = 1", "f(x", "<div>", "a b c d e f",
                                 "x" * 60, "!!!", "a;b"])
def test_unclean_tags(tag: str) -> None:
    assert not is_clean_tag(tag)


def _check(tags: list[str], max_tags: int = 12) -> None:
    assert isinstance(tags, list) and len(tags) <= max_tags
    assert len(set(tags)) == len(tags)
    for t in tags:
        assert isinstance(t, str) and t == normalize_tag(t) and is_clean_tag(t)
        assert len(t.split()) <= MAX_TAG_WORDS


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_never_raises_on_any_text(text: str) -> None:
    _check(parse_tags(text))


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_json, st.text(max_size=40), st.text(max_size=40), st.integers(0, 200))
def test_never_raises_on_json_like_answers(value: object, before: str, after: str, cut: int) -> None:
    body = json.dumps(value, ensure_ascii=False)
    for text in (body, f"{before}```json\n{body}\n```{after}", body[:cut]):
        _check(parse_tags(text))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.from_regex(r"[a-z]{2,10}( [a-z]{2,10}){0,2}", fullmatch=True).filter(is_clean_tag),
                min_size=1, max_size=8, unique=True))
def test_clean_string_lists_round_trip(tags: list[str]) -> None:
    assert parse_tags(json.dumps(tags)) == tags
    assert parse_tags(json.dumps([{"tag": t, "explanation": "why"} for t in tags])) == tags
    assert parse_tags(", ".join(tags)) == tags
    assert parse_tags("\n".join(f"- {t}" for t in tags)) == tags


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_never_raises_on_decoded_garbage_bytes(raw: bytes) -> None:
    # A model's output bytes cut mid-character come back with replacement characters.
    _check(parse_tags(raw.decode("utf-8", "replace")))


@pytest.mark.parametrize("text", ["[" * 100_000, '[{"tag": ' * 5_000, "x" * 1_000_000, "```" * 30_000,
                                  ", ".join(["python"] * 50_000)])
def test_pathological_answers_are_bounded(text: str) -> None:
    tags = parse_tags(text)
    _check(tags)
