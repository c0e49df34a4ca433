"""`assetgen plan`: validate a manifest and estimate its cost, spending nothing."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assetgen.flows.cli.common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    ConfigOpt,
    JsonOpt,
    ManifestFormatOpt,
    bad_input,
)
from assetgen.tasks.config.job import ConfigError, load_job_config
from assetgen.tasks.config.models import load_model_table
from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.manifest.rejects import rejects_file
from assetgen.tasks.manifest.rows import RowContext
from assetgen.tasks.plan.jobs import Planner, PlanSummary
from assetgen.tasks.plan.overlay_check import OverlayCheck
from assetgen.tasks.plan.pricing import Cost, format_usd, load_price_table
from assetgen.tasks.renditions.signing import credentials_note, signing_material


def _default_rejects_path(manifest: str) -> str:
    name = manifest.rstrip("/").rsplit("/", 1)[-1]
    return f"{name.split('.', 1)[0] or 'manifest'}.rejects.csv"


def plan(
    manifest: Annotated[str, typer.Argument(help="Manifest path or URL (s3://, memory://, ...).")],
    config: ConfigOpt = None,
    fmt: ManifestFormatOpt = None,
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
        material = signing_material(cfg)
        planner = Planner(RowContext.build(cfg, load_model_table()), load_price_table())
        summary = PlanSummary()
        overlays = OverlayCheck.for_config(cfg)
        with rejects_file(rejects_url) as write_reject:
            for item in planner.plan(manifest, fmt):
                summary.add(item)
                overlays.add(item)
                if isinstance(item, Reject):
                    write_reject(item)
    except ConfigError as e:
        bad_input(e, as_json)

    prices_read_on = planner.prices.read_on.isoformat()
    batch_cost = summary.batch_cost(planner.prices)
    result: dict[str, Any] = {
        "manifest": manifest,
        "rows": summary.rows,
        # The same spelling as `run --json`; valid_rows/rejected_rows are the
        # older names, kept for scripts that read them.
        "valid": summary.valid_rows,
        "rejected": summary.rejected_rows,
        "valid_rows": summary.valid_rows,
        "rejected_rows": summary.rejected_rows,
        "jobs": summary.jobs,
        "duplicate_jobs": summary.duplicate_jobs,
        # Rows with their own overlays over another row's picture: no request, no cost.
        "shared_jobs": summary.shared_jobs,
        "cost_usd": _cost_dict(summary.cost),
        "batch_cost_usd": _cost_dict(batch_cost),
        # In batch mode, edits in sizes the Batch API's JSON edit body does not
        # take go online: how many, and their part of batch_cost_usd.
        "batch_online": {
            "jobs": summary.unbatchable_jobs,
            "cost_usd": _cost_dict(summary.unbatchable_cost),
        },
        "prices_read_on": prices_read_on,
        "mode": cfg.mode,
        "budget_usd": cfg.budget.cap_usd,
        "provenance": {"signed": material is not None, "note": credentials_note(material)},
        "worst_case_fits_budget": cfg.budget.cap_usd is None
        or (batch_cost if cfg.mode == "batch" else summary.cost).worst <= cfg.budget.cap_usd,
        "rejects_file": rejects_url,
        "top_reject_reasons": summary.top_reasons(),
        # Overlays that would fail their rendition: the row is still generated.
        "overlay_problems": overlays.as_json(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if as_json:
        print(json.dumps(result))
    else:
        _print_plan({**result, "overlay_lines": overlays.lines()})
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
    console.print(f"  rows {r['rows']:,}   valid {r['valid']:,}   rejected {r['rejected']:,}")
    dup = f"   ({r['duplicate_jobs']:,} duplicate images merged)" if r["duplicate_jobs"] else ""
    console.print(f"  jobs {r['jobs']:,} images{dup}")
    if r["shared_jobs"]:
        shared = r["shared_jobs"]
        console.print(f"  + {shared:,} rows drawing their own overlays over those pictures (free)")
    table = Table(show_edge=False, box=None, padding=(0, 2))
    for column in ("cost", "low", "expected", "worst case"):
        table.add_column(column, justify="left" if column == "cost" else "right")
    for label, c in (("online", cost), ("batch (--mode batch)", r["batch_cost_usd"])):
        table.add_row(
            label, format_usd(c["low"]), format_usd(c["expected"]), format_usd(c["worst"])
        )
    console.print(table)
    if online := r["batch_online"]["jobs"]:
        cost = r["batch_online"]["cost_usd"]
        console.print(
            f"  in batch mode {online:,} edits go online, at the online price (expected "
            f"{format_usd(cost['expected'])}, in the batch row): their sizes are not among those "
            "the Batch API's JSON edit body takes"
        )
    console.print(f"  [dim]prices read {r['prices_read_on']}[/]")
    signed = r["provenance"]["signed"]
    console.print(f"  {'' if signed else '[yellow]'}{escape(r['provenance']['note'])}")
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
    if lines := r["overlay_lines"]:
        _print_overlay_problems(console, r["overlay_problems"]["count"], lines)


def _print_overlay_problems(console: Console, count: int, lines: list[str]) -> None:
    console.print(
        f"  [yellow]{count:,} overlay problem(s):[/] these renditions would fail; the rows "
        "are generated all the same (fix the text, then `assetgen refresh --manifest`)"
    )
    for line in lines:
        console.print(f"    {escape(line)}")
