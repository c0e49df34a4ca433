"""The `assetgen` command line."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flows.batch_cli import app as batches_app
from flows.budget_cli import budget
from flows.catalog_cli import app as catalog_app
from flows.local_server import prefect_api
from flows.report_cli import report
from tasks.capabilities import load_model_table
from tasks.config import ConfigError, JobConfig, load_job_config
from tasks.manifest import Reject
from tasks.plan import Planner, PlanSummary
from tasks.pricing import Cost, format_usd, load_price_table
from tasks.rejects import rejects_file
from tasks.rows import RowContext

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


app.add_typer(catalog_app, name="catalog")
app.add_typer(batches_app, name="batches")
app.command(name="report")(report)
app.command(name="budget")(budget)


@app.callback()
def _root() -> None:
    """Batch image-asset pipeline: manifest in, priced GPT Image generations out."""


EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it

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
        cfg = load_job_config(config, {"budget.cap_usd": budget})
        planner = Planner(RowContext.build(cfg, load_model_table()), load_price_table())
        summary = PlanSummary()
        with rejects_file(rejects_url) as write_reject:
            for item in planner.plan(manifest, fmt):
                summary.add(item)
                if isinstance(item, Reject):
                    write_reject(item)
    except ConfigError as e:
        _bad_input(e, as_json)

    prices_read_on = planner.prices.read_on.isoformat()
    batch_cost = summary.batch_cost(planner.prices)
    result: dict[str, Any] = {
        "manifest": manifest,
        "rows": summary.rows,
        "valid_rows": summary.valid_rows,
        "rejected_rows": summary.rejected_rows,
        "jobs": summary.jobs,
        "duplicate_jobs": summary.duplicate_jobs,
        "cost_usd": _cost_dict(summary.cost),
        "batch_cost_usd": _cost_dict(batch_cost),
        "prices_read_on": prices_read_on,
        "mode": cfg.mode,
        "budget_usd": cfg.budget.cap_usd,
        "worst_case_fits_budget": cfg.budget.cap_usd is None
        or (batch_cost if cfg.mode == "batch" else summary.cost).worst <= cfg.budget.cap_usd,
        "rejects_file": rejects_url,
        "top_reject_reasons": summary.top_reasons(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if as_json:
        print(json.dumps(result))
    else:
        _print_plan(result)
    raise typer.Exit(EXIT_SOME_FAILED if summary.rejected_rows else EXIT_OK)


def _cost_dict(cost: Cost) -> dict[str, float]:
    return {
        "low": round(cost.low, 6),
        "expected": round(cost.expected, 6),
        "worst": round(cost.worst, 6),
    }


def _print_plan(r: dict[str, Any]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    cost = r["cost_usd"]
    console.print(f"[bold]Plan for[/] {r['manifest']}")
    console.print(
        f"  rows {r['rows']:,}   valid {r['valid_rows']:,}   rejected {r['rejected_rows']:,}"
    )
    dup = f"   ({r['duplicate_jobs']:,} duplicate images merged)" if r["duplicate_jobs"] else ""
    console.print(f"  jobs {r['jobs']:,} images{dup}")
    table = Table(show_edge=False, box=None, padding=(0, 2))
    for column in ("cost", "low", "expected", "worst case"):
        table.add_column(column, justify="left" if column == "cost" else "right")
    for label, c in (("online", cost), ("batch (--mode batch)", r["batch_cost_usd"])):
        table.add_row(
            label, format_usd(c["low"]), format_usd(c["expected"]), format_usd(c["worst"])
        )
    console.print(table)
    console.print(f"  [dim]prices read {r['prices_read_on']}[/]")
    if r["budget_usd"] is not None:
        verdict = (
            "[green]worst case fits[/]"
            if r["worst_case_fits_budget"]
            else "[yellow]worst case is over budget: the run stops when it is spent[/]"
        )
        console.print(f"  budget {format_usd(r['budget_usd'])}: {verdict}")
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


@app.command()
def run(
    manifest: Annotated[str, typer.Argument(help="Manifest path or URL (s3://, memory://, ...).")],
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Asset store URL [default: config store].")
    ] = None,
    budget: Annotated[
        float | None, typer.Option("--budget", help="Hard cap on spend for this run, USD.")
    ] = None,
    ipm: Annotated[float | None, typer.Option("--ipm", help="Images per minute.")] = None,
    rpm: Annotated[float | None, typer.Option("--rpm", help="Requests per minute.")] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", help="Requests in flight [default: rate x latency]."),
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="openai or placeholder (offline).")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            "--mode",
            help="online, or batch: submit to OpenAI's Batch API at its discount and store the "
            "results later with `assetgen collect`.",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(
            "--shards",
            min=1,
            help="Split into N runs of the generate_shard deployment on its work pool "
            "(needs a Prefect server, the deployments and workers; see README Deploying).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate every valid row into the store, within the rate limit and the budget.

    Exit code 0: every valid row has its asset; 1: some failed or were left
    for lack of budget; 2: the manifest or config cannot be used (nothing spent).
    """
    overrides = {
        "store": store,
        "budget.cap_usd": budget,
        "limits.ipm": ipm,
        "limits.rpm": rpm,
        "limits.concurrency": concurrency,
        "provider": provider,
        "mode": mode,
    }
    try:
        # Fail fast, before Prefect starts, on what can be checked here.
        cfg = load_job_config(config, overrides)
        _check_credentials(cfg)
        config_url = str(config) if config else None
        if shards and not os.environ.get("PREFECT_API_URL"):
            raise ConfigError(
                "--shards runs shards on a Prefect work pool: start a Prefect server, deploy "
                "deployments/prefect.yaml and start workers, then set PREFECT_API_URL "
                "(README: Deploying)"
            )
        if shards:
            from flows.sharded import generate_sharded

            summary = generate_sharded(manifest, shards, config_url, overrides, fmt)
        else:
            from flows.generate import generate_assets

            with prefect_api(), _progress_display(as_json):
                summary = generate_assets(manifest, config_url, overrides, fmt, None)
    except ConfigError as e:
        _bad_input(e, as_json)
    if as_json:
        print(json.dumps(summary))
    else:
        _print_run(summary)
    if summary["interrupted"]:
        raise typer.Exit(EXIT_INTERRUPTED)
    done = summary["failed"] + summary["budget_exhausted"] + summary["stopped"] == 0
    raise typer.Exit(EXIT_OK if done else EXIT_SOME_FAILED)


