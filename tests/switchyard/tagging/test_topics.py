"""Topic tags: k-means levels over train prompts, named by their tags, saved with the vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from switchyard.embeddings import DIM
from switchyard.tagging.topics import fit_topics, spherical_kmeans
from switchyard.tagging.vocabulary import Vocabulary, build_vocabulary
from tests.switchyard.tagging.test_vocabulary import fake_embed


def blobs(n_per: int, centres: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well separated clusters on distinct axes: [centres * n_per, DIM] unit rows and their labels."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(centres), n_per)
    x = rng.normal(0.0, 0.05, (len(labels), DIM)).astype(np.float32)
    x[np.arange(len(labels)), 20 + labels] += 1.0
    return x / np.linalg.norm(x, axis=1, keepdims=True), labels


def test_kmeans_recovers_separated_clusters_and_is_deterministic() -> None:
    x, labels = blobs(10, 4)
    cent = spherical_kmeans(x, 4, seed=3)
    owner = (x @ cent.T).argmax(axis=1)
    # Each true cluster maps to exactly one centroid, and each centroid to one cluster.
    assert len({(int(a), int(b)) for a, b in zip(labels, owner, strict=True)}) == 4
    np.testing.assert_array_equal(cent, spherical_kmeans(x, 4, seed=3))


def test_topics_are_named_by_their_most_over_represented_tags() -> None:
    x, labels = blobs(6, 2)
    tags = [["python", "code"] if lab == 0 else ["cooking", "recipes"] for lab in labels]
    model = fit_topics(x, tags, levels=(2,), min_per_topic=3)
    assert model is not None and model.levels == [2]
    names = set(model.names[0])
    assert any("python" in n and "code" in n for n in names) and any("cooking" in n for n in names)
    assigned = model.assign(x)
    # Every prompt gets exactly one topic per level, and a cluster's prompts share it.
    assert all(len(a) == 1 for a in assigned)
    assert len({assigned[i][0] for i in np.nonzero(labels == 0)[0]}) == 1


def test_levels_need_enough_prompts_per_topic() -> None:
    x, _ = blobs(5, 2)  # 10 prompts
    model = fit_topics(x, [[]] * 10, levels=(2, 4, 16), min_per_topic=3)
    assert model is not None and model.levels == [2]  # 4 topics x 3 prompts > 10
    assert fit_topics(x, [[]] * 10, levels=(8,), min_per_topic=3) is None


TRAIN = [["python", "law"], ["python", "email writing"], ["cooking", "email writing"], ["cooking", "law"]] * 3


def test_vocabulary_with_topics_round_trips_and_adds_topic_tags(tmp_path: Path) -> None:
    x, _ = blobs(6, 2)
    vocab = build_vocabulary(TRAIN, min_count=2, merge_threshold=0.95, embed=fake_embed, prompt_embeddings=x,
                             topic_levels=(2, 4), min_per_topic=3)
    plain = build_vocabulary(TRAIN, min_count=2, merge_threshold=0.95, embed=fake_embed)
    assert vocab.wants_embeddings and not plain.wants_embeddings
    assert vocab.version != plain.version  # topics are part of the content
    loaded = Vocabulary.load(vocab.save(tmp_path / "vocabulary.json"))
    assert loaded.version == vocab.version and loaded.topics is not None
    with_topics = loaded.align([["python"]], threshold=0.9, embed=fake_embed, prompt_embeddings=x[:1]).tags[0]
    assert with_topics[0] == "python" and len(with_topics) == 3  # the tag, then one topic per level
    assert with_topics[1].startswith("topic 2.") and with_topics[2].startswith("topic 4.")
    # Without the prompts' embeddings (or without topics) only the canonical tags remain.
    assert loaded.align([["python"]], threshold=0.9, embed=fake_embed).tags == [["python"]]
    assert plain.align([["python"]], threshold=0.9, embed=fake_embed, prompt_embeddings=x[:1]).tags == [["python"]]
