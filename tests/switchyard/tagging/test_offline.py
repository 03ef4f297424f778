"""The offline tagger on the real MiniLM: human-readable tags, batch-independent, never raising."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.embeddings import Embedder, get_embedder
from switchyard.errors import ConfigError
from switchyard.tagging import Tagger, get_tagger
from switchyard.tagging.offline import OfflineTagger, extract_candidates, is_mostly_cjk, load_labels, mmr
from switchyard.tagging.parse import is_clean_tag, normalize_tag

PROMPTS = {
    "python": "Write a Python function that returns the n-th Fibonacci number using recursion.",
    "email": "Draft a polite email to my landlord asking him to fix the broken heater this week.",
    "summary": "Summarize the following article in three sentences: The city council voted on Monday to "
               "expand the bike lane network downtown, citing safety data from the last two years.",
    "math": "Janet has 16 eggs. She eats three for breakfast and sells the rest at $2 each. "
            "How much money does she make?",
    "law": "The defendant was charged with burglary. Is the evidence found without a warrant admissible in court?",
    "cooking": "Can you give me a recipe for chocolate chip cookies?",
    "translate": "Translate 'where is the train station?' into French.",
    "mcq": "Which planet is closest to the sun?\nA. Venus\nB. Mercury\nC. Earth\nD. Mars\nAnswer:",
    "chinese": "下列关于细胞的叙述，正确的是\nA. 细胞核是遗传信息库\nB. 所有细胞都有细胞壁\n"
               "C. 病毒是细胞\nD. 细胞膜不能控制物质进出\n答案：",
}


@pytest.fixture(scope="module")
def tagger() -> OfflineTagger:
    t = get_tagger("offline")
    assert isinstance(t, OfflineTagger)
    return t


@pytest.fixture(scope="module")
def tags(tagger: OfflineTagger) -> dict[str, list[str]]:
    return dict(zip(PROMPTS, tagger.tag_batch(list(PROMPTS.values())), strict=True))


def test_is_a_registered_tagger(tagger: OfflineTagger) -> None:
    assert isinstance(tagger, Tagger) and tagger.name == "offline"


def test_tags_read_like_a_person_wrote_them(tags: dict[str, list[str]]) -> None:
    assert any("python" in t or "coding" in t or "code" in t for t in tags["python"])
    assert any("email" in t for t in tags["email"])
    assert "summarization" in tags["summary"]
    assert "math word problem" in tags["math"] or "math" in tags["math"]
    assert "law" in tags["law"]
    assert {"recipe", "cooking"} & set(tags["cooking"])
    assert "translation" in tags["translate"]
    assert "multiple choice" in tags["mcq"] and "astronomy" in tags["mcq"]
    # Chinese: no MiniLM guesses, but the format and the zh keywords (细胞 -> biology) still tag it.
    assert "multiple choice" in tags["chinese"] and "biology" in tags["chinese"]


def test_tags_are_clean_lowercase_words_not_numbers(tagger: OfflineTagger, tags: dict[str, list[str]]) -> None:
    for name, row in tags.items():
        assert 1 <= len(row) <= tagger.max_tags, name
        assert len(set(row)) == len(row)
        for t in row:
            assert t == normalize_tag(t) and t == t.lower() and is_clean_tag(t)
            assert not t.replace(" ", "").isdigit()
            assert any(ch.isalpha() for ch in t)
    # Numbers and number words never become keyphrases.
    assert not {"16", "three", "16 eggs", "three sentences", "two years"} & {t for row in tags.values() for t in row}


def test_batch_equals_one_at_a_time(tagger: OfflineTagger, tags: dict[str, list[str]]) -> None:
    # A fresh embedder (empty cache), so single prompts are really re-encoded alone.
    fresh = OfflineTagger(embedder=get_embedder())
    fresh.embedder = Embedder(batch_size=4)  # same label vectors, but no cached prompt or phrase vectors
    names = ["python", "email", "summary", "mcq"]  # short, long, with options: different padding
    assert {name: fresh.tag_batch([PROMPTS[name]])[0] for name in names} == {name: tags[name] for name in names}


def test_odd_inputs_never_raise(tagger: OfflineTagger) -> None:
    odd = ["", "   ", "?!?", "12345 678", "x" * 20_000, "🙂🙂🙂", None, "```\n\n```"]
    out = tagger.tag_batch(odd)  # type: ignore[arg-type]
    assert len(out) == len(odd)
    assert all(isinstance(row, list) and all(is_clean_tag(t) for t in row) for row in out)
    assert tagger.tag_batch([]) == []


def test_candidates_skip_stopwords_numbers_and_math() -> None:
    cands = extract_candidates("If $3x+5=29$, what is the value of $x$? Then buy 3 apples for $5 and "
                               "two oranges for $4.\\frac{1}{2} [asy]draw((0,0)--(1,1));[/asy]", 20)
    assert "apples" in cands and "oranges" in cands  # prices do not swallow the text between them
    assert not any(c in {"3x+5", "frac", "draw", "two", "two oranges", "if", "the"} for c in cands)
    assert extract_candidates("crossword puzzle crossword puzzle solving", 3)[0] == "crossword"


def test_mmr_prefers_diverse_phrases() -> None:
    import numpy as np

    vecs = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]], dtype=np.float32)  # 0 and 1 near-duplicates
    sims = np.array([0.9, 0.89, 0.5])
    assert mmr(sims, vecs, k=2, diversity=0.5) == [0, 2]
    assert mmr(sims, vecs, k=2, diversity=0.0) == [0, 1]


def test_cjk_detection() -> None:
    assert is_mostly_cjk("下列关于细胞的叙述，正确的是 A B")
    assert not is_mostly_cjk("What does 你好 mean in English?")


def test_label_file_errors_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "labels.yaml"
    bad.write_text("labels:\n  - name: x\n    kind: nonsense\n")
    with pytest.raises(ConfigError, match=r"labels\.yaml"):
        load_labels(bad)
    with pytest.raises(ConfigError):
        load_labels(tmp_path / "missing.yaml")


def test_custom_label_file_and_cue_only(tmp_path: Path) -> None:
    path = tmp_path / "labels.yaml"
    path.write_text(
        "labels:\n"
        "  - name: gardening\n    kind: domain\n    describe: [Growing plants, vegetables and flowers.]\n"
        "  - name: kotlin\n    kind: domain\n    cue_only: true\n    describe: [Android apps and code.]\n"
        "    patterns: ['(?i)\\bkotlin\\b']\n")
    t = OfflineTagger(labels_path=path, embedder=get_embedder())
    garden, code, kotlin = t.tag_batch(["How do I grow tomatoes and flowers in my garden?",
                                        "Write Android app code for a login screen.",
                                        "Convert this class to Kotlin."])
    assert garden[0] == "gardening"
    assert "kotlin" not in code  # cue_only: a close cosine is not enough
    assert "kotlin" in kotlin
