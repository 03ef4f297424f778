"""``switchyard route`` (a routing decision without dispatch), ``switchyard train`` and
``switchyard glider-keys``.

    switchyard route "Write a haiku about rain"
    switchyard route --file conversation.json --policy arch --routes routes.yaml
    switchyard route --batch jobs.jsonl --policy tryage      # one JSON line per custom_id
    switchyard train tryage ../shared/data/routing/routellm_gsm8k
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from switchyard.cli import app
from switchyard.config import Settings, get_settings, reset_settings
from switchyard.errors import SwitchyardError

console = Console(stderr=True)


def _fail(message: str) -> NoReturn:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(2)


def _settings(**env: object) -> Settings:
    """CLI options become SWITCHYARD_* env vars (so every policy built later sees them)."""
    for key, value in env.items():
        if value is not None:
            os.environ[f"SWITCHYARD_{key.upper()}"] = str(value)
    reset_settings()
    return get_settings()


def _parse_flags(flags: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in flags or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value) if sep else 1.0
        except ValueError:
            _fail(f"--flag {item!r}: expected NAME=WEIGHT, e.g. cost=1")
    return out


def _conversation(text: str | None, file: Path | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(messages, routing) from TEXT and/or a conversation file.

    The file holds a JSON list of ``{role, content}`` messages, or an object with
    ``messages`` (or an OpenAI Batch ``body.messages``) and an optional ``routing``.
    TEXT, when given too, is appended as the latest user turn.
    """
    messages: list[dict[str, Any]] = []
    routing: dict[str, Any] = {}
    if file is not None:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as e:
            _fail(f"cannot read {file}: {e.strerror}")
        except json.JSONDecodeError as e:
            _fail(f"{file}: not valid JSON ({e.msg}, line {e.lineno})")
        if isinstance(data, dict):
            routing = data.get("routing") or {}
            data = data.get("messages") or (data.get("body") or {}).get("messages")
        if not isinstance(data, list) or not all(isinstance(m, dict) and "role" in m for m in data):
            _fail(f"{file}: expected a JSON list of {{role, content}} messages (or {{\"messages\": [...]}})")
        messages = list(data)
    if text:
        messages.append({"role": "user", "content": text})
    if not messages:
        _fail("give the prompt as TEXT, or a conversation with --file (or a job file with --batch)")
    return messages, routing


def _decision_json(d: Any) -> dict[str, Any]:
    out = d.to_json()
    if "route" in d.details:
        out["route"] = d.details["route"]
    return out


