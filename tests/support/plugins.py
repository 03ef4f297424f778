"""Test-only plugins, loaded by worker processes through the registries' "module:Factory"
form. They inject faults inside real workers; nothing in the core knows about them."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from typing import Any

from switchyard.providers.base import ChatCall, ChatResult
from switchyard.providers.openai import OpenAIProvider


class SlowTagger:
    """Sleeps ``SWITCHYARD_TEST_TAG_SLEEP_S`` per batch: a window in which a test kills the worker."""

    name = "slow"

    def tag_batch(self, prompts: Sequence[str]) -> list[list[str]]:
        time.sleep(float(os.environ.get("SWITCHYARD_TEST_TAG_SLEEP_S", "2")))
        return [[] for _ in prompts]


class PoisonProvider(OpenAIProvider):
    """The OpenAI provider, except that a prompt containing POISON kills the whole worker process."""

    kind = "poison"

    def __init__(self, config: Any) -> None:
        super().__init__(config)

    def complete(self, call: ChatCall) -> ChatResult:
        if any("POISON" in str(m.get("content", "")) for m in call.messages):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().complete(call)
