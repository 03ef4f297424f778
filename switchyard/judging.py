"""The LLM judge: versioned prompts, a verdict parser that never raises, position swapping.

Pure (no DB, no provider): :mod:`switchyard.pipeline.judge` calls the judge model and
stores what this module makes of its replies.

Modes
    ``pairwise``: the routed answer against a reference model's answer to the same
    prompt. The judge sees them twice, once as (A = routed, B = reference) and once
    swapped. Both readings agreeing gives ``win`` or ``loss``; disagreeing (order
    bias: a judge that always prefers the first answer) gives ``tie``. A reply that
    cannot be read makes the whole judgement ``unparseable``: stored as such, never
    counted as a loss (the score refresh ignores it).
    ``absolute``: a 1-10 score of the answer alone, normalised to [0, 1] as
    ``(score - 1) / 9`` and stored as a quality.

Every outcome records :data:`JUDGE_VERSION` of its mode; changing a prompt or the
parser means bumping the version, so outcomes from different judges stay apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

PAIRWISE_VERSION = "pairwise-v1"
ABSOLUTE_VERSION = "absolute-v1"
JUDGE_VERSION = {"pairwise": PAIRWISE_VERSION, "absolute": ABSOLUTE_VERSION}
MODES = tuple(JUDGE_VERSION)
UNPARSEABLE = "unparseable"

_SYSTEM = "You are an impartial judge of AI assistant answers. Follow the output format exactly."

PAIRWISE_TEMPLATE = """Compare two answers to the same user request and decide which one is better: more helpful,
correct, relevant and complete. Ignore the order in which they are shown and their length.

[User request]
{prompt}

[Answer A]
{a}

[Answer B]
{b}

Reply with exactly one line: "Verdict: A", "Verdict: B" or "Verdict: tie"."""

ABSOLUTE_TEMPLATE = """Rate the answer to the user request below for helpfulness, correctness, relevance and
completeness, on a scale from 1 (useless) to 10 (excellent).

[User request]
{prompt}

[Answer]
{answer}

Reply with exactly one line: "Score: N" where N is an integer from 1 to 10."""

MAX_CHARS = 6000  # per pasted text: a judge prompt stays within small context windows


def _clip(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + "\n[... truncated]"


def pairwise_messages(prompt: str, a: str, b: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": _SYSTEM},
            {"role": "user", "content": PAIRWISE_TEMPLATE.format(prompt=_clip(prompt), a=_clip(a), b=_clip(b))}]


def absolute_messages(prompt: str, answer: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": _SYSTEM},
            {"role": "user", "content": ABSOLUTE_TEMPLATE.format(prompt=_clip(prompt), answer=_clip(answer))}]


# --- parsing: never raises ----------------------------------------------------------------
_VERDICT = re.compile(r"verdict\s*[:=\-]?\s*\**\s*\[?\s*(a|b|tie|draw|equal)\b", re.I)
_BARE = re.compile(r"^\W*(a|b|tie)\W*$", re.I)
_BETTER = re.compile(r"\banswer\s+(a|b)\s+is\s+better\b", re.I)
_SCORE = re.compile(r"score\s*[:=\-]?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?", re.I)
_RATIO = re.compile(r"^\D*?(\d+(?:\.\d+)?)\s*(?:/\s*10)?\W*$")


def parse_pairwise(text: Any) -> str | None:
    """A judge reply -> ``"A"``, ``"B"``, ``"tie"`` or None (unreadable). Never raises.

    Accepts "Verdict: A" anywhere (the last one wins: models restate their answer at
    the end), a bare "A"/"B"/"tie" reply, or "Answer A is better"."""
    try:
        if not isinstance(text, str):
            return None
        s = text.strip()
        hits = _VERDICT.findall(s)
        if hits:
            return _norm(hits[-1])
        bare = _BARE.match(s)
        if bare:
            return _norm(bare.group(1))
        better = {h.upper() for h in _BETTER.findall(s)}
        return better.pop() if len(better) == 1 else None
    except Exception:  # a parser that raises would lose the outcome: nothing may escape
        return None


def _norm(word: str) -> str:
    w = word.lower()
    return "A" if w == "a" else "B" if w == "b" else "tie"


def parse_score(text: Any) -> float | None:
    """A judge reply -> the 1-10 score normalised to [0, 1], or None. Never raises."""
    try:
        if not isinstance(text, str):
            return None
        s = text.strip()
        hits = _SCORE.findall(s)
        raw = hits[-1] if hits else (m.group(1) if (m := _RATIO.match(s)) else None)
        if raw is None:
            return None
        v = float(raw)
        return (v - 1.0) / 9.0 if 1.0 <= v <= 10.0 else None
    except Exception:
        return None


# --- position swapping --------------------------------------------------------------------
@dataclass
class Judgement:
    """What a judgement becomes: a verdict (pairwise) or a quality (absolute), or unparseable."""

    mode: str
    version: str
    verdict: str | None = None  # win | tie | loss | unparseable (pairwise)
    quality: float | None = None  # [0, 1] (absolute)
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def parsed(self) -> bool:
        return self.verdict not in (None, UNPARSEABLE) or self.quality is not None


def combine_pairwise(first: Any, swapped: Any) -> Judgement:
    """``first``: the reply with (A = routed, B = reference); ``swapped``: with (A = reference,
    B = routed). Agreement gives win/loss/tie; disagreement a tie; unreadable, unparseable."""
    p1, p2 = parse_pairwise(first), parse_pairwise(swapped)
    v1 = {"A": "win", "B": "loss", "tie": "tie"}.get(p1 or "")
    v2 = {"B": "win", "A": "loss", "tie": "tie"}.get(p2 or "")
    if v1 is None or v2 is None:
        verdict = UNPARSEABLE
    elif v1 == v2:
        verdict = v1
    else:
        verdict = "tie"  # the two orders disagree: position bias, not a preference
    detail = {"first": _short(first), "swapped": _short(swapped), "read": [p1, p2],
              "position_bias": v1 is not None and v2 is not None and v1 != v2}
    return Judgement("pairwise", PAIRWISE_VERSION, verdict=verdict, detail=detail)


def combine_absolute(reply: Any) -> Judgement:
    q = parse_score(reply)
    return Judgement("absolute", ABSOLUTE_VERSION, verdict=None if q is not None else UNPARSEABLE, quality=q,
                     detail={"reply": _short(reply)})


def _short(x: Any, n: int = 300) -> str:
    s = str(x or "")
    return s if len(s) <= n else s[:n] + "..."
