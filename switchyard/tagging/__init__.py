"""Prompt -> open tags. ``get_tagger(name)`` builds a registered tagger."""

from switchyard.tagging.base import Tagger, get_tagger, taggers

__all__ = ["Tagger", "get_tagger", "taggers"]
