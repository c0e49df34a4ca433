"""The `assetgen` command line: the commands of flows/cli/, one module per group."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

import click
import typer
from typer.core import TyperGroup

# With no network, Prefect's telemetry call only logs errors.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

MARKUP = None  # help texts say "[default: ...]": plain text, not rich markup
# Each command and where it lives ("module:attribute": a function, or a Typer of a group).
COMMANDS = {
    "plan": "plan:plan",
    "run": "run:run",
    "collect": "run:collect",
    "report": "report:report",
    "budget": "budget:budget",
    "provenance": "provenance:provenance",
    "serve": "maintain:serve",
    "refresh": "maintain:refresh",
    "publish": "publish:publish",
    "revise": "revise:revise",
    "catalog": "catalog:app",
    "batches": "batches:app",
    "review": "review:app",
}


class LazyCommands(TyperGroup):
    """Imports a command's module when that command is asked for: `assetgen catalog list`
    does not pay for the imports of every other command (Prefect, Pillow, the SDK)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name].split(":")
        found: Any = getattr(importlib.import_module(f"assetgen.flows.cli.{module}"), attribute)
        if not isinstance(found, typer.Typer):
            found, function = typer.Typer(), found
            found.command(name=cmd_name)(function)
        found.rich_markup_mode = MARKUP  # as the group's own commands would have it
        command = typer.main.get_command(found)
        command.name = cmd_name
        return command


app = typer.Typer(
    name="assetgen",
    cls=LazyCommands,
    help="Batch image-asset pipeline: manifest in, priced GPT Image generations out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=MARKUP,
)


@app.callback()
def _root() -> None:
    """Batch image-asset pipeline: manifest in, priced GPT Image generations out."""


def main() -> None:
    """Entry point for `python -m assetgen`."""
    app(prog_name="assetgen")


if __name__ == "__main__":
    sys.exit(main())
