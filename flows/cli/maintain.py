"""`assetgen serve` and `assetgen refresh`: deployments served in process, renditions redone."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from assetgen.flows.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    ConfigOpt,
    JsonOpt,
    ManifestFormatOpt,
    bad_input,
    parse_where,
)
from assetgen.flows.local_server import prefect_api
from assetgen.tasks.config.job import ConfigError, load_job_config
from assetgen.tasks.renditions.signing import signing_material


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

    from assetgen.flows.deployments import PREFECT_YAML, served_deployments

    try:
        deployments = served_deployments(prefect_file or PREFECT_YAML, only)
    except (OSError, ValueError) as e:
        bad_input(e, False)
    prefect_serve(*deployments)


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
    manifest: Annotated[
        str | None,
        typer.Option(
            "--manifest",
            help="Updated manifest: the assets its rows match by id take its columns; "
            "overlay presets re-rendered [default presets: those with overlays].",
        ),
    ] = None,
    fmt: ManifestFormatOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-render renditions from stored originals with new or changed presets. No API calls.

    With --manifest, new overlay text (a price, a headline) from the rows' columns.
    """
    from assetgen.flows.refresh import refresh_renditions

    try:
        signing_material(load_job_config(config, {"store": store}))  # fail before any work
        with prefect_api():
            summary = refresh_renditions(
                preset,
                store,
                str(config) if config else None,
                parse_where(where),
                versions,
                manifest,
                fmt,
            )
    except ConfigError as e:
        bad_input(e, as_json)
    if as_json:
        print(json.dumps(summary))
    else:
        _print_refresh(summary)
    failed = summary["errors"] or summary.get("rejected") or summary.get("needs_run")
    raise typer.Exit(EXIT_SOME_FAILED if failed else EXIT_OK)


def _print_refresh(summary: dict[str, Any]) -> None:
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, soft_wrap=True)
    if "manifest" in summary:
        out.print(
            f"{escape(summary['manifest'])}: {summary['rows']} valid rows, "
            f"{summary['matched']} match stored assets, {summary['unmatched']} match none, "
            f"{summary['needs_run']} need `assetgen run`, {summary['rejected']} rejected"
        )
        for line in summary["unmatched_rows"]:
            out.print(f"  no stored asset: {escape(line)}")
        for line in [*summary["needs_run_rows"], *summary["rejected_rows"]]:
            err.print(f"[yellow]{escape(line)}[/]")
        if summary["rejected"]:
            err.print(f"every reject: {escape(summary['rejects'])}")
    out.print(
        f"refreshed {summary['refreshed']} of {summary['selected']} assets with "
        f"{', '.join(summary['presets'])} (no API calls)"
    )
    for error in summary["errors"]:
        err.print(f"[yellow]{escape(error)}[/]")
