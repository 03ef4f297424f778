"""Answers and costs replayed from a routing dataset (``shared/data/FORMAT.md``).

For offline evaluation and load tests: the "answer" to a prompt is the dataset's
record of how that model did (its quality and recorded cost), no network involved.
A prompt outside the dataset, or a model with no outcome for it, raises
:class:`~switchyard.errors.NoAnswer`, a permanent error that says so plainly.

Options: ``dataset`` (a dataset directory, required), ``latency_ms`` (sleep per call, to
stand in for a real provider in load tests).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from functools import lru_cache
from typing import Any

from switchyard.catalog import ProviderConfig
from switchyard.datasets import RoutingDataset, load_dataset
from switchyard.errors import ConfigError, NoAnswer
from switchyard.jobs import message_text
from switchyard.providers.base import ChatCall, ChatResult, providers

_lock = threading.Lock()


@lru_cache(maxsize=8)
def _dataset(path: str) -> tuple[RoutingDataset, dict[str, int]]:
    ds = load_dataset(path)
    by_text = {_key(p.prompt): i for i, p in enumerate(ds.prompts)}
    return ds, by_text


def _key(text: str) -> str:
    return hashlib.blake2b(text.strip().encode(), digest_size=16).hexdigest()


class ReplayProvider:
    kind = "replay"

    def __init__(self, config: ProviderConfig) -> None:
        if "dataset" not in config.options:
            raise ConfigError(f"provider {config.name!r}: a replay provider needs options.dataset (a dataset dir)")
        self.path = str(config.options["dataset"])
        self.latency_s = float(config.options.get("latency_ms", 0)) / 1000
        with _lock:
            self.ds, self.by_text = _dataset(self.path)
        self.model_index = {m: j for j, m in enumerate(self.ds.model_ids)}

    def complete(self, call: ChatCall) -> ChatResult:
        if self.latency_s:
            time.sleep(self.latency_s)
        prompt = next((message_text(m.get("content")) for m in reversed(call.messages) if m["role"] == "user"), "")
        i = self.by_text.get(_key(prompt))
        if i is None:
            raise NoAnswer(f"replay dataset {self.ds.name!r} has no prompt matching this request's last user message")
        j = self.model_index.get(call.model)
        if j is None or math.isnan(self.ds.quality[i, j]):
            raise NoAnswer(f"replay dataset {self.ds.name!r} has no recorded answer of {call.model!r} to "
                           f"prompt {self.ds.prompts[i].prompt_id!r}")
        out_tok = self.ds.output_tokens[i, j]
        completion_tokens = int(out_tok) if not math.isnan(out_tok) else 0
        quality = float(self.ds.quality[i, j])
        text = (f"[replay of {call.model} on {self.ds.prompts[i].prompt_id}: judged quality {quality:.4f}]")
        body: dict[str, Any] = {"replay": {"dataset": self.ds.name, "prompt_id": self.ds.prompts[i].prompt_id,
                                           "quality": quality}}
        return ChatResult(text=text, finish_reason="stop", prompt_tokens=self.ds.prompts[i].input_tokens,
                          completion_tokens=completion_tokens, body=body, cost_usd=float(self.ds.cost[i, j]))


providers.add("replay", ReplayProvider)
