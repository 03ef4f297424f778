"""Turn a tagger's free-form output into clean, normalised tags.

LLM taggers (the TagRouter paper's TagGenerator, small instruct models) answer in
many shapes: a JSON list of strings, a JSON list of ``{"tag", "explanation"}``
objects, the same inside a ```json fence or after some prose, a JSON list cut off
by ``max_new_tokens``, or plain bullet / comma lists. :func:`parse_tags` accepts
all of them and never raises: a tagger that babbles yields fewer tags, not an error.

:func:`normalize_tag` is the single definition of a tag's surface form; the
vocabulary uses it too, so "Python", " python." and "`python`" are one tag.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

MAX_TAG_CHARS = 48
MAX_TAG_WORDS = 5
# Bound the work on pathological inputs (a model that emits 50 kB of brackets).
_MAX_INPUT_CHARS = 20_000
_MAX_JSON_ATTEMPTS = 8

# Characters stripped from both ends. "+" and "#" are kept (c++, c#), "." is
# stripped at the end only through this set, so "node.js" survives.
_EDGE_CHARS = " \t\r\n\"'`´‘’“”«»「」『』【】()[]{}<>.,;:!?*_~|/\\=-–—•·、，。；：！？"
# The only non-alphanumeric characters a tag may hold: c++, c#, node.js, e-mail,
# q&a, tcp/ip, 20%, children's.
_INNER_CHARS = frozenset("+#.-'’&/%")
# A tag is a noun phrase. Small instruct models answer in sentences instead, and a
# comma split leaves clauses ("i'm sorry for any confusion", "the answer is"): a
# phrase that opens with a pronoun, conjunction or greeting, or ends dangling on a
# verb, article or preposition, is a clause, not a tag. ("it" is missing on purpose:
# "it security".)
_CLAUSE_START = frozenset({
    "i", "i'm", "i'll", "i've", "i'd", "you", "you're", "your", "we", "we're", "they", "they're", "he", "she",
    "this", "these", "those", "and", "but", "or", "so", "because", "if", "then", "hello", "hi", "hey", "sorry",
    "please", "yes", "here", "there", "which", "who", "whose", "that", "it's",
})
_CLAUSE_END = frozenset({"is", "are", "was", "were", "be", "am", "the", "a", "an", "of", "to", "and", "or", "with",
                         "for"})
_WS = re.compile(r"\s+")
_FENCE = re.compile(r"```[a-zA-Z]*\s*(.*?)```", re.DOTALL)
# A "tag" field in a (possibly truncated) JSON object list.
_TAG_FIELD = re.compile(r'"tag"\s*:\s*"((?:[^"\\]|\\.)*)"')
_BULLET = re.compile(r"^\s*(?:[-*•·+>]+|\(?\d{1,3}[.)](?!\d)|#{1,6})\s*")
_LABEL_PREFIX = re.compile(r"^\s*(?:tags?|keywords?|labels?)\s*[:：]\s*", re.IGNORECASE)
_SPLIT = re.compile(r"[,;\n，、；]")


def normalize_tag(s: str) -> str:
    """Canonical surface form: NFKC, lowercase, single spaces, no edge quotes/punctuation."""
    s = unicodedata.normalize("NFKC", s).replace("_", " ").lower()
    s = _WS.sub(" ", s).strip(_EDGE_CHARS)
    # A leading hashtag is decoration; a trailing "#" is a language name (c#).
    return s.lstrip("#").strip(_EDGE_CHARS)


def is_clean_tag(tag: str) -> bool:
    """True for a normalised tag a person could have written (not junk or a sentence)."""
    if not tag or len(tag) > MAX_TAG_CHARS or len(tag.split()) > MAX_TAG_WORDS:
        return False
    if not any(ch.isalpha() for ch in tag):
        return False
    words = tag.split()
    if words[0] in _CLAUSE_START or (len(words) > 1 and words[-1] in _CLAUSE_END):
        return False
    if any(not (ch.isalnum() or ch.isspace() or ch in _INNER_CHARS or unicodedata.category(ch)[0] == "M")
           for ch in tag):
        return False  # code, markup or formulas: "x = none", "f(x", "<div>"
    visible = [ch for ch in tag if not ch.isspace()]
    # "+" and "#" count as word characters ("c++" and "c#" are real tags), and so do the
    # combining marks of Indic and other scripts.
    alnum = sum(ch.isalnum() or ch in "+#" or unicodedata.category(ch)[0] == "M" for ch in visible)
    return alnum >= 0.6 * len(visible)


def parse_tags(text: str, max_tags: int = 12) -> list[str]:
    """Extract up to ``max_tags`` clean, unique, normalised tags from ``text``. Never raises."""
    try:
        return _clean(_candidates(text if isinstance(text, str) else ""), max_tags)
    except Exception:  # a parser bug must never take a routing batch down
        return []


def _candidates(text: str) -> list[str]:
    text = text[:_MAX_INPUT_CHARS]
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    for source in (body, text) if fenced else (text,):
        items = _json_items(source)
        if items:
            return items
    fields = [_unescape(m) for m in _TAG_FIELD.findall(text)]
    if fields:  # a JSON object list truncated by max_new_tokens
        return fields
    return _split_plain(body)


def _json_items(text: str) -> list[str]:
    """Strings from the first parseable JSON array in ``text`` (or a dict holding one)."""
    decoder = json.JSONDecoder()
    start = text.find("[")
    attempts = 0
    while start != -1 and attempts < _MAX_JSON_ATTEMPTS:
        attempts += 1
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("[", start + 1)
            continue
        items = [s for s in (_item_text(v) for v in value) if s] if isinstance(value, list) else []
        if items:
            return items
        start = text.find("[", start + 1)
    return _json_object_items(text)


def _json_object_items(text: str) -> list[str]:
    """``{"tags": [...]}``-shaped answers."""
    start = text.find("{")
    if start == -1:
        return []
    try:
        value, _ = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return []
    if isinstance(value, dict):
        for v in value.values():
            if isinstance(v, list):
                return [s for s in (_item_text(x) for x in v) if s]
    return []


def _item_text(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        for key in ("tag", "name", "label", "keyword"):
            if isinstance(item.get(key), str):
                return str(item[key])
        first = next((v for v in item.values() if isinstance(v, str)), "")
        return first
    return ""


def _unescape(s: str) -> str:
    try:
        return str(json.loads(f'"{s}"'))
    except ValueError:
        return s


def _split_plain(text: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        line = _LABEL_PREFIX.sub("", _BULLET.sub("", line))
        for piece in _SPLIT.split(line):
            piece = _BULLET.sub("", piece)
            # "python: the query is about python" -> "python"; "the answer is: plants" -> "plants"
            head, sep, tail = piece.partition(": ")
            if not sep:
                out.append(piece)
            elif len(head.split()) <= MAX_TAG_WORDS and is_clean_tag(normalize_tag(head)):
                out.append(head)
            else:
                out.append(tail)
    return out


def _clean(raw: list[str], max_tags: int) -> list[str]:
    seen: set[str] = set()
    tags: list[str] = []
    for item in raw:
        tag = normalize_tag(item)
        if tag in seen or not is_clean_tag(tag):
            continue
        seen.add(tag)
        tags.append(tag)
        if len(tags) >= max_tags:
            break
    return tags