@app.command()
def collect(
    store: Annotated[
        str | None, typer.Option("--store", help="Asset store URL [default: config store].")
    ] = None,
    config: ConfigOpt = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Poll until every open batch is finished and collected.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Store the results of finished Batch API batches: images, renditions, catalog, spend.

    Collecting twice is free: a collected batch is not read again. Exit code
    0: nothing failed; 1: some lines failed or a batch could not be read.
    """
    overrides = {"store": store, "provider": "openai", "mode": "batch"}
    try:
        cfg = load_job_config(config, overrides)
        _check_credentials(cfg)
        from flows.batch import collect_batches

        with prefect_api():
            summary = collect_batches(str(config) if config else None, overrides, wait)
    except ConfigError as e:
        _bad_input(e, as_json)
    if as_json:
        print(json.dumps(summary))
    else:
        _print_collect(summary)
    raise typer.Exit(EXIT_SOME_FAILED if summary["failed"] or summary["errors"] else EXIT_OK)


def _print_collect(r: dict[str, Any]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"[bold]Collect {r['run_id']}[/] from {escape(r['store'])}: "
        f"{len(r['collected'])} batches collected, {len(r['waiting'])} still running"
    )
    for b in r["collected"]:
        console.print(
            f"  {b['key']} ({b['status']}): {b['generated']} stored, {b['failed']} failed, "
            f"{b['returned']} returned to the plan, {format_usd(b['spent_usd'])} of "
            f"{format_usd(b['reserved_usd'])} reserved"
        )
    for b in r["waiting"]:
        console.print(f"  {b['key']} ({b['status'] or b['state']}): {b['jobs']} jobs waiting")
    for b in r["abandoned"]:
        console.print(f"  {b['key']}: never created at OpenAI; its {b['jobs']} jobs run again")
    for failure in r["top_failures"]:
        console.print(f"  [yellow]failed:[/] {escape(failure)}")
    for error in r["errors"]:
        console.print(f"  [red]error:[/] {escape(error)}")


@contextlib.contextmanager
def _progress_display(as_json: bool) -> Iterator[None]:
    """A live display on a terminal; none for --json or a pipe (the flow logs plain lines)."""
    if as_json or not sys.stdout.isatty():
        yield
        return
    from flows.run_display import REFRESH_S, LiveProgress
    from tasks.progress import Watch, displaying

    with (
        LiveProgress(Console(highlight=False)) as live,
        displaying(Watch(live, REFRESH_S, live.stop)),
    ):
        yield


def _check_credentials(cfg: JobConfig) -> None:
    if cfg.provider == "openai" and not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError("provider openai needs OPENAI_API_KEY in the environment")


@app.command()
def serve(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Serve just this deployment; repeatable [default: all]."),
    ] = None,
    prefect_file: Annotated[
        Path | None, typer.Option("--prefect-file", help="[default: deployments/prefect.yaml]")
    ] = None,
) -> None:
    """Serve the deployments of prefect.yaml in this process, schedules included (no work pool).

    Schedules fire only with a Prefect server (`prefect server start`, then
    PREFECT_API_URL); their `active` flags in prefect.yaml are kept.
    """
    from prefect import serve as prefect_serve

    from flows.serve import PREFECT_YAML, served_deployments

    try:
        deployments = served_deployments(prefect_file or PREFECT_YAML, only)
    except (OSError, ValueError) as e:
        _bad_input(e, False)
    prefect_serve(*deployments)


@app.command()
def refresh(
    preset: Annotated[
        list[str] | None,
        typer.Option("--preset", "-p", help="Preset to (re)render; repeatable [default: config]."),
    ] = None,
    store: Annotated[str | None, typer.Option("--store", help="Store URL.")] = None,
    config: ConfigOpt = None,
    where: Annotated[
        list[str] | None, typer.Option("--where", help="KEY=VALUE selection; repeatable.")
    ] = None,
    versions: Annotated[
        bool, typer.Option("--versions", help="Superseded versions too (default: current only).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Re-render renditions from stored originals with new or changed presets. No API calls."""
    from flows.catalog_cli import parse_where
    from flows.refresh import refresh_renditions

    try:
        load_job_config(config, {"store": store})
        with prefect_api():
            summary = refresh_renditions(
                preset, store, str(config) if config else None, parse_where(where), versions
            )
    except ConfigError as e:
        _bad_input(e, as_json)
    if as_json:
        print(json.dumps(summary))
    else:
        Console(highlight=False, soft_wrap=True).print(
            f"refreshed {summary['refreshed']} of {summary['selected']} assets with "
            f"{', '.join(summary['presets'])} (no API calls)"
        )
        for error in summary["errors"]:
            Console(stderr=True, soft_wrap=True).print(f"[yellow]{escape(error)}[/]")
    raise typer.Exit(EXIT_SOME_FAILED if summary["errors"] else EXIT_OK)


def _print_run(r: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(highlight=False, soft_wrap=True)
    console.print(f"[bold]Run {r['run_id']}[/] into {escape(r['store'])} ({r['provider']})")
    console.print(
        f"  rows {r['rows']:,}   valid {r['valid']:,}   rejected {r['rejected']:,}   "
        f"jobs {r['jobs']:,}"
    )
    console.print(
        f"  generated {r['generated']:,}   already stored {r['skipped_existing']:,}   "
        f"failed {r['failed']:,}   left for budget {r['budget_exhausted']:,}   "
        f"not sent {r['stopped']:,}"
    )
    if r["pending_in_batch"]:
        console.print(f"  {r['pending_in_batch']:,} waiting in batches not yet collected")
    cap = "no cap" if r["budget_usd"] is None else format_usd(r["budget_usd"])
    console.print(f"  spent {format_usd(r['cost_usd'])} of {cap} in {r['seconds']:.1f} s")
    if r["mode"] == "batch":
        console.print(
            f"  submitted {r['submitted']:,} in {len(r['batches'])} batches, "
            f"{format_usd(r['batch_reserved_usd'])} reserved at the batch price; "
            "run `assetgen collect` to store the results"
        )
    if r["stop_reason"]:
        console.print(f"  [bold red]stopped:[/] {escape(r['stop_reason'])}")
    for failure in r["top_failures"]:
        console.print(f"  [yellow]{failure['count']} failed:[/] {escape(failure['reason'])}")
    if r["rejected"]:
        console.print(f"  rejected rows: {escape(r['rejects_file'])}")
    if r.get("report"):
        console.print(f"  contact sheet: {escape(r['report'])}")


def _bad_input(e: Exception, as_json: bool) -> NoReturn:
    if as_json:
        print(json.dumps({"error": str(e)}))
    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {escape(str(e))}", highlight=False
    )
    raise typer.Exit(EXIT_BAD_INPUT) from None


def main() -> None:
    """Entry point for `python -m flows.cli`."""
    app(prog_name="assetgen")


if __name__ == "__main__":
    sys.exit(main())
