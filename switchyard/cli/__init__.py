"""The ``switchyard`` command. Each concern has its own module that adds commands to ``app``.

Nothing is parsed at import time; ``main()`` runs the Typer app.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Switchyard: route prompts to the best LLM for the money, in bulk.")

# Modules that register commands on ``app`` (or add sub-apps to it) when imported.
_COMMAND_MODULES = [
    "switchyard.cli.run",  # run, worker, beat, jobs ...
    "switchyard.cli.scores",  # scores import|list|show|diff|rollback, feedback
    "switchyard.cli.evaluate",  # eval
    "switchyard.cli.route",  # route, train
    "switchyard.cli.serve",  # serve, keys
    "switchyard.cli.models",  # models onboard
]


def _load_commands() -> None:
    for mod in _COMMAND_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:  # a real missing dependency, not a module not yet written
                raise


def main() -> None:
    _load_commands()
    app()
