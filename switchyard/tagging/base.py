"""The Tagger protocol and its registry.

A tagger turns a batch of prompts into open, human-readable tags. Implementations
register themselves under a settings key (``SWITCHYARD_TAGGER``):

- ``null``: no tags (pipeline benchmarks, concrete-model jobs);
- ``offline``: MiniLM keyphrases + task/domain labels (the CPU default);
- ``hf``: the TagRouter paper's TagGenerator causal LM;
- ``keywords``: content words, no model (canonical as they are: no vocabulary needed).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from switchyard.registry import Registry


@runtime_checkable
class Tagger(Protocol):
    name: str

    def tag_batch(self, prompts: Sequence[str]) -> list[list[str]]:
        """One list of tags per prompt, in order. Never raises on odd input."""
        ...


taggers: Registry[Tagger] = Registry("tagger")

# Implementations live in their own modules and register on import; import lazily so
# that choosing the null tagger never loads torch.
_MODULES = {"offline": "switchyard.tagging.offline", "hf": "switchyard.tagging.hf",
            "keywords": "switchyard.tagging.keywords"}


class NullTagger:
    """Tags nothing. For pipelines that route without tags, and for benchmarks."""

    name = "null"

    def tag_batch(self, prompts: Sequence[str]) -> list[list[str]]:
        return [[] for _ in prompts]


taggers.add("null", NullTagger)


def get_tagger(name: str, **kwargs: object) -> Tagger:
    if name not in taggers and name in _MODULES:
        importlib.import_module(_MODULES[name])
    return taggers.create(name, **kwargs)
