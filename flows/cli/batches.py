"""`assetgen batches ...`: the Batch API batches a store has submitted."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assetgen.flows.cli.common import ConfigOpt, StoreOpt, fail, open_store
from assetgen.tasks.batch.records import BatchBook, BatchRecord

app = typer.Typer(help="List and cancel the Batch API batches of a store.", no_args_is_help=True)


@app.command("list")
def list_batches(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also collected and abandoned batches.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Batches of the store as last seen by `collect` (open ones only, unless --all)."""
    records = [r for r in BatchBook(open_store(store, config)).records() if show_all or r.open]
    if as_json:
        for r in records:
            print(r.model_dump_json(exclude={"asset_ids", "reference_file_ids"}))
        return
    table = Table(show_edge=False)
    for column in ("key", "batch id", "state", "status", "jobs", "done", "reserved", "spent"):
        table.add_column(column)
    for r in records:
        counts = r.request_counts
        done = f"{counts.get('completed', 0)}/{counts.get('total', len(r.asset_ids))}"
        table.add_row(
            r.key,
            r.batch_id or "-",
            r.state,
            r.status or "-",
            str(len(r.asset_ids)),
            done,
            f"${r.reserved_usd:.4f}",
            f"${r.spent_usd:.4f}" if r.state == "collected" else "-",
        )
    console = Console(highlight=False, soft_wrap=True)
    console.print(table if records else "no open batches (--all shows collected ones)")


@app.command()
def cancel(
    keys: Annotated[list[str] | None, typer.Argument(help="Batch keys (see `list`).")] = None,
    every: Annotated[bool, typer.Option("--all", help="Cancel every open batch.")] = False,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Ask OpenAI to cancel batches; `collect` then stores what finished and returns the rest."""
    if not keys and not every:
        fail("name batch keys or pass --all")
    if not os.environ.get("OPENAI_API_KEY"):
        fail("cancelling needs OPENAI_API_KEY in the environment")
    book = BatchBook(open_store(store, config))
    open_records = {r.key: r for r in book.records() if r.open}
    unknown = [k for k in keys or [] if k not in open_records]
    if unknown:
        fail(f"no open batch {', '.join(unknown)} in this store")
    chosen: list[BatchRecord] = (
        list(open_records.values()) if every else [open_records[k] for k in keys or []]
    )
    # Here, not at the top: the SDK takes ~0.5 s to import, every command would pay it.
    import openai

    from assetgen.tasks.generation.openai_images import redact

    client = openai.OpenAI(max_retries=2)
    console = Console(highlight=False, soft_wrap=True)
    failed = False
    for record in chosen:
        if record.batch_id is None:
            console.print(f"{record.key}: not created at OpenAI yet; `collect` resolves it")
            continue
        try:
            batch = client.batches.cancel(record.batch_id)
        except openai.APIError as e:
            failed = True
            console.print(f"[red]{record.key}: {escape(redact(str(e)))}[/]")
            continue
        record.status = batch.status
        book.save(record)
        console.print(f"{record.key} ({record.batch_id}): {batch.status}")
    raise typer.Exit(1 if failed else 0)
