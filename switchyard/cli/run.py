"""``switchyard run``, ``jobs``, ``worker`` and ``beat``."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from switchyard.cli import app
from switchyard.config import Settings, get_settings, reset_settings
from switchyard.errors import SwitchyardError

console = Console(stderr=True)
jobs_app = typer.Typer(no_args_is_help=True, help="Inspect, cancel and resume jobs.")
app.add_typer(jobs_app, name="jobs")


def _apply_env(**values: object) -> Settings:
    """CLI options become SWITCHYARD_* env vars, so worker child processes see them too."""
    for key, value in values.items():
        if value is not None:
            os.environ[f"SWITCHYARD_{key.upper()}"] = str(value)
    reset_settings()
    return get_settings()


@contextlib.contextmanager
def system(settings: Settings, *, start_workers: bool = True) -> Iterator[None]:
    """Embedded Redis + workers when no broker is configured; nothing otherwise."""
    from switchyard.store.db import init_db

    init_db(settings)
    if settings.broker_url or not start_workers:
        yield
        return
    from switchyard.embedded import Embedded

    console.print(f"[dim]zero-setup mode: embedded Redis + workers in {Path(settings.data_dir).resolve()}[/]")
    emb = Embedded(settings).start()
    try:
        yield
    finally:
        console.print("[dim]stopping embedded workers and Redis...[/]")
        emb.stop()


def _fail(e: SwitchyardError) -> None:
    console.print(f"[red]error:[/] {e}")
    raise typer.Exit(2)


@app.command()
def run(
    input: Annotated[Path, typer.Argument(help="JSONL file, OpenAI Batch format or {custom_id, prompt}")],
    out: Annotated[Path, typer.Option("--out", "-o", help="output lines go here")] = Path("results.jsonl"),
    errors: Annotated[Path, typer.Option("--errors", "-e", help="error lines go here")] = Path("errors.jsonl"),
    policy: Annotated[str | None, typer.Option(help="default routing policy for the job")] = None,
    knob: Annotated[float | None, typer.Option(help="the policy's cost/quality knob")] = None,
    tagger: Annotated[str | None, typer.Option(help="tagger: offline | hf | null")] = None,
    catalog: Annotated[Path | None, typer.Option(help="model catalog YAML")] = None,
    wait: Annotated[bool, typer.Option(help="wait for the job and write the files")] = True,
    budget: Annotated[float | None, typer.Option(
        "--budget", help="total USD for the whole job: models are assigned to maximise predicted quality "
        "within it; lines it cannot cover fail with budget_exhausted", min=0.0)] = None,
    judge_rate: Annotated[float | None, typer.Option(
        "--judge-rate", help="share of answers judged (needs SWITCHYARD_JUDGE_MODEL)", min=0.0, max=1.0)] = None,
) -> None:
    """Submit a bulk job, show its progress, and write its output and error files."""
    settings = _apply_env(tagger=tagger, catalog_path=catalog)
    if not input.is_file():
        console.print(f"[red]error:[/] {input} does not exist or is not a file")
        raise typer.Exit(2)
    try:
        with system(settings, start_workers=wait):
            meta = {"judge_sample_rate": judge_rate} if judge_rate is not None else None
            job_id = submit(settings, input, policy=policy, knob=knob, budget_usd=budget, metadata=meta)
            if not wait:
                typer.echo(job_id)
                return
            follow(settings, job_id)
            write_results(settings, job_id, out, errors)
    except SwitchyardError as e:
        _fail(e)


def submit(settings: Settings, path: Path, *, policy: str | None, knob: float | None,
           budget_usd: float | None = None, metadata: dict[str, Any] | None = None) -> str:
    from switchyard.catalog import Catalog
    from switchyard.pipeline.intake import submit_job
    from workers.submit import enqueue_finalize, enqueue_job

    with path.open("rb") as fh:
        plan = submit_job(settings, fh, catalog=Catalog.load(settings.catalog_path), input_name=str(path),
                          policy=policy, knob=knob, budget_usd=budget_usd, metadata=metadata)
    console.print(f"job [bold]{plan.job_id}[/]: {plan.n_total} lines, {plan.n_invalid} invalid, "
                  f"{plan.n_shards} shards")
    if plan.n_shards:
        enqueue_job(plan.job_id)
    else:
        enqueue_finalize(plan.job_id)
    return plan.job_id


def follow(settings: Settings, job_id: str, *, stall_finalize_s: float = 10.0) -> str:
    """A live progress bar until the job is terminal. Returns the final status."""
    from switchyard.pipeline.control import get_job
    from switchyard.pipeline.finalize import finalize_job
    from switchyard.store.models import TERMINAL_JOB, JobStatus

    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[detail]}"), TimeElapsedColumn())
    finalizing_since: float | None = None
    with Progress(*columns, console=console, transient=False) as bar:
        job = get_job(settings, job_id)
        task = bar.add_task(job.status, total=max(1, job.n_total), detail="")
        while True:
            job = get_job(settings, job_id)
            bar.update(task, completed=job.n_done, description=str(job.status),
                       detail=f"ok {job.n_succeeded}  failed {job.n_failed + job.n_invalid}  ${job.cost_usd:.4f}")
            if job.status in TERMINAL_JOB:
                return str(job.status)
            if job.status == JobStatus.finalizing:
                # Safety net: if the finalize task was lost, finalizing is idempotent, do it here.
                finalizing_since = finalizing_since or time.monotonic()
                if time.monotonic() - finalizing_since > stall_finalize_s:
                    finalize_job(settings, job_id)
            time.sleep(0.3)


def write_results(settings: Settings, job_id: str, out: Path, errors: Path) -> None:
    from switchyard.pipeline.control import get_job
    from switchyard.pipeline.finalize import write_files

    out.parent.mkdir(parents=True, exist_ok=True)
    errors.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fo, errors.open("w", encoding="utf-8") as fe:
        rendered = write_files(settings, job_id, fo, fe)
    job = get_job(settings, job_id)
    extra = f" of budget ${job.budget_usd:.6f}" if job.budget_usd is not None else ""
    extra += f", judge ${job.judge_cost_usd:.6f}" if job.judge_cost_usd else ""
    console.print(f"job {job_id} {job.status}: {rendered.outputs} results -> [bold]{out}[/], "
                  f"{rendered.errors} errors -> [bold]{errors}[/], cost ${job.cost_usd:.6f}{extra}")


@jobs_app.command("list")
def jobs_list(limit: int = 20) -> None:
    """The newest jobs."""
    from switchyard.pipeline.control import job_summary, list_jobs
    from switchyard.store.db import init_db

    settings = get_settings()
    init_db(settings)
    for job in list_jobs(settings, limit=limit):
        s = job_summary(job)
        c = s["request_counts"]
        typer.echo(f"{job.id}  {job.status:<11} {c['completed']:>6}/{c['total']:<6} failed {c['failed']:<5} "
                   f"{job.created_at:%Y-%m-%d %H:%M}  {job.input_name}")


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """One job as JSON, with its per-state request counts."""
    from switchyard.pipeline.control import get_job, job_summary, state_counts

    settings = get_settings()
    try:
        summary = job_summary(get_job(settings, job_id))
    except SwitchyardError as e:
        _fail(e)
    summary["states"] = state_counts(settings, job_id)
    typer.echo(json.dumps(summary, indent=2))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Stop a job: nothing new is sent to providers; finished results stay downloadable."""
    from switchyard.pipeline.control import cancel_job

    settings = get_settings()
    try:
        finalize_now = cancel_job(settings, job_id)
    except SwitchyardError as e:
        _fail(e)
    if finalize_now:
        from switchyard.pipeline.finalize import finalize_job

        finalize_job(settings, job_id)
    typer.echo(f"{job_id}: cancelling")


