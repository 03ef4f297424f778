"""Shared helpers of the performance benchmarks (``benchmarks/run``; docs/performance.md).

Every ``bench_*.py`` is a module run from the repository root (``python -m benchmarks.bench_decision``)
that measures one figure of the issue, prints it and writes ``benchmarks/results/perf/<name>.json``;
``benchmarks/run`` runs them in turn, each in its own process, and merges them into
``benchmarks/results.json``. The machine is shared and noisy: figures are medians over repeats,
and comparisons are ratios taken in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SWITCHYARD_SHARED_DATA", REPO.parent / "shared" / "data"))
ROUTING = DATA / "routing"
OUT_DIR = REPO / "benchmarks" / "results" / "perf"
RESULTS = REPO / "benchmarks" / "results.json"
FIGURES = REPO / "docs" / "figures"


def parser(doc: str | None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small N and one repeat: for iterating, not for quoting")
    p.add_argument("--full", action="store_true", help="also the slow extras (e.g. the 50k-request job)")
    p.add_argument("--repeats", type=int, default=None, help="override the number of repeats")
    return p


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    import numpy
    import torch

    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem_gb, "platform": platform.platform(),
            "python": sys.version.split()[0], "numpy": numpy.__version__, "torch": torch.__version__,
            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_part(name: str, result: dict[str, Any]) -> Path:
    """One benchmark's result, with when and where it ran."""
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{name}.json"
    payload = {"benchmark": name, "timestamp": now_iso(), "load_avg_at_end": [round(x, 2) for x in os.getloadavg()],
               **result}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(json.dumps({k: v for k, v in payload.items() if not isinstance(v, list | dict)}, default=float))
    return path


def dataset_prompts(n: int, seed: int = 7, datasets: Sequence[str] | None = None) -> list[tuple[str, int]]:
    """``n`` (prompt, input tokens) pairs drawn evenly from the routing datasets, fixed by ``seed``."""
    from switchyard.datasets import load_dataset

    names = list(datasets or sorted(p.name for p in ROUTING.iterdir() if p.is_dir()))
    rng = random.Random(seed)
    per = -(-n // len(names))
    out: list[tuple[str, int]] = []
    for name in names:
        ds = load_dataset(ROUTING / name)
        picked = rng.sample(range(len(ds.prompts)), min(per, len(ds.prompts)))
        out += [(ds.prompts[i].prompt, ds.prompts[i].input_tokens) for i in picked]
    rng.shuffle(out)
    return out[:n]


# --- process memory, from /proc (no sampling: the kernel keeps the high-water mark) --------
def _status(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(rest.split()[0])  # kB
    except OSError:
        pass
    return out


def children(pid: int) -> list[int]:
    """Direct and indirect children of ``pid`` (prefork pool processes)."""
    try:
        kids = [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in children(k)]


def peak_rss_mb(pid: int) -> dict[str, float]:
    """Peak RSS (VmHWM) of a process and of each of its children, in MB; ``tree_sum`` adds them up
    (an upper bound on the tree's peak: the processes need not peak at the same moment)."""
    own = _status(pid).get("VmHWM", 0) / 1024
    kids = {str(k): _status(k).get("VmHWM", 0) / 1024 for k in children(pid)}
    return {"main": round(own, 1), "children": {k: round(v, 1) for k, v in kids.items()},
            "max_process": round(max([own, *kids.values()]), 1), "tree_sum": round(own + sum(kids.values()), 1)}