class _Policies:
    """One instance per policy name for the whole command (models load once). ``--routes``
    reaches Arch-Router through SWITCHYARD_ROUTES_PATH, so it also applies to per-line policies."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def __call__(self, name: str) -> Any:
        from switchyard.routing.base import get_policy

        if name not in self._cache:
            self._cache[name] = get_policy(name)
        return self._cache[name]


@app.command()
def route(
    text: Annotated[str | None, typer.Argument(help="the prompt (the latest user message)")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", "-f", help="conversation JSON: a list of {role, content} messages, or {messages, routing}")] = None,
    policy: Annotated[str | None, typer.Option(
        "--policy", "-p", help="policy registry key (default: settings): tagrouter, arch, tryage, glider+tagrouter, "
        "knn, mf, cascade, fixed:<model> ...")] = None,
    routes: Annotated[Path | None, typer.Option(help="Arch-Router route config YAML")] = None,
    batch: Annotated[Path | None, typer.Option(
        help="JSONL in the job input format: print one decision per line, keyed by custom_id")] = None,
    knob: Annotated[float | None, typer.Option(help="the policy's knob (theta, lambda, tau ...)")] = None,
    flag: Annotated[list[str] | None, typer.Option(
        "--flag", help="Tryage flag NAME=WEIGHT (cost, size, age, latency); repeatable")] = None,
    catalog: Annotated[Path | None, typer.Option(help="model catalog YAML (default: settings)")] = None,
    tagger: Annotated[str | None, typer.Option(help="tagger: offline | hf | null (default: settings)")] = None,
) -> None:
    """Print the routing decision as JSON (model, ranked, tags or route, reason, policy); nothing is dispatched."""
    settings = _settings(routes_path=routes, catalog_path=catalog, tagger=tagger)
    from switchyard.catalog import Catalog

    try:
        cat = Catalog.load(settings.catalog_path)
    except SwitchyardError as e:
        _fail(str(e))
    policies = _Policies()
    name = policy or settings.policy
    try:
        if batch is not None:
            for line in _route_batch(settings, cat, batch, name, knob, policies):
                typer.echo(json.dumps(line, default=str))
            return
        messages, routing = _conversation(text, file)
        line = _route_one(settings, cat, messages, routing, name, knob, _parse_flags(flag), policies)
    except SwitchyardError as e:
        _fail(str(e))
    typer.echo(json.dumps(line, indent=2, default=str))


def _route_one(settings: Settings, catalog: Any, messages: list[dict[str, Any]], routing: dict[str, Any], name: str,
               knob: float | None, flags: dict[str, float], policies: _Policies) -> dict[str, Any]:
    from pydantic import ValidationError

    from switchyard.pipeline.route import decide_requests, request_from_messages
    from switchyard.routing.base import RoutingOptions

    try:
        opts = RoutingOptions.model_validate({**routing, **({"flags": flags} if flags else {})})
    except ValidationError as e:
        _fail(f"routing: {e.errors()[0]['msg']}")
    req = request_from_messages(messages, opts, "cli")
    _check_policy(opts.policy or name, policies)
    return _decision_json(decide_requests(settings, [req], catalog=catalog, policy=name, knob=knob,
                                          get=policies)[0])


def _check_policy(name: str, policies: _Policies) -> None:
    try:
        policies(name)
    except SwitchyardError:
        raise
    except (TypeError, ValueError) as e:
        _fail(f"policy {name!r}: {e}")


def _route_batch(settings: Settings, catalog: Any, path: Path, name: str, knob: float | None,
                 policies: _Policies) -> Iterator[dict[str, Any]]:
    from switchyard import AUTO_MODEL
    from switchyard.jobs import ParsedLine, validate_lines
    from switchyard.pipeline.route import decide_requests
    from switchyard.routing.base import RouteRequest, RoutingOptions, policy_names

    if not path.is_file():
        _fail(f"{path} does not exist or is not a file")
    known = set(policy_names())

    def policy_ok(p: str) -> bool:
        return p in known or p.startswith("fixed:") or (p.startswith("glider+") and policy_ok(p[len("glider+"):]))

    _check_policy(name, policies)
    with path.open("rb") as fh:
        results = validate_lines(fh, catalog, max_prompt_tokens=settings.max_prompt_tokens, policy_ok=policy_ok)
    parsed = [r for r in results if isinstance(r, ParsedLine)]
    auto = [r for r in parsed if r.model == AUTO_MODEL]
    reqs = [RouteRequest(id=r.custom_id, prompt=r.prompt, messages=r.messages, input_tokens=r.input_tokens,
                         options=RoutingOptions.model_validate(r.routing or {})) for r in auto]
    decided = dict(zip([r.custom_id for r in auto],
                       decide_requests(settings, reqs, catalog=catalog, policy=name, knob=knob, get=policies),
                       strict=True))
    for r in results:
        if not isinstance(r, ParsedLine):
            yield {"custom_id": r.custom_id, "line": r.line_no,
                   "error": {"code": r.code, "message": r.message, "field": r.field}}
        elif r.model != AUTO_MODEL:
            yield {"custom_id": r.custom_id, "model": r.model, "policy": "explicit",
                   "reason": "the request named a concrete model: no routing"}
        else:
            yield {"custom_id": r.custom_id, **_decision_json(decided[r.custom_id])}


@app.command()
def train(
    policy: Annotated[str, typer.Argument(help="tryage | mf | cascade | glider")],
    dataset_dir: Annotated[Path, typer.Argument(help="routing dataset folder (FORMAT.md layout); its train split")],
    out: Annotated[Path | None, typer.Option(help="artifact path (default: <artifacts_dir>/<policy>.pt)")] = None,
    seed: Annotated[int, typer.Option(help="training seed")] = 0,
    limit: Annotated[int | None, typer.Option(help="train on a seeded subset of at most N prompts", min=1)] = None,
) -> None:
    """Train a learned router on a dataset's train split and save its artifact (where the live policy loads it)."""
    from switchyard.routing.quality import train_policy

    settings = get_settings()
    try:
        path = train_policy(policy, dataset_dir, settings, out=out, seed=seed, limit=limit)
    except SwitchyardError as e:
        _fail(str(e))
    report: dict[str, Any] = {"policy": policy, "artifact": str(path), "dataset": str(dataset_dir), "seed": seed}
    if policy == "glider":
        from switchyard.routing.glider import GliderPolicy

        g = GliderPolicy(keys="train", artifact=path)
        report["keys"] = {m: v["key"] for m, v in g.keys_table().items()}
    typer.echo(json.dumps(report, indent=2))


@app.command("glider-keys")
def glider_keys(
    artifact: Annotated[Path | None, typer.Option(help="glider artifact (default: <artifacts_dir>/glider.pt)")] = None,
    catalog: Annotated[Path | None, typer.Option(help="model catalog YAML (default: settings)")] = None,
    keys: Annotated[str | None, typer.Option(help="auto | catalog | train (default: settings)")] = None,
) -> None:
    """Show GLIDER's key (capability description) for every model, and where it came from."""
    from switchyard.catalog import Catalog
    from switchyard.routing.glider import GliderPolicy

    settings = _settings(catalog_path=catalog)
    try:
        cat = Catalog.load(settings.catalog_path)
        g = GliderPolicy(keys=keys, artifact=artifact)
        table = g.keys_table(cat) or g.keys_table()  # none for this catalog: the trained keys as stored
    except (SwitchyardError, ValueError) as e:
        _fail(str(e))
    typer.echo(json.dumps(table, indent=2))
