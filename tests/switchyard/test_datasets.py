"""The routing dataset loader: any defect is a DatasetError naming file, line and field."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.datasets import load_dataset
from switchyard.errors import DatasetError

META = {"name": "tiny", "source": "test", "license": "MIT", "quality": "accuracy", "accept_threshold": 0.5}
PROMPTS = [{"prompt_id": "p1", "prompt": "add 2 and 2", "split": "train", "category": "math", "input_tokens": 5},
           {"prompt_id": "p2", "prompt": "say hi", "split": "test", "category": None, "input_tokens": 2}]
MODELS = [{"model": "a", "usd_per_mtok_input": "1", "usd_per_mtok_output": "2", "description": "x"},
          {"model": "b", "usd_per_mtok_input": "0.1", "usd_per_mtok_output": "0.2", "description": ""}]
OUTCOMES = [{"prompt_id": "p1", "model": "a", "quality": "1", "output_tokens": "3", "cost_usd": "0.001"},
            {"prompt_id": "p2", "model": "b", "quality": "", "output_tokens": "", "cost_usd": "0.002"}]


def _csv(rows: list[dict[str, object]]) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


def write(root: Path, *, meta: object = None, prompts: list[object] | None = None,
          models: list[dict[str, object]] | None = None, outcomes: list[dict[str, object]] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset.json").write_text(json.dumps(META if meta is None else meta))
    (root / "prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in (prompts or PROMPTS)))
    (root / "models.csv").write_text(_csv(models or MODELS))  # type: ignore[arg-type]
    (root / "outcomes.csv").write_text(_csv(outcomes or OUTCOMES))  # type: ignore[arg-type]
    return root


def load_or_error(root: Path) -> DatasetError | None:
    try:
        load_dataset(root)
    except DatasetError as e:  # anything else fails the test: a raw traceback
        assert e.file and e.file.startswith(str(root)), e
        return e
    return None


def test_the_valid_tiny_dataset_loads(tmp_path: Path) -> None:
    ds = load_dataset(write(tmp_path / "d"))
    assert ds.model_ids == ["a", "b"] and ds.quality[0, 0] == 1.0


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=8)
_cell = st.text(max_size=12) | st.sampled_from(["nan", "inf", "-1", "1e400", "", "2", "p1", "a"])
_FS = [HealthCheck.function_scoped_fixture]


@settings(max_examples=150, deadline=None, suppress_health_check=_FS)
@given(st.sampled_from(["prompt_id", "prompt", "split", "category", "input_tokens"]), _json,
       st.integers(0, 1))
def test_a_wrong_prompt_field_names_line_and_field(tmp_path: Path, field: str, value: object, row: int) -> None:
    prompts: list[object] = [dict(p) for p in PROMPTS]
    prompts[row][field] = value  # type: ignore[index]
    err = load_or_error(write(tmp_path / "d", prompts=prompts))
    if err is not None and err.file and err.file.endswith("prompts.jsonl"):
        assert err.line == row + 1 and err.field in (field, "prompt_id"), err


@settings(max_examples=150, deadline=None, suppress_health_check=_FS)
@given(st.sampled_from(["accept_threshold", "name", "quality", "source"]), _json)
def test_a_wrong_metadata_field_is_named(tmp_path: Path, field: str, value: object) -> None:
    err = load_or_error(write(tmp_path / "d", meta={**META, field: value}))
    if err is not None:
        assert err.field == field and err.file and err.file.endswith("dataset.json"), err


@settings(max_examples=150, deadline=None, suppress_health_check=_FS)
@given(st.sampled_from(["outcomes", "models"]), st.integers(0, 1), st.data())
def test_a_wrong_csv_cell_names_line_and_field(tmp_path: Path, table: str, row: int, data: st.DataObject) -> None:
    rows = [dict(r) for r in (OUTCOMES if table == "outcomes" else MODELS)]
    field = data.draw(st.sampled_from(sorted(rows[0])))
    rows[row][field] = data.draw(_cell)
    kw = {table: rows}
    err = load_or_error(write(tmp_path / "d", **kw))  # type: ignore[arg-type]
    if err is not None and err.file and err.file.endswith(f"{table}.csv"):
        assert err.line == row + 2 and err.field, err


@settings(max_examples=200, deadline=None, suppress_health_check=_FS)
@given(st.sampled_from(["dataset.json", "prompts.jsonl", "models.csv", "outcomes.csv"]),
       st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_arbitrary_bytes_in_any_file_never_raise_a_traceback(tmp_path: Path, name: str, raw: bytes) -> None:
    root = write(tmp_path / "d")
    (root / name).write_bytes(raw)
    err = load_or_error(root)
    if err is not None:
        assert err.file and err.file.endswith((name, "prompts.jsonl", "outcomes.csv", "models.csv")), err


@pytest.mark.parametrize(("name", "raw"), [
    ("dataset.json", b"[" * 100_000),
    ("prompts.jsonl", b"[" * 100_000 + b"\n"),
    ("prompts.jsonl", b'{"prompt_id": "p1", "prompt": "\xff\xfe"}\n'),
    ("models.csv", b"\xff\xfemodel,usd_per_mtok_input,usd_per_mtok_output\n"),
    ("outcomes.csv", b"prompt_id,model,quality,cost_usd\np1,a,0.5," + b"9" * 200_000 + b"\n"),
    ("outcomes.csv", b"prompt_id,model,quality,cost_usd\n\"p1,a,0.5,1\n"),
    ("models.csv", b"model,usd_per_mtok_input,usd_per_mtok_output\na,1,2\x00\n"),
])
def test_hostile_files_give_a_dataset_error(tmp_path: Path, name: str, raw: bytes) -> None:
    root = write(tmp_path / "d")
    (root / name).write_bytes(raw)
    err = load_or_error(root)
    assert err is not None and err.file and err.file.endswith(name), err
