"""The `assetgen` command line."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tasks.capabilities import load_model_table
from tasks.config import ConfigError, load_job_config
from tasks.manifest import Reject
from tasks.plan import Planner, PlanSummary
from tasks.pricing import load_price_table
from tasks.rejects import rejects_file
from tasks.rows import RowContext

app = typer.Typer(
    name="assetgen",
    help="Batch image-asset pipeline: manifest in, priced GPT Image generations out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Batch image-asset pipeline: manifest in, priced GPT Image generations out."""


EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT = 0, 1, 2

ConfigOpt = Annotated[
    Path | None, typer.Option("--config", "-c", help="Job config YAML (over configs/default.yaml).")
]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", help="Manifest format: csv, parquet or jsonl (default: extension)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def _default_rejects_path(manifest: str) -> str:
    name = manifest.rstrip("/").rsplit("/", 1)[-1]
    return f"{name.split('.', 1)[0] or 'manifest'}.rejects.csv"


def _usd(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


@app.command()
def plan(
    manifest: Annotated[str, typer.Argument(help="Manifest path or URL (s3://, memory://, ...).")],
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    budget: Annotated[
        float | None, typer.Option("--budget", help="Budget in USD to compare the worst case with.")
    ] = None,
    rejects: Annotated[
        str | None,
        typer.Option(
            "--rejects", help="Where to write the rejects CSV [default: ./NAME.rejects.csv]."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Validate a manifest and estimate its cost. Spends nothing.

    Exit code 0: every row is valid; 1: some rows were rejected; 2: the
    manifest or config cannot be used.
    """
    started = time.perf_counter()
    rejects_url = rejects or _default_rejects_path(manifest)
    try:
        cfg = load_job_config(config, {"budget_usd": budget})
        planner = Planner(RowContext.build(cfg, load_model_table()), load_price_table())
        summary = PlanSummary()
        with rejects_file(rejects_url) as write_reject:
            for item in planner.plan(manifest, fmt):
                summary.add(item)
                if isinstance(item, Reject):
                    write_reject(item)
    except ConfigError as e:
        if as_json:
            print(json.dumps({"error": str(e)}))
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(e))}", highlight=False
        )
        raise typer.Exit(EXIT_BAD_INPUT) from None

    prices_read_on = planner.prices.read_on.isoformat()
    result: dict[str, Any] = {
        "manifest": manifest,
        "rows": summary.rows,
        "valid_rows": summary.valid_rows,
        "rejected_rows": summary.rejected_rows,
        "jobs": summary.jobs,
        "duplicate_jobs": summary.duplicate_jobs,
        "cost_usd": {
            "low": round(summary.cost.low, 6),
            "expected": round(summary.cost.expected, 6),
            "worst": round(summary.cost.worst, 6),
        },
        "prices_read_on": prices_read_on,
        "budget_usd": cfg.budget_usd,
        "worst_case_fits_budget": cfg.budget_usd is None or summary.cost.worst <= cfg.budget_usd,
        "rejects_file": rejects_url,
        "top_reject_reasons": summary.top_reasons(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if as_json:
        print(json.dumps(result))
    else:
        _print_plan(result)
    raise typer.Exit(EXIT_SOME_FAILED if summary.rejected_rows else EXIT_OK)


def _print_plan(r: dict[str, Any]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    cost = r["cost_usd"]
    console.print(f"[bold]Plan for[/] {r['manifest']}")
    console.print(
        f"  rows {r['rows']:,}   valid {r['valid_rows']:,}   rejected {r['rejected_rows']:,}"
    )
    dup = f"   ({r['duplicate_jobs']:,} duplicate images merged)" if r["duplicate_jobs"] else ""
    console.print(f"  jobs {r['jobs']:,} images{dup}")
    console.print(
        f"  cost low {_usd(cost['low'])}   expected {_usd(cost['expected'])}   "
        f"worst case {_usd(cost['worst'])}   [dim](prices read {r['prices_read_on']})[/]"
    )
    if r["budget_usd"] is not None:
        verdict = (
            "[green]worst case fits[/]"
            if r["worst_case_fits_budget"]
            else "[yellow]worst case is over budget: the run stops when it is spent[/]"
        )
        console.print(f"  budget {_usd(r['budget_usd'])}: {verdict}")
    if r["top_reject_reasons"]:
        table = Table(title="Top reject reasons", title_justify="left", show_edge=False)
        for col in ("column", "count", "example"):
            table.add_column(col, overflow="fold")
        for reason in r["top_reject_reasons"]:
            table.add_row(
                reason["column"],
                str(reason["count"]),
                f"row {reason['example_row']}: {reason['example']}",
            )
        console.print(table)
        console.print(f"  every reject: {r['rejects_file']}")


def main() -> None:
    """Entry point for `python -m flows.cli`."""
    app(prog_name="assetgen")


if __name__ == "__main__":
    sys.exit(main())
