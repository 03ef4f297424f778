"""``switchyard scores import|refresh|list|show|diff|rollback`` and ``switchyard feedback``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from switchyard.cli import app
from switchyard.config import Settings, get_settings
from switchyard.errors import SwitchyardError

console = Console(stderr=True)
scores_app = typer.Typer(no_args_is_help=True, help="TagRouter score tables: import, refresh, versions.")
app.add_typer(scores_app, name="scores")


def _settings() -> Settings:
    from switchyard.store.db import init_db

    s = get_settings()
    init_db(s)
    return s


def _print(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


def _guard(fn: Any) -> Any:
    try:
        return fn()
    except SwitchyardError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from e


@scores_app.command("import")
def import_(
    dataset: Annotated[Path, typer.Argument(help="routing dataset directory (shared/data/FORMAT.md)")],
    split: Annotated[str, typer.Option(help="which split to import as outcomes")] = "train",
    tagger: Annotated[str | None, typer.Option(help="tagger for the prompts (default: settings)")] = None,
    rebuild_vocabulary: Annotated[bool, typer.Option(help="rebuild the canonical vocabulary")] = False,
    refresh: Annotated[bool, typer.Option(help="fold the outcomes into a new table version now")] = True,
) -> None:
    """Load a dataset split as outcomes (source=import), then refresh the tables."""
    from switchyard.pipeline.outcome import import_dataset
    from switchyard.pipeline.refresh import refresh_scores

    s = _settings()
    result = _guard(lambda: import_dataset(s, dataset, split=split, tagger=tagger,
                                           rebuild_vocabulary=rebuild_vocabulary))
    out: dict[str, Any] = {"import": result.to_json()}
    if refresh:
        out["refresh"] = refresh_scores(s.model_copy(update={"refresh_settle_s": 0.0}),
                                        note=f"import {result.dataset}/{split}").to_json()
    _print(out)


@scores_app.command("refresh")
def refresh() -> None:
    """Run one refresh now (the beat task does this every refresh_interval_s)."""
    from switchyard.pipeline.refresh import refresh_scores

    _print(refresh_scores(_settings(), note="manual refresh").to_json())


@scores_app.command("list")
def list_(limit: int = 20) -> None:
    """Score table versions, newest first."""
    from switchyard.store.scores import list_versions

    table = Table("version", "parent", "status", "outcomes", "watermark", "gate", "created")
    for v in list_versions(_settings(), limit):
        gate = v["metrics"].get("gate", "")
        if "mse_candidate" in v["metrics"]:
            gate = f"mse {v['metrics']['mse_candidate']:.4f} vs {v['metrics']['mse_served']:.4f}"
        table.add_row(str(v["version"]), str(v["parent"] or ""), v["status"], str(v["n_outcomes"]),
                      str(v["watermark"]), gate, v["created_at"][:19])
    Console().print(table)


@scores_app.command("show")
def show(version: Annotated[int | None, typer.Argument(help="default: the promoted version")] = None,
         top: int = 8) -> None:
    """A version: status, gate metrics, and each model's global rate and best tags."""
    from switchyard.store.scores import show as show_version

    s = _settings()
    _print(_guard(lambda: show_version(s, version, top)))


@scores_app.command("diff")
def diff(a: int, b: int, top: int = 20) -> None:
    """What changed between two versions."""
    from switchyard.store.scores import diff as diff_versions

    s = _settings()
    _print(_guard(lambda: diff_versions(s, a, b, top)))


@scores_app.command("rollback")
def rollback(version: int) -> None:
    """Serve an earlier version again (workers pick it up on their next batch)."""
    from switchyard.store.scores import rollback as do_rollback

    s = _settings()
    _print(_guard(lambda: do_rollback(s, version)))


@app.command()
def feedback(
    file: Annotated[Path | None, typer.Option(help="JSONL of {job_id, custom_id | request_id, verdict | "
                                                   "quality, source}")] = None,
    job: Annotated[str | None, typer.Option(help="job id of the judged request")] = None,
    custom_id: Annotated[str | None, typer.Option(help="custom_id of the judged request")] = None,
    request_id: Annotated[int | None, typer.Option(help="or the request's numeric id")] = None,
    verdict: Annotated[str | None, typer.Option(help="win | tie | loss")] = None,
    quality: Annotated[float | None, typer.Option(help="or a scalar quality in [0, 1]")] = None,
    source: Annotated[str, typer.Option(help="judge | user | import")] = "user",
) -> None:
    """Record judged outcomes for finished requests; the next refresh folds them in."""
    from switchyard.pipeline.outcome import Feedback, parse_feedback_lines, record_feedback

    s = _settings()
    if file is None:
        fb = Feedback(verdict=verdict, quality=quality, source=source, request_id=request_id, job_id=job,
                      custom_id=custom_id)
        _print({"recorded": 1, "seq": _guard(lambda: record_feedback(s, fb))})
        return
    if not file.is_file():
        console.print(f"[red]error:[/] {file} does not exist or is not a file")
        raise typer.Exit(2)
    items, errors = parse_feedback_lines(file.read_text(encoding="utf-8").splitlines(), str(file))
    recorded = 0
    for n, fb in items:
        try:
            record_feedback(s, fb)
            recorded += 1
        except SwitchyardError as e:
            errors.append({"line": n, "field": "request_id", "error": f"{file} line {n}: {e}"})
    for err in errors:
        console.print(f"[yellow]skipped:[/] {err['error']}")
    _print({"recorded": recorded, "errors": errors})
    if errors:
        raise typer.Exit(1)