@jobs_app.command("resume")
def jobs_resume(
    job_id: str,
    out: Annotated[Path, typer.Option("--out", "-o")] = Path("results.jsonl"),
    errors: Annotated[Path, typer.Option("--errors", "-e")] = Path("errors.jsonl"),
) -> None:
    """Finish a job whose run was interrupted, without redoing stored results."""
    from switchyard.pipeline.control import resume_plan
    from workers.submit import enqueue_dispatch, enqueue_finalize, enqueue_shard

    settings = get_settings()
    try:
        with system(settings):
            plan = resume_plan(settings, job_id)
            for shard in plan.shards:
                enqueue_shard(job_id, shard)
            for request_id, custom_id in plan.dispatching:
                enqueue_dispatch(job_id, request_id, custom_id)
            if plan.finalize:
                enqueue_finalize(job_id)
            console.print(f"resuming {job_id}: {len(plan.shards)} shards, {len(plan.dispatching)} in-flight requests")
            follow(settings, job_id)
            write_results(settings, job_id, out, errors)
    except SwitchyardError as e:
        _fail(e)


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="interactive,gpu | maintenance,dispatch,judge (comma-separated, "
                                           "polled in this order)")] = "interactive,gpu",
    concurrency: Annotated[int | None, typer.Option(help="processes (gpu) or threads (dispatch)")] = None,
    loglevel: str = "INFO",
    name: Annotated[str | None, typer.Option(help="node name when several workers share a host "
                                                 "(default: the queues)")] = None,
) -> None:
    """A long-lived worker for deployments (broker from SWITCHYARD_BROKER_URL)."""
    from switchyard.embedded import worker_command

    settings = get_settings()
    threads = not {"gpu", "interactive"} & set(queues.split(","))
    conc = concurrency or (settings.dispatch_concurrency if threads else settings.gpu_concurrency)
    cmd = worker_command(queues, pool="threads" if threads else "prefork", concurrency=conc,
                         name=name or queues.replace(",", "-"), loglevel=loglevel)
    os.execv(sys.executable, cmd)


@app.command()
def beat(loglevel: str = "INFO") -> None:
    """The periodic scheduler (refresh_scores). Run exactly one per deployment."""
    from switchyard.embedded import beat_command

    os.execv(sys.executable, beat_command(Path(get_settings().data_dir).resolve(), loglevel))
