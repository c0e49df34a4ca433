"""`assetgen run` and `assetgen collect`: generate a manifest, store what batches made."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from assetgen.flows.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SOME_FAILED,
    BudgetOpt,
    ConfigOpt,
    JsonOpt,
    ManifestFormatOpt,
    ModeOpt,
    bad_input,
    check_credentials,
)
from assetgen.flows.local_server import prefect_api
from assetgen.tasks.config.job import ConfigError, load_job_config
from assetgen.tasks.plan.overlay_check import check_manifest
from assetgen.tasks.plan.pricing import format_usd


def run(
    manifest: Annotated[str, typer.Argument(help="Manifest path or URL (s3://, memory://, ...).")],
    config: ConfigOpt = None,
    fmt: ManifestFormatOpt = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Asset store URL [default: config store].")
    ] = None,
    budget: BudgetOpt = None,
    ipm: Annotated[float | None, typer.Option("--ipm", help="Images per minute.")] = None,
    rpm: Annotated[float | None, typer.Option("--rpm", help="Requests per minute.")] = None,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", help="Requests in flight [default: rate x latency]."),
    ] = None,
    provider: Annotated[
        str | None, typer.Option("--provider", help="openai or placeholder (offline).")
    ] = None,
    mode: ModeOpt = None,
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
        check_credentials(cfg)
        # Overlays that would fail a rendition: warned about before anything is spent, and
        # not stopped for (the pictures are fine; `refresh --manifest` fixes the text).
        overlays = check_manifest(cfg, manifest, fmt)
        if overlays.total and not as_json:
            _warn_overlays(overlays.lines(), overlays.total)
        config_url = str(config) if config else None
        if shards and not os.environ.get("PREFECT_API_URL"):
            raise ConfigError(
                "--shards runs shards on a Prefect work pool: start a Prefect server, deploy "
                "deployments/prefect.yaml and start workers, then set PREFECT_API_URL "
                "(README: Deploying)"
            )
        if shards:
            from assetgen.flows.sharded import generate_sharded

            summary = generate_sharded(manifest, shards, config_url, overrides, fmt)
        else:
            from assetgen.flows.generate import generate_assets

            with prefect_api(), _progress_display(as_json):
                summary = generate_assets(manifest, config_url, overrides, fmt, None)
    except ConfigError as e:
        bad_input(e, as_json)
    if overlays.total:
        summary["overlay_problems"] = overlays.as_json()
    if as_json:
        print(json.dumps(summary))
    else:
        _print_run(summary)
    if summary["interrupted"]:
        raise typer.Exit(EXIT_INTERRUPTED)
    done = summary["failed"] + summary["budget_exhausted"] + summary["stopped"] == 0
    raise typer.Exit(EXIT_OK if done else EXIT_SOME_FAILED)


def _warn_overlays(lines: list[str], count: int) -> None:
    # On stderr, before the progress display starts: seen while there is time to stop.
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(
        f"[yellow]warning:[/] {count:,} overlay(s) would fail their rendition; the rows are "
        "generated all the same (fix the text, then `assetgen refresh --manifest`)"
    )
    for line in lines:
        console.print(f"  {escape(line)}")


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
    if p := r.get("period"):
        console.print(
            f"  {p['period']} {p['key']}: {format_usd(p['spent_before_usd'])} spent before this "
            f"run, {format_usd(p['left_after_usd'])} left of {format_usd(p['cap_usd'])} "
            "(assetgen budget)"
        )
    if r["mode"] == "batch":
        console.print(
            f"  submitted {r['submitted']:,} in {len(r['batches'])} batches, "
            f"{format_usd(r['batch_reserved_usd'])} reserved at the batch price; "
            "run `assetgen collect` to store the results"
        )
        if r.get("sent_online"):
            console.print(
                f"  sent {r['sent_online']:,} online: edits in sizes the Batch API does not take"
            )
    if r["stop_reason"]:
        console.print(f"  [bold red]stopped:[/] {escape(r['stop_reason'])}")
    for failure in r["top_failures"]:
        console.print(f"  [yellow]{failure['count']} failed:[/] {escape(failure['reason'])}")
    if r["rejected"]:
        console.print(f"  rejected rows: {escape(r['rejects_file'])}")
    if r.get("report"):
        console.print(f"  contact sheet: {escape(r['report'])}")
    if r.get("provenance"):
        console.print(f"  {escape(r['provenance'])}")
    if (review := r.get("review") or {}).get("pending"):
        console.print(f"  {review['pending']} wait for review: {escape(review['command'])}")
    for error in r.get("rendition_errors") or []:  # renditions or catalog commits that failed
        console.print(f"  [yellow]warning:[/] {escape(error)}")


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
        check_credentials(cfg)
        from assetgen.flows.batch import collect_batches

        with prefect_api():
            summary = collect_batches(str(config) if config else None, overrides, wait)
    except ConfigError as e:
        bad_input(e, as_json)
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
    for error in r["rendition_errors"]:
        console.print(f"  [yellow]warning:[/] {escape(error)}")


@contextlib.contextmanager
def _progress_display(as_json: bool) -> Iterator[None]:
    """A live display on a terminal; none for --json or a pipe (the flow logs plain lines)."""
    if as_json or not sys.stdout.isatty():
        yield
        return
    from assetgen.flows.cli.run_display import REFRESH_S, LiveProgress
    from assetgen.tasks.reporting.progress import Watch, displaying

    with (
        LiveProgress(Console(highlight=False)) as live,
        displaying(Watch(live, REFRESH_S, live.stop)),
    ):
        yield
