"""tag_requests: open tags -> canonical tags, plus topic tags when the vocabulary has topics."""

from __future__ import annotations

from switchyard.config import Settings
from switchyard.embeddings import get_embedder
from switchyard.pipeline.outcome import vocabulary_path
from switchyard.pipeline.tag_and_route import tag_requests
from switchyard.tagging.base import NullTagger
from switchyard.tagging.vocabulary import build_vocabulary

CODE = [f"Write a Python function that {x}" for x in ("sorts a list", "parses JSON", "reverses a string",
                                                       "reads a CSV file", "merges two dicts", "counts words")]
POEMS = [f"Write a short poem about {x}" for x in ("the sea", "autumn leaves", "a lighthouse", "winter",
                                                   "the moon", "a garden")]


def test_live_tags_get_the_topic_of_their_neighbourhood(settings: Settings) -> None:
    prompts = CODE + POEMS
    tags = [["python"]] * len(CODE) + [["poetry"]] * len(POEMS)
    emb = get_embedder().encode(prompts)  # real MiniLM: [12, 384]
    vocab = build_vocabulary(tags, min_count=1, prompt_embeddings=emb, topic_levels=(2,), min_per_topic=3)
    vocab.save(vocabulary_path(settings))
    out, dropped = tag_requests(settings, NullTagger(), ["Write a Python function that zips two lists",
                                                         "Write a short poem about spring rain"])
    assert dropped == [0, 0]
    (code_topic,), (poem_topic,) = out
    # The null tagger says nothing, so the topic tag is all the router gets, and it is the right one.
    assert code_topic.startswith("topic 2.") and "python" in code_topic
    assert poem_topic.startswith("topic 2.") and "poetry" in poem_topic
