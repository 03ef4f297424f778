"""``switchyard eval DATASET_DIR``: offline evaluation of routing policies on a routing dataset.

Learns from the dataset's train split only, replays its test split, sweeps each
policy's knob and writes the report of issue 3 (see :mod:`switchyard.evaluation`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from switchyard.cli import app
from switchyard.errors import SwitchyardError

console = Console(stderr=True)


def _fmt(x: object, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec) if isinstance(x, float | int) else str(x)


@app.command("eval")
def eval_command(
    dataset_dir: Annotated[Path, typer.Argument(help="routing dataset folder (FORMAT.md layout)")],
    policy: Annotated[list[str] | None, typer.Option(
        "--policy", "-p", help="policy to evaluate; repeat for several (default: tagrouter, knn)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="report JSON")] = Path("report.json"),
    plot: Annotated[Path | None, typer.Option(help="PNG of the quality-cost curves")] = None,
    decisions: Annotated[Path | None, typer.Option(
        help="JSONL: the chosen model of every test prompt at every point")] = None,
    points: Annotated[int, typer.Option(help="knob values per policy (at least 21)", min=21)] = 21,
    tagger: Annotated[str, typer.Option(help="tagger for the prompts: offline | hf | null")] = "offline",
    cache_dir: Annotated[Path | None, typer.Option(
        help="embedding and tag cache; default <data_dir>/cache")] = None,
    limit: Annotated[int | None, typer.Option(
        help="evaluate on a seeded subset of at most N prompts per split (quick checks)", min=1)] = None,
    seed: Annotated[int, typer.Option(help="seed for --limit, random and exploration")] = 0,
    random_baseline: Annotated[bool, typer.Option(
        "--random/--no-random", help="include the random-mixing policy")] = True,
    online: Annotated[bool, typer.Option(
        help="also replay the test split as a stream through tagrouter, learning from its choices")] = False,
    refresh_every: Annotated[int, typer.Option(help="--online: refresh the tables every K requests", min=1)] = 100,
    start: Annotated[str, typer.Option(help="--online: start from 'empty' tables or the imported 'train' split")
                     ] = "train",
    exploration: Annotated[float, typer.Option(
        help="--online: share of requests Thompson-sampled", min=0.0, max=1.0)] = 0.05,
    knob: Annotated[float | None, typer.Option(help="--online: tagrouter's θ (default: the policy's)")] = None,
    pareto: Annotated[str | None, typer.Option(
        help="also draw Tryage's Pareto front of predicted quality against this flag (cost|size|age|latency)")
    ] = None,
    budget: Annotated[list[float] | None, typer.Option(
        "--budget", help="total USD for the test split: replay a budgeted job at this budget (repeat for a "
        "curve); 0 = 12 budgets from the weak to the strong model's test cost", min=0.0)] = None,
) -> None:
    """Evaluate routing policies offline: learn on train, replay test, sweep each knob.

    The report holds every single model, the per-prompt oracle, and per policy its
    points (knob, cost, quality, accept rate, model shares), APGR, CPT(80%), CPT(95%)
    and the quality at the strong model's cost.
    """
    from switchyard.evaluation import (
        default_cache_dir,
        evaluate,
        online_replay,
        plot_report,
        prepare,
        write_decisions,
    )

    if start not in ("empty", "train"):
        console.print(f"[red]error:[/] --start must be 'empty' or 'train', not {start!r}")
        raise typer.Exit(2)
    names = list(dict.fromkeys(policy or ["tagrouter", "knn"]))
    t0 = time.perf_counter()
    try:
        console.print(f"[dim]loading {dataset_dir} and computing embeddings and tags (cached)...[/]")
        data = prepare(dataset_dir, tagger=tagger, cache_dir=cache_dir or default_cache_dir(), limit=limit,
                       seed=seed)
        console.print(f"[dim]{len(data.train_idx)} train / {len(data.test_idx)} test prompts, "
                      f"{len(data.models)} models; sweeping {', '.join(names)}...[/]")
        report, all_points = evaluate(data, names, n_points=points, seed=seed, include_random=random_baseline)
        if online:
            report["online"] = online_replay(data, start=start, refresh_every=refresh_every, knob=knob,
                                             exploration_rate=exploration, seed=seed)
        if pareto:
            report["pareto"] = _pareto(data, pareto, out.with_name(f"{out.stem}_pareto_{pareto}.png"), seed)
        if budget:
            report["budget"] = _budgets(data, names, report, budget, seed)
    except SwitchyardError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
    except ValueError as e:
        console.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
    # Additions to the shape (readers may ignore them): how the run was made.
    report["run"] = {"tagger": tagger, "limit": limit, "seed": seed, "points": points,
                     "train_prompts": len(data.train_idx), "test_prompts": len(data.test_idx),
                     "elapsed_s": round(time.perf_counter() - t0, 2)}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    if decisions is not None:
        decisions.parent.mkdir(parents=True, exist_ok=True)
        write_decisions(decisions, data, all_points)
    if plot is not None:
        plot_report(report, plot)
        if budget:
            from switchyard.evaluation import plot_budget

            plot_budget(report, plot.with_name(f"{plot.stem}_budget{plot.suffix}"))
            console.print(f"budget curve: {plot.with_name(f'{plot.stem}_budget{plot.suffix}')}")
    _print_summary(report)
    console.print(f"report: {out}" + (f", plot: {plot}" if plot else "")
                  + (f", decisions: {decisions}" if decisions else ""))


def _pareto(data: object, flag: str, png: Path, seed: int) -> dict[str, object]:
    """Tryage, fitted on train, swept over the flag's weight: predicted quality vs the attribute."""
    from switchyard.evaluation import fit_policy, make_context
    from switchyard.routing.base import get_policy
    from switchyard.routing.tryage import pareto_sweep, plot_pareto

    policy = fit_policy(get_policy("tryage"), data, seed=seed)  # type: ignore[arg-type]
    result = pareto_sweep(policy, data.requests, data.catalog, make_context(data, seed=seed), flag)  # type: ignore[arg-type, attr-defined]
    png.parent.mkdir(parents=True, exist_ok=True)
    plot_pareto(result, png, title=f"Tryage Pareto front: quality vs {flag}")
    console.print(f"pareto front ({flag}): {png}")
    return {**result, "plot": str(png)}


