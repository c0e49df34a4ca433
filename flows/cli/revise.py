"""`assetgen revise`: a new version of every rejected asset, the reviewer's note put to use."""

from __future__ import annotations

import json
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
    ModeOpt,
    StoreOpt,
    WhereOpt,
    bad_input,
    check_credentials,
    parse_where,
)
from assetgen.flows.local_server import prefect_api
from assetgen.tasks.config.job import ConfigError, JobConfig, load_job_config
from assetgen.tasks.plan.pricing import Cost, format_usd, load_price_table
from assetgen.tasks.plan.todo import skip_existing
from assetgen.tasks.revise.jobs import revision_rows
from assetgen.tasks.revise.plan import plan_revise
from assetgen.tasks.revise.select import candidates
from assetgen.tasks.store.assets import AssetStore


def revise(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    where: WhereOpt = None,
    budget: BudgetOpt = None,
    mode: ModeOpt = None,
    how: Annotated[
        str | None,
        typer.Option(
            "--how",
            help="edit: send the rejected image and the row's reference images with the note as "
            "the instruction to fix; prompt: add the note to the prompt [default: the config's "
            "revise.how].",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan and its cost; send nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Make a new version of every rejected, current asset (or those --where selects).

    Same row and parameters, the next revision number, the reviewer's note put
    to use; a rejection without a note gets a fresh variant. The new version
    starts pending; the rejected one stays, superseded. Exit code 0: every
    asset selected has its new version (or is past max_revisions, reported);
    1: some failed, were left for lack of budget or were refused (a reference
    image gone or changed); 2: the config or a filter cannot be used.
    """
    filters = parse_where(where)
    overrides = {"store": store, "budget.cap_usd": budget, "mode": mode, "revise.how": how}
    try:
        cfg = load_job_config(config, overrides)
        opened = AssetStore(cfg.store, cfg.store_options)
        if dry_run:
            result = dry_run_plan(opened, cfg, filters)
            _print_plan(result, as_json)
            raise typer.Exit(EXIT_SOME_FAILED if result["refused"] else EXIT_OK)
        check_credentials(cfg)
        if not candidates(opened, filters):
            # Nothing to do needs no Prefect run (nor its server's start-up).
            result = {**dry_run_plan(opened, cfg, filters), "dry_run": False}
            _print_plan(result, as_json)
            raise typer.Exit(EXIT_OK)
        from assetgen.flows.cli.run import _progress_display
        from assetgen.flows.revise import revise_rejected

        config_url = str(config) if config else None
        with prefect_api(), _progress_display(as_json):
            summary = revise_rejected(config_url, overrides, dict(filters))
    except ConfigError as e:
        bad_input(e, as_json)
    if as_json:
        print(json.dumps(summary))
    else:
        _print_revise(summary)
    if summary["interrupted"]:
        raise typer.Exit(EXIT_INTERRUPTED)
    unfinished = summary["failed"] + summary["budget_exhausted"] + summary["stopped"]
    raise typer.Exit(EXIT_SOME_FAILED if unfinished or summary["refused"] else EXIT_OK)


def dry_run_plan(store: AssetStore, cfg: JobConfig, where: list[tuple[str, str]]) -> dict[str, Any]:
    """The plan of a revise and what it may cost; reads the store, writes and sends nothing."""
    planned, plan = plan_revise(store, cfg, where)
    todo = skip_existing(store, planned.jobs)
    prices = load_price_table()
    batch_cost = planned.summary.batch_cost(prices)
    cost = batch_cost if cfg.mode == "batch" else planned.summary.cost
    new = {job.asset_id for job in todo.jobs}
    return {
        "dry_run": True,
        "store": cfg.store,
        "how": cfg.revise.how,
        "mode": cfg.mode,
        "provider": cfg.provider,
        "max_revisions": cfg.revise.max_revisions,
        "selected": plan.selected,
        "jobs": len(planned.jobs),
        "to_send": len(todo.jobs),
        "skipped_existing": len(todo.skipped),
        "pending_in_batch": todo.pending_in_batch,
        "revised_from": plan.counts,
        "over_max_revisions": [r.asset_id for r in plan.over_max],
        "refused": [
            {"asset_id": r.asset_id, "row_id": r.row_id, "code": r.code, "reason": r.reason}
            for r in plan.refused
        ],
        # What the jobs still to send cost (the store has the others already).
        "cost_usd": _cost(_sum(j.cost for j in todo.jobs)),
        "plan_cost_usd": _cost(planned.summary.cost),
        "batch_cost_usd": _cost(batch_cost),
        "budget_usd": cfg.budget.cap_usd,
        "worst_case_fits_budget": cfg.budget.cap_usd is None or cost.worst <= cfg.budget.cap_usd,
        "prices_read_on": prices.read_on.isoformat(),
        "revisions": [{**r, "to_send": r["asset_id"] in new} for r in revision_rows(plan)],
    }


def _sum(costs: Any) -> Cost:
    total = Cost()
    for c in costs:
        total += c
    return total


def _cost(cost: Cost) -> dict[str, float]:
    return {k: round(getattr(cost, k), 6) for k in ("low", "expected", "worst")}


def _print_plan(r: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(r))
        return
    console = Console(highlight=False, soft_wrap=True)
    if not r["selected"]:
        console.print(f"Nothing to revise: no rejected, current asset in {escape(r['store'])}")
        return
    _print_counts(console, r, f"[bold]Revise plan[/] for {escape(r['store'])}")
    console.print(
        f"  to send {r['to_send']:,}   already made {r['skipped_existing']:,}   "
        f"waiting in batches {r['pending_in_batch']:,}"
    )
    for label, key in (("online", "cost_usd"), ("batch (--mode batch)", "batch_cost_usd")):
        c = r[key]
        console.print(
            f"  {label}: low {format_usd(c['low'])}   expected {format_usd(c['expected'])}   "
            f"worst case {format_usd(c['worst'])}"
        )
    if r["budget_usd"] is not None:
        fits = "worst case fits" if r["worst_case_fits_budget"] else "worst case is over budget"
        console.print(f"  budget {format_usd(r['budget_usd'])}: {fits}")
    console.print(f"  [dim]prices read {r['prices_read_on']}[/]")
    if r["dry_run"]:
        console.print("  dry run: nothing sent")


def _print_counts(console: Console, r: dict[str, Any], head: str) -> None:
    f = r["revised_from"]
    console.print(f"{head} (how {r['how']}, mode {r['mode']})")
    console.print(
        f"  rejected {f['rejected']:,}   revisions: edit {f['edit']:,}   prompt {f['prompt']:,}   "
        f"fresh variant {f['fresh']:,}   past max_revisions {f['over_max_revisions']:,}   "
        f"refused {f['refused']:,}"
    )
    if r["over_max_revisions"]:
        shown = ", ".join(r["over_max_revisions"][:10])
        more = len(r["over_max_revisions"]) - 10
        console.print(
            f"  [yellow]past max_revisions[/] ({r.get('max_revisions', '')}), not sent: {shown}"
            + (f" and {more} more" if more > 0 else "")
        )
    for refusal in r["refused"][:10]:
        console.print(f"  [yellow]refused:[/] {escape(refusal['reason'])}")


def _print_revise(r: dict[str, Any]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    _print_counts(console, r, f"[bold]Revise {r['run_id']}[/] in {escape(r['store'])}")
    console.print(
        f"  generated {r['generated']:,}   already made {r['skipped_existing']:,}   "
        f"failed {r['failed']:,}   left for budget {r['budget_exhausted']:,}   "
        f"not sent {r['stopped']:,}"
    )
    cap = "no cap" if r["budget_usd"] is None else format_usd(r["budget_usd"])
    console.print(f"  spent {format_usd(r['cost_usd'])} of {cap} in {r['seconds']:.1f} s")
    if r["mode"] == "batch":
        console.print(
            f"  submitted {r['submitted']:,} in {len(r['batches'])} batches, "
            f"{format_usd(r['batch_reserved_usd'])} reserved; run `assetgen collect` to store them"
        )
    if r["stop_reason"]:
        console.print(f"  [bold red]stopped:[/] {escape(r['stop_reason'])}")
    for failure in r["top_failures"]:
        console.print(f"  [yellow]{failure['count']} failed:[/] {escape(failure['reason'])}")
    if r.get("report"):
        console.print(f"  contact sheet: {escape(r['report'])}")
    if (review := r.get("review") or {}).get("pending"):
        console.print(f"  {review['pending']} wait for review: {escape(review['command'])}")
    for error in r.get("rendition_errors") or []:
        console.print(f"  [yellow]warning:[/] {escape(error)}")
