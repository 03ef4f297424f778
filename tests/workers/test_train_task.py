"""The training task on a real maintenance worker writes a loadable router artifact."""

from __future__ import annotations

from pathlib import Path

from tests.support.factories import write_dataset
from tests.support.system import running_system, short_tmpdir, wait_for


def test_train_task_writes_a_tryage_artifact_that_routes() -> None:
    data_dir = short_tmpdir()
    prompts = [(f"p{i}", text, "train") for i, text in enumerate(
        ["Write a Python function to sort a list", "Fix my JavaScript bug", "Explain recursion in code",
         "Write a poem about the sea", "Compose a haiku about autumn", "Write a sonnet about love"] * 3)]
    prompts = [(f"{p}_{n}", t, s) for n, (p, t, s) in enumerate(prompts)]
    outcomes = [(p, m, q) for p, t, _ in prompts for m, q in
                (("coder", 1.0 if "code" in t.lower() or "python" in t.lower() or "javascript" in t.lower()
                  else 0.0), ("poet", 0.0 if "code" in t.lower() or "python" in t.lower() else 1.0))]
    ds = write_dataset(data_dir / "ds", prompts, outcomes, {"coder": (1.0, 2.0), "poet": (0.5, 1.0)})
    with running_system({"SWITCHYARD_DATA_DIR": str(data_dir), "SWITCHYARD_TAGGER": "null"}, gpu=False) as system:
        from workers.app import producer

        producer().send_task("switchyard.train_policy", args=["tryage", str(ds)], task_id="train:tryage:test")
        artifact = Path(system.settings.data_dir).resolve() / "artifacts" / "tryage.pt"
        wait_for(artifact.is_file, 180, "the tryage artifact")
    from switchyard.routing.quality import load_artifact

    obj = load_artifact(artifact, "tryage")
    assert list(obj["models"]) == ["coder", "poet"]
