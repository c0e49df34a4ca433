"""`assetgen budget`: the period's cap, what every run, shard and batch spent and holds."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assetgen.flows.cli.common import ConfigOpt, StoreOpt, fail
from assetgen.tasks.budget.report import PeriodReport, budget_report
from assetgen.tasks.config.job import ConfigError, load_job_config
from assetgen.tasks.plan.pricing import format_usd
from assetgen.tasks.store.assets import AssetStore


def budget(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    period: Annotated[
        str | None,
        typer.Option(
            "--period", help="day or month [default: the config's budget.period, or day]."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Every period from this day (YYYY-MM-DD) to now."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """Spend in the current period (UTC) against the period cap, by every run and batch.

    Held money is claimed by live runs and open batches; a run that died
    holding a claim has it counted as spent (it may have been billed).
    """
    try:
        cfg = load_job_config(config, {"store": store})
    except ConfigError as e:
        fail(str(e))
    chosen = period or cfg.budget.period or "day"
    if chosen != "day" and chosen != "month":
        fail(f"--period must be day or month, not {chosen!r}")
    # The config's cap applies only to the period it is set for.
    cap = cfg.budget.period_cap_usd if cfg.budget.period == chosen else None
    try:
        start = date.fromisoformat(since) if since else None
    except ValueError:
        fail(f"--since {since!r} is not a date (YYYY-MM-DD)")
    reports = budget_report(AssetStore(cfg.store, cfg.store_options), chosen, cap, start)
    if as_json:
        print(
            json.dumps(
                {"store": cfg.store, "periods": [r.model_dump(mode="json") for r in reports]}
            )
        )
        return
    console = Console(highlight=False, soft_wrap=True)
    for report in reports:
        _print_period(console, cfg.store, report)


def _print_period(console: Console, store: str, r: PeriodReport) -> None:
    cap = "no period cap" if r.cap_usd is None else f"cap {format_usd(r.cap_usd)}"
    left = "" if r.left_usd is None else f"   left {format_usd(r.left_usd)}"
    console.print(f"[bold]{r.period} {r.key}[/] (UTC) of {escape(store)}")
    console.print(
        f"  {cap}   spent {format_usd(r.spent_usd)}   held {format_usd(r.held_usd)} "
        f"by live runs and open batches{left}"
    )
    if r.died_holding_usd:
        console.print(
            f"  [yellow]runs that died held {format_usd(r.died_holding_usd)}: counted as spent[/]"
        )
    if not r.accounts:
        console.print("  nothing spent")
        return
    table = Table(show_edge=False)
    for column in ("run or batch", "kind", "started", "spent", "held", "state"):
        table.add_column(column)
    for a in r.accounts:
        table.add_row(
            a.id,
            a.kind,  # a shard's or batch's id starts with its run's
            f"{a.opened_at:%Y-%m-%d %H:%M:%S}",
            format_usd(a.spent_usd),
            format_usd(a.held_usd),
            f"died holding {format_usd(a.held_usd)}" if a.state == "died" else a.state,
        )
    console.print(table)
