"""``keywords``: a model-free tagger, the first content words of a prompt.

Up to six distinct lowercase words of five letters or more, stopwords removed, in
order of appearance. No weights, no GPU, microseconds per prompt: for CPU-light
deployments and fast tests. Its tags are canonical as they are (``canonical = True``),
so importing a dataset with it builds no embedding vocabulary.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from switchyard.tagging.base import taggers

STOPWORDS = frozenset(re.findall(r"\w+",
    "about above after again against their there these those which while would could should where when what "
    "with from this that have will your into than them then they were been being does doing because between "
    "through during before under other some such only same very just most more also here each many make made "
    "like want need write please give following using used below given answer question"))
_WORD = re.compile(r"[a-z]{5,}")


class KeywordTagger:
    name = "keywords"
    canonical = True

    def __init__(self, max_tags: int = 6) -> None:
        self.max_tags = max_tags

    def tag_batch(self, prompts: Sequence[str]) -> list[list[str]]:
        return [list(dict.fromkeys(w for w in _WORD.findall(p.lower()) if w not in STOPWORDS))[: self.max_tags]
                for p in prompts]


taggers.add("keywords", KeywordTagger)
