"""Routing datasets in the layout of ``shared/data/FORMAT.md``.

A dataset is four files: ``dataset.json``, ``prompts.jsonl``, ``outcomes.csv`` and
``models.csv``. :func:`load_dataset` validates all of them and returns dense arrays
(prompt x model) where a missing or unjudged outcome is NaN: a model with no outcome
for a prompt is *unknown* there, never bad.

Every defect raises :class:`~switchyard.errors.DatasetError` naming the file, the
line and the field, and saying how to fix it.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.catalog import Catalog, Model, ProviderConfig
from switchyard.errors import DatasetError

REQUIRED_FILES = ("dataset.json", "prompts.jsonl", "outcomes.csv", "models.csv")


@dataclass(frozen=True)
class DatasetPrompt:
    prompt_id: str
    prompt: str
    split: str
    category: str | None
    input_tokens: int


@dataclass(frozen=True)
class DatasetModel:
    model: str
    usd_per_mtok_input: float
    usd_per_mtok_output: float
    description: str


@dataclass
class RoutingDataset:
    """A loaded dataset. Arrays are indexed ``[prompt_index, model_index]``."""

    path: Path
    meta: dict[str, Any]
    prompts: list[DatasetPrompt]
    models: list[DatasetModel]
    quality: np.ndarray  # [P, M] float64, NaN = unknown
    cost: np.ndarray  # [P, M] float64, NaN = unknown
    output_tokens: np.ndarray  # [P, M] float64, NaN = not recorded
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def accept_threshold(self) -> float:
        return float(self.meta["accept_threshold"])

    @property
    def model_ids(self) -> list[str]:
        return [m.model for m in self.models]

    def index_of(self, prompt_id: str) -> int:
        if not self._index:
            self._index.update({p.prompt_id: i for i, p in enumerate(self.prompts)})
        return self._index[prompt_id]

    def split_indices(self, split: str) -> np.ndarray:
        """Indices of the prompts in ``split`` ("train" or "test"). Shape: [n] int64."""
        return np.array([i for i, p in enumerate(self.prompts) if p.split == split], dtype=np.int64)

    def known(self) -> np.ndarray:
        """Mask of judged (prompt, model) cells. Shape: [P, M] bool."""
        return ~np.isnan(self.quality)

    def expected_output_tokens(self, indices: np.ndarray | None = None) -> dict[str, float]:
        """Mean recorded output tokens per model over ``indices`` (train, typically).

        Where a dataset records no lengths, back out the length from cost and price.
        """
        idx = np.arange(len(self.prompts)) if indices is None else indices
        out: dict[str, float] = {}
        in_tok = np.array([self.prompts[i].input_tokens for i in idx], dtype=np.float64)
        for j, m in enumerate(self.models):
            toks = self.output_tokens[idx, j]
            if np.isfinite(toks).any():
                out[m.model] = float(np.nanmean(toks))
            elif m.usd_per_mtok_output > 0 and np.isfinite(self.cost[idx, j]).any():
                est = (self.cost[idx, j] * 1e6 - in_tok * m.usd_per_mtok_input) / m.usd_per_mtok_output
                out[m.model] = float(max(0.0, np.nanmean(est)))
            else:
                out[m.model] = 256.0
        return out

    def to_catalog(self, *, provider: str = "replay", indices: np.ndarray | None = None) -> Catalog:
        """A catalog of this dataset's models, served by the replay provider."""
        expected = self.expected_output_tokens(indices)
        prov = ProviderConfig(name=provider, kind="replay", max_concurrency=64,
                              options={"dataset": str(self.path)})
        models = [
            Model(id=m.model, provider=provider, usd_per_mtok_input=m.usd_per_mtok_input,
                  usd_per_mtok_output=m.usd_per_mtok_output, description=m.description,
                  expected_output_tokens=expected[m.model], context_length=1_000_000)
            for m in self.models
        ]
        return Catalog(providers={provider: prov}, models=models)


# --- loading -----------------------------------------------------------------------
def load_dataset(path: str | Path) -> RoutingDataset:
    root = Path(path)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory; pass a routing dataset folder (see FORMAT.md)",
                           file=str(root))
    missing = [f for f in REQUIRED_FILES if not (root / f).is_file()]
    if missing:
        raise DatasetError(f"missing {', '.join(missing)}; a routing dataset needs {', '.join(REQUIRED_FILES)}",
                           file=str(root))
    meta = _load_meta(root / "dataset.json")
    prompts = _load_prompts(root / "prompts.jsonl")
    models = _load_models(root / "models.csv")
    quality, cost, out_tok = _load_outcomes(root / "outcomes.csv", prompts, models)
    return RoutingDataset(root, meta, prompts, models, quality, cost, out_tok)


def _load_meta(f: Path) -> dict[str, Any]:
    try:
        meta = json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"not valid JSON ({e})", file=str(f)) from None
    except RecursionError:
        raise DatasetError("not valid JSON (nested too deeply)", file=str(f)) from None
    if not isinstance(meta, dict):
        raise DatasetError("must be a JSON object", file=str(f))
    for key, typ in (("name", str), ("source", str), ("license", str), ("quality", str)):
        if not isinstance(meta.get(key), typ):
            raise DatasetError(f"needs a string {key!r}", file=str(f), field=key)
    thr = meta.get("accept_threshold")
    if isinstance(thr, bool) or not isinstance(thr, int | float) or not math.isfinite(thr):
        raise DatasetError("needs a number 'accept_threshold' (e.g. 0.5)", file=str(f), field="accept_threshold")
    return meta


