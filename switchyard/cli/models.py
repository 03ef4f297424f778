"""``switchyard models onboard MODEL_ID --probe PROMPTS.jsonl``: a new model joins the pool by probe job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from switchyard.cli import app
from switchyard.errors import SwitchyardError

console = Console(stderr=True)
models_app = typer.Typer(no_args_is_help=True, help="Models: onboard a new one by probe job.")
app.add_typer(models_app, name="models")


@models_app.command("onboard")
def onboard(
    model: Annotated[str, typer.Argument(help="catalog id of the new model")],
    probe: Annotated[Path, typer.Option(help="JSONL of probe prompts ({\"prompt\"} or OpenAI Batch lines)")],
    reference: Annotated[str | None, typer.Option(help="pairwise: the model answered against "
                                                       "(default: SWITCHYARD_JUDGE_REFERENCE)")] = None,
    judge: Annotated[str | None, typer.Option(help="judge model (default: SWITCHYARD_JUDGE_MODEL)")] = None,
    mode: Annotated[str | None, typer.Option(help="pairwise | absolute (default: SWITCHYARD_JUDGE_MODE)")] = None,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the verdicts")] = 3600.0,
) -> None:
    """Send the probes to MODEL through the normal queues, judge its answers, fold the verdicts
    into the scores, and print the tags it now wins, ties and loses against the pool."""
    from switchyard.catalog import Catalog
    from switchyard.cli.run import follow, system
    from switchyard.config import get_settings
    from switchyard.onboarding import read_probes, submit_probe_job, tag_report, wait_for_verdicts
    from switchyard.pipeline.refresh import refresh_scores
    from switchyard.store.scores import table_for
    from workers.submit import enqueue_job

    settings = get_settings()
    judge_model = judge or settings.judge_model
    if not judge_model:
        console.print("[red]error:[/] name a judge model: --judge MODEL or SWITCHYARD_JUDGE_MODEL")
        raise typer.Exit(2)
    try:
        prompts = read_probes(probe)
        with system(settings):
            plan = submit_probe_job(settings, model, prompts, catalog=Catalog.load(settings.catalog_path),
                                    judge_model=judge_model, mode=mode or settings.judge_mode,
                                    reference=reference or settings.judge_reference)
            console.print(f"probe job [bold]{plan.job_id}[/]: {plan.n_total} prompts to {model}")
            enqueue_job(plan.job_id)
            follow(settings, plan.job_id)
            n = wait_for_verdicts(settings, plan.job_id, timeout_s=timeout)
        result = refresh_scores(settings.model_copy(update={"refresh_settle_s": 0.0}), note=f"onboard {model}")
    except SwitchyardError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
    if result.version is None:
        console.print(f"[red]error:[/] no new score version ({result.status}); {n} verdicts stored")
        raise typer.Exit(1)
    rep = tag_report(table_for(settings, result.version), model)
    console.print(f"{n} verdicts folded into score version {result.version} "
                  f"({'promoted' if result.promoted else 'NOT promoted: ' + str(result.metrics.get('gate'))})")
    for label, tags in (("wins", rep.wins), ("ties", rep.ties), ("loses", rep.losses)):
        console.print(f"[bold]{model} {label}[/] on {len(tags)} tags: {', '.join(tags[:30]) or '-'}")
    typer.echo(json.dumps({"job_id": plan.job_id, "verdicts": n, "version": result.version,
                           "promoted": result.promoted, "report": rep.to_json()}, indent=1))