def _budgets(data: object, names: list[str], report: dict, budgets: list[float], seed: int
             ) -> dict[str, list[dict[str, object]]]:
    """Per policy: what each budget buys (the budgeted job replayed offline), next to the best
    knob-curve point costing no more."""
    from switchyard.evaluation import (
        Point,
        budget_sweep,
        default_budgets,
        fit_policy,
        knob_best_at,
        reference,
        single_models,
    )
    from switchyard.routing.base import get_policy

    ref = reference(single_models(data))  # type: ignore[arg-type]
    grid = sorted({b for b in budgets if b > 0} | (set(default_budgets(ref)) if 0 in budgets else set()))
    out: dict[str, list[dict[str, object]]] = {}
    for name in names:
        policy = fit_policy(get_policy(name), data, seed=seed)  # type: ignore[arg-type]
        rows = budget_sweep(policy, data, grid, seed=seed)  # type: ignore[arg-type]
        knob_points = [Point(**{k: p[k] for k in ("knob", "cost_usd", "quality", "accept_rate", "share")})
                       for p in report["policies"][name]["points"]]
        for r in rows:
            r["knob_best_quality"] = knob_best_at(knob_points, float(r["budget_usd"]))
        out[name] = rows
        for r in rows:
            console.print(f"{name} budget ${r['budget_usd']:.4f}: quality {r['quality']:.4f} at ${r['cost_usd']:.4f}"
                          f" ({r['failed']} unserved); best knob point within it: "
                          f"{_fmt(r['knob_best_quality'], '.4f')}")
    return out


def _print_summary(report: dict) -> None:
    table = Table(title=f"{report['dataset']} (test split)")
    for col in ("policy", "APGR", "CPT80", "CPT95", "quality @ strong cost"):
        table.add_column(col)
    for name, pol in report["policies"].items():
        table.add_row(name, _fmt(pol["apgr"]), _fmt(pol["cpt80"]), _fmt(pol["cpt95"]),
                      _fmt(pol["quality_at_strong_cost"], ".4f"))
    console.print(table)
    onl = report.get("online")
    if onl:
        console.print(f"online ({onl['start']} start, refresh every {onl['refresh_every']}): "
                      f"quality {onl['quality']:.4f} at ${onl['cost_usd']:.4f} over {onl['requests']} requests")
