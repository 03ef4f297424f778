"""``switchyard serve`` and ``switchyard keys create|list|revoke``."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from switchyard.cli import app
from switchyard.config import get_settings

keys_app = typer.Typer(no_args_is_help=True, help="API keys (stored hashed; a key is shown once).")
app.add_typer(keys_app, name="keys")


@app.command()
def serve(host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port")] = 8000) -> None:
    """Serve the HTTP API. Zero-setup: also runs embedded Redis and workers until exit."""
    import uvicorn

    from switchyard.cli.run import system

    settings = get_settings()
    with system(settings):  # embedded Redis + workers unless SWITCHYARD_BROKER_URL is set
        uvicorn.run("api.main:create_app", factory=True, host=host, port=port, log_level="warning")


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Option(help="who the key is for")] = "") -> None:
    from switchyard.auth import create_key
    from switchyard.store.db import init_db

    s = get_settings()
    init_db(s)
    key = create_key(s, name)
    typer.echo(json.dumps({"id": key.id, "name": key.name, "key": key.secret}))


@keys_app.command("list")
def keys_list() -> None:
    from switchyard.auth import list_keys
    from switchyard.store.db import init_db

    s = get_settings()
    init_db(s)
    typer.echo(json.dumps(list_keys(s), indent=2))


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    from switchyard.auth import revoke_key

    revoke_key(get_settings(), key_id)
    typer.echo(f"revoked {key_id}")


db_app = typer.Typer(no_args_is_help=True, help="Database schema (Alembic migrations).")
app.add_typer(db_app, name="db")


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply the schema migrations to SWITCHYARD_DATABASE_URL (run once per deploy)."""
    from switchyard.store.migrate import upgrade

    upgrade(get_settings(), revision)
    typer.echo(f"database at {revision}")
