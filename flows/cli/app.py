"""The `assetgen` command line: the commands of flows/cli/, one module per group."""

from __future__ import annotations

import os
import sys

import typer

from assetgen.flows.cli.batches import app as batches_app
from assetgen.flows.cli.budget import budget
from assetgen.flows.cli.catalog import app as catalog_app
from assetgen.flows.cli.maintain import refresh, serve
from assetgen.flows.cli.plan import plan
from assetgen.flows.cli.provenance import provenance
from assetgen.flows.cli.publish import publish
from assetgen.flows.cli.report import report
from assetgen.flows.cli.review import app as review_app
from assetgen.flows.cli.revise import revise
from assetgen.flows.cli.run import collect, run

# With no network, Prefect's telemetry call only logs errors.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

app = typer.Typer(
    name="assetgen",
    help="Batch image-asset pipeline: manifest in, priced GPT Image generations out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Help texts say "[default: ...]": plain text, not rich markup.
    rich_markup_mode=None,
)
for command in (plan, run, collect, report, budget, provenance, serve, refresh, publish, revise):
    app.command()(command)
app.add_typer(catalog_app, name="catalog")
app.add_typer(batches_app, name="batches")
app.add_typer(review_app, name="review")


@app.callback()
def _root() -> None:
    """Batch image-asset pipeline: manifest in, priced GPT Image generations out."""


def main() -> None:
    """Entry point for `python -m assetgen`."""
    app(prog_name="assetgen")


if __name__ == "__main__":
    sys.exit(main())
