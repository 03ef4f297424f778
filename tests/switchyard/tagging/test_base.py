"""The tagger registry: lazy modules, the null tagger, clear errors for unknown keys."""

from __future__ import annotations

import pytest

from switchyard.errors import UnknownRegistryKey
from switchyard.tagging import Tagger, get_tagger, taggers
from switchyard.tagging.base import NullTagger


def test_null_tagger_tags_nothing() -> None:
    t = get_tagger("null")
    assert isinstance(t, NullTagger) and isinstance(t, Tagger)
    assert t.tag_batch(["a", "b"]) == [[], []] and t.tag_batch([]) == []


def test_unknown_tagger_names_the_choices() -> None:
    with pytest.raises(UnknownRegistryKey, match="null"):
        get_tagger("no-such-tagger")


def test_hf_module_registers_on_demand() -> None:
    import switchyard.tagging.hf  # noqa: F401  (what get_tagger("hf") imports lazily)

    assert {"null", "hf"} <= set(taggers.names())