def _load_prompts(f: Path) -> list[DatasetPrompt]:
    prompts: list[DatasetPrompt] = []
    seen: set[str] = set()
    with f.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise DatasetError("not UTF-8; re-encode the file as UTF-8", file=str(f), line=lineno) from None
            except json.JSONDecodeError as e:
                raise DatasetError(f"not valid JSON ({e.msg})", file=str(f), line=lineno) from None
            except RecursionError:
                raise DatasetError("not valid JSON (nested too deeply)", file=str(f), line=lineno) from None
            prompts.append(_prompt_from(obj, f, lineno, seen))
    if not prompts:
        raise DatasetError("holds no prompts", file=str(f))
    return prompts


def _prompt_from(obj: Any, f: Path, lineno: int, seen: set[str]) -> DatasetPrompt:
    def bad(fld: str, why: str) -> DatasetError:
        return DatasetError(why, file=str(f), line=lineno, field=fld)

    if not isinstance(obj, dict):
        raise bad("", "each line must be a JSON object")
    pid, text, split = obj.get("prompt_id"), obj.get("prompt"), obj.get("split")
    if not isinstance(pid, str) or not pid:
        raise bad("prompt_id", "needs a non-empty string prompt_id")
    if pid in seen:
        raise bad("prompt_id", f"prompt_id {pid!r} appears twice; ids must be unique")
    seen.add(pid)
    if not isinstance(text, str):
        raise bad("prompt", "needs a string prompt")
    if split not in ("train", "test"):
        raise bad("split", f"split must be 'train' or 'test', not {split!r}")
    cat = obj.get("category")
    if cat is not None and not isinstance(cat, str):
        raise bad("category", "category must be a string or null")
    tok = obj.get("input_tokens")
    if isinstance(tok, bool) or not isinstance(tok, int) or tok < 0:
        raise bad("input_tokens", "input_tokens must be a non-negative integer")
    return DatasetPrompt(pid, text, split, cat, tok)


def _csv_rows(f: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line number, row) of a CSV file whose header has ``required``; any defect is a DatasetError."""
    with f.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        try:
            cols = reader.fieldnames or []
            missing = [c for c in required if c not in cols]
            if missing:
                raise DatasetError(f"missing column(s) {', '.join(missing)}; the header must have "
                                   f"{', '.join(required)}", file=str(f), line=1)
            while True:
                start = reader.line_num + 1  # a quoted cell may span lines: name the line the row starts on
                row = next(reader, None)
                if row is None:
                    return
                yield start, {k: v if isinstance(v, str) or v is None else None for k, v in row.items()}
        except UnicodeDecodeError:
            raise DatasetError("not UTF-8; re-encode the file as UTF-8", file=str(f),
                               line=reader.line_num + 1) from None
        except csv.Error as e:  # an unclosed quote, a NUL byte, a field over the size limit
            raise DatasetError(f"not valid CSV ({e})", file=str(f), line=max(1, reader.line_num)) from None


def _float(value: str | None, f: Path, lineno: int, fld: str, *, allow_empty: bool) -> float:
    if value is None or value.strip() == "":
        if allow_empty:
            return math.nan
        raise DatasetError("must not be empty", file=str(f), line=lineno, field=fld)
    try:
        x = float(value)
    except ValueError:
        raise DatasetError(f"{value!r} is not a number", file=str(f), line=lineno, field=fld) from None
    if not math.isfinite(x):
        raise DatasetError(f"{value!r} is not a finite number", file=str(f), line=lineno, field=fld)
    return x


def _load_models(f: Path) -> list[DatasetModel]:
    models: list[DatasetModel] = []
    for lineno, row in _csv_rows(f, ("model", "usd_per_mtok_input", "usd_per_mtok_output")):
        name = (row.get("model") or "").strip()
        if not name:
            raise DatasetError("needs a model name", file=str(f), line=lineno, field="model")
        if any(m.model == name for m in models):
            raise DatasetError(f"model {name!r} appears twice", file=str(f), line=lineno, field="model")
        pin = _float(row.get("usd_per_mtok_input"), f, lineno, "usd_per_mtok_input", allow_empty=False)
        pout = _float(row.get("usd_per_mtok_output"), f, lineno, "usd_per_mtok_output", allow_empty=False)
        models.append(DatasetModel(name, pin, pout, (row.get("description") or "").strip()))
    if not models:
        raise DatasetError("lists no models", file=str(f))
    return models


def _load_outcomes(
    f: Path, prompts: list[DatasetPrompt], models: list[DatasetModel]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p_index = {p.prompt_id: i for i, p in enumerate(prompts)}
    m_index = {m.model: j for j, m in enumerate(models)}
    shape = (len(prompts), len(models))
    quality, cost, out_tok = (np.full(shape, np.nan) for _ in range(3))
    for lineno, row in _csv_rows(f, ("prompt_id", "model", "quality", "cost_usd")):
        pid, model = row.get("prompt_id") or "", row.get("model") or ""
        if pid not in p_index:
            raise DatasetError(f"prompt_id {pid[:80]!r} is not in prompts.jsonl", file=str(f), line=lineno,
                               field="prompt_id")
        if model not in m_index:
            raise DatasetError(f"model {model[:80]!r} is not in models.csv", file=str(f), line=lineno, field="model")
        q = _float(row.get("quality"), f, lineno, "quality", allow_empty=True)
        if math.isnan(q):
            continue  # FORMAT.md: empty quality = not judged, skip the row
        if not 0.0 <= q <= 1.0:
            raise DatasetError(f"quality {q} is outside [0, 1]", file=str(f), line=lineno, field="quality")
        i, j = p_index[pid], m_index[model]
        quality[i, j] = q
        cost[i, j] = _float(row.get("cost_usd"), f, lineno, "cost_usd", allow_empty=False)
        out_tok[i, j] = _float(row.get("output_tokens"), f, lineno, "output_tokens", allow_empty=True)
    return quality, cost, out_tok
