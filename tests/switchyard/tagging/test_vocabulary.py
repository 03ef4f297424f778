"""The canonical vocabulary: build (min_count, near-duplicate merge), version, persist, align."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from switchyard.embeddings import DIM
from switchyard.errors import ConfigError
from switchyard.tagging.base import NullTagger
from switchyard.tagging.vocabulary import Vocabulary, build_vocabulary, canonical_tags, count_tags

# A hand-made embedding: each tag is a mix of a few "concept" axes, so cosines are exact.
_AXES = {"python": 0, "email": 1, "law": 2, "cooking": 3, "history": 4}
_TAG_MIX = {
    "python": {"python": 1.0},
    "python programming": {"python": 1.0, "email": 0.1},  # cos 0.995 with python
    "python code": {"python": 1.0, "law": 0.2},  # cos 0.98 with python
    "email writing": {"email": 1.0},
    "email": {"email": 1.0, "cooking": 0.15},  # cos 0.989 with email writing
    "law": {"law": 1.0},
    "legal": {"law": 1.0, "history": 0.7},  # cos 0.82: an alignment, not a merge
    "cooking": {"cooking": 1.0},
    "history": {"history": 1.0},
}


def fake_embed(texts: Sequence[str]) -> np.ndarray:
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    for i, t in enumerate(texts):
        for axis, w in _TAG_MIX.get(t, {}).items():
            out[i, _AXES[axis]] = w
        if not out[i].any():  # unknown text: its own direction, far from every concept
            out[i, 10 + (sum(map(ord, t)) % (DIM - 10))] = 1.0
    return out / np.linalg.norm(out, axis=1, keepdims=True)


TRAIN = [
    ["Python", "email writing"],
    ["python", "python programming"],
    ["python", "law"],
    ["python code", "law", "cooking", "email"],
    ["python code", "Email", "law"],
    ["email writing", "cooking"],
    ["email writing", "history", "  EMAIL WRITING."],  # counted once per prompt
    ["one-off tag"],
]


@pytest.fixture
def vocab() -> Vocabulary:
    return build_vocabulary(TRAIN, min_count=2, merge_threshold=0.95, embed=fake_embed)


def test_counts_are_normalised_and_once_per_prompt() -> None:
    counts = count_tags(TRAIN)
    assert counts["python"] == 3 and counts["email writing"] == 3 and counts["python code"] == 2
    assert counts["one-off tag"] == 1


def test_min_count_drops_rare_tags(vocab: Vocabulary) -> None:
    assert "one-off tag" not in vocab.aliases and "history" not in vocab.aliases  # seen once each
    assert "python programming" not in vocab.aliases  # once: dropped before merging
    assert build_vocabulary(TRAIN, min_count=1, merge_threshold=0.95, embed=fake_embed).aliases[
        "one-off tag"] == "one-off tag"


def test_near_duplicates_merge_into_the_most_frequent_surface_form(vocab: Vocabulary) -> None:
    assert vocab.tags == ["email writing", "law", "python", "cooking"]  # frequency order, ties alphabetical
    assert vocab.aliases["python code"] == "python"  # 2 prompts vs 3: python names the cluster
    assert vocab.aliases["email"] == "email writing"
    assert vocab.counts == {"python": 5, "email writing": 5, "law": 3, "cooking": 2}
    assert vocab.embeddings.shape == (4, DIM)
    # The kept embedding is the canonical form's own.
    assert np.allclose(vocab.embeddings[vocab.tags.index("python")], fake_embed(["python"])[0])


def test_merge_threshold_controls_merging() -> None:
    strict = build_vocabulary(TRAIN, min_count=2, merge_threshold=0.999, embed=fake_embed)
    assert "python code" in strict.tags and strict.aliases["python code"] == "python code"


def test_version_is_stable_and_tracks_content(vocab: Vocabulary) -> None:
    again = build_vocabulary(TRAIN, min_count=2, merge_threshold=0.95, embed=fake_embed)
    assert again.version == vocab.version and len(vocab.version) == 16
    assert build_vocabulary([*TRAIN, ["cooking"]], min_count=2, merge_threshold=0.95,
                            embed=fake_embed).version != vocab.version
    assert build_vocabulary(TRAIN, min_count=1, merge_threshold=0.95, embed=fake_embed).version != vocab.version


def test_save_load_round_trip(vocab: Vocabulary, tmp_path: Path) -> None:
    path = vocab.save(tmp_path / "vocab" / "v.json")
    loaded = Vocabulary.load(path)
    assert (loaded.tags, loaded.counts, loaded.aliases, loaded.version) == (
        vocab.tags, vocab.counts, vocab.aliases, vocab.version)
    assert np.array_equal(loaded.embeddings, vocab.embeddings)
    assert loaded.meta["min_count"] == 2 and loaded.meta["prompts"] == len(TRAIN)


def test_load_rejects_tampered_or_broken_files(vocab: Vocabulary, tmp_path: Path) -> None:
    path = vocab.save(tmp_path / "v.json")
    path.write_text(path.read_text().replace('"law": 3', '"law": 30'))
    with pytest.raises(ConfigError, match="does not match its version"):
        Vocabulary.load(path)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match=r"bad\.json"):
        Vocabulary.load(tmp_path / "bad.json")


def test_align_maps_known_forms_and_nearest_above_threshold(vocab: Vocabulary) -> None:
    res = vocab.align([["Python", "python code", "EMAIL"],  # aliases, after normalising
                       ["python programming", "legal"],  # unseen: nearest canonical by cosine
                       ["law", "law", "Law."]],  # deduplicated per prompt
                      threshold=0.8, embed=fake_embed)
    assert res.tags == [["python", "email writing"], ["python", "law"], ["law"]]
    assert res.dropped == 0


def test_align_drops_and_counts_what_matches_nothing(vocab: Vocabulary) -> None:
    res = vocab.align([["python", "quantum chromodynamics", "legal"], ["quantum chromodynamics", "", "123"]],
                      threshold=0.9, embed=fake_embed)  # legal: cos 0.82 < 0.9
    assert res.tags == [["python"], []]
    assert res.dropped == 5
    assert res.dropped_examples == {"quantum chromodynamics": 2, "legal": 1, "": 1, "123": 1}


def test_align_threshold_defaults_to_the_setting(vocab: Vocabulary, monkeypatch: pytest.MonkeyPatch) -> None:
    from switchyard.config import reset_settings

    monkeypatch.setenv("SWITCHYARD_VOCAB_THRESHOLD", "0.9")
    reset_settings()
    try:
        assert vocab.align([["legal"]], embed=fake_embed).dropped == 1
        monkeypatch.setenv("SWITCHYARD_VOCAB_THRESHOLD", "0.8")
        reset_settings()
        assert vocab.align([["legal"]], embed=fake_embed).tags == [["law"]]
    finally:
        monkeypatch.undo()
        reset_settings()


def test_empty_inputs() -> None:
    empty = build_vocabulary([], embed=fake_embed)
    assert len(empty) == 0 and empty.embeddings.shape == (0, DIM)
    assert empty.align([["python"]], threshold=0.5, embed=fake_embed).tags == [[]]
    assert build_vocabulary(TRAIN, embed=fake_embed).align([], threshold=0.5, embed=fake_embed).tags == []


def test_canonical_tags_without_a_vocabulary_normalises() -> None:
    class Fixed:
        name = "fixed"

        def tag_batch(self, prompts: Sequence[str]) -> list[list[str]]:
            return [["Python", "python.", "12", "Email Writing"] for _ in prompts]

    tags, dropped = canonical_tags(Fixed(), None, ["a", "b"])
    assert tags == [["python", "email writing"]] * 2 and dropped == 2
    assert canonical_tags(NullTagger(), None, ["a"]) == ([[]], 0)


def test_canonical_tags_with_a_vocabulary_aligns(vocab: Vocabulary, monkeypatch: pytest.MonkeyPatch) -> None:
    import switchyard.tagging.vocabulary as v

    monkeypatch.setattr(v, "default_embed", fake_embed)

    class Fixed:
        name = "fixed"

        def tag_batch(self, prompts: Sequence[str]) -> list[list[str]]:
            return [["python code", "quantum chromodynamics"] for _ in prompts]

    assert canonical_tags(Fixed(), vocab, ["a"], threshold=0.8) == ([["python"]], 1)


def test_real_minilm_merges_paraphrases_not_topics() -> None:
    """On the real embedder, surface variants merge and distinct topics stay apart."""
    lists = [["python programming"]] * 3 + [["Python programming language"]] * 2 + [["cooking"]] * 2 + \
            [["recipe"]] * 2 + [["email writing"]] * 2
    vocab = build_vocabulary(lists, min_count=2, merge_threshold=0.85)
    assert vocab.aliases["python programming language"] == "python programming"
    assert vocab.aliases["email writing"] == "email writing"
    assert vocab.aliases["cooking"] == "cooking" and vocab.aliases["recipe"] == "recipe"
    res = vocab.align([["programming in python", "writing an email", "zebra migration"]], threshold=0.6)
    assert res.tags == [["python programming", "email writing"]] and res.dropped == 1
