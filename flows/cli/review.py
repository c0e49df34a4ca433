"""`assetgen review ...`: approve, reject, undo and list decisions; serve the review app."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from assetgen.flows.cli.common import ConfigOpt, StoreOpt, WhereOpt, fail, open_store, parse_where
from assetgen.tasks.catalog.select import of_run
from assetgen.tasks.catalog.table import query
from assetgen.tasks.review.decisions import STATES, UNDO, Verdict, default_reviewer
from assetgen.tasks.review.record import UnknownAsset, decide, reviewable

app = typer.Typer(help="Review generated images: approve, reject, list, or open the app.")

IdsArg = Annotated[list[str] | None, typer.Argument(help="Asset ids (or select with --where).")]
NoteOpt = Annotated[str | None, typer.Option("--note", help="What is wrong (or right).")]
ReviewerOpt = Annotated[
    str | None, typer.Option("--reviewer", help="Who decides [default: the OS user].")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object per asset.")]
LIST_COLUMNS = ("asset_id", "row_id", "review_state", "reviewed_by", "reviewed_at", "review_note")


def _decide(
    state: Verdict,
    asset_ids: list[str] | None,
    where: list[str] | None,
    note: str | None,
    reviewer: str | None,
    store: str | None,
    config: Path | None,
    as_json: bool,
) -> None:
    opened = open_store(store, config)
    filters = parse_where(where)
    if not asset_ids and not filters:
        fail("name the assets: ASSET_ID... or --where K=V")
    try:
        rows = reviewable(opened, asset_ids or (), filters)
    except UnknownAsset as e:
        fail(str(e))
    if not rows:
        fail("no current generated asset matches --where")
    states = decide(opened, rows, state, reviewer or default_reviewer(), note)
    if as_json:
        for asset_id, found in states.items():
            print(json.dumps({"asset_id": asset_id, **found.model_dump(mode="json")}))
        return
    if state == UNDO:
        counts = {s: sum(f.review_state == s for f in states.values()) for s in STATES}
        shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        print(f"undone for {len(states)} assets: now {shown}")
        return
    done = sum(s.review_state == state for s in states.values())
    print(f"{done} of {len(states)} assets {state}")
    for asset_id, found in states.items():
        if found.review_state != state:  # a later decision by someone else counts
            print(f"  {asset_id}: {found.review_state} by {found.reviewed_by} (a later decision)")


@app.command()
def approve(
    asset_ids: IdsArg = None,
    where: WhereOpt = None,
    note: NoteOpt = None,
    reviewer: ReviewerOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Approve assets for publishing (these bytes only: a new version starts pending)."""
    _decide("approved", asset_ids, where, note, reviewer, store, config, as_json)


@app.command()
def reject(
    asset_ids: IdsArg = None,
    where: WhereOpt = None,
    note: NoteOpt = None,
    reviewer: ReviewerOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reject assets, with a note saying what is wrong (revise reads it)."""
    if not (note or "").strip():
        fail("--note: say what is wrong, so the revision can fix it")
    _decide("rejected", asset_ids, where, note, reviewer, store, config, as_json)


@app.command()
def undo(
    asset_ids: IdsArg = None,
    where: WhereOpt = None,
    reviewer: ReviewerOpt = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Take each asset's last decision back (its decision before that counts again)."""
    _decide(UNDO, asset_ids, where, None, reviewer, store, config, as_json)


@app.command("list")
def list_(
    state: Annotated[
        str | None, typer.Option("--state", help="pending, approved or rejected [default: all].")
    ] = None,
    where: WhereOpt = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run's assets.")] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Current generated assets and where their review stands."""
    if state is not None and state not in STATES:
        fail(f"--state {state!r}: expected one of {', '.join(STATES)}")
    filters = parse_where(where)
    if state:
        filters.append(("review_state", state))
    columns = [*LIST_COLUMNS, "run_id"]
    table = query(
        open_store(store, config), filters, "generated", columns=columns, current_only=True
    )
    if run:
        table = of_run(table, run)
    if as_json:
        for row in table.to_pylist():
            print(json.dumps(row, default=str))
        return
    grid = Table(show_edge=False)
    for column in LIST_COLUMNS:
        grid.add_column(column, overflow="fold")
    for row in table.to_pylist():
        when = row["reviewed_at"]
        row["reviewed_at"] = f"{when:%Y-%m-%d %H:%M:%S}" if when else None
        grid.add_row(*(escape(str(row[c])) if row[c] is not None else "" for c in LIST_COLUMNS))
    console = Console(highlight=False, width=200)
    console.print(grid)
    counts = {s: 0 for s in STATES}
    for s in table["review_state"].to_pylist():
        counts[s or "pending"] += 1
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))


@app.command()
def serve(
    store: StoreOpt = None,
    config: ConfigOpt = None,
    where: WhereOpt = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this run's assets.")] = None,
    state: Annotated[
        str, typer.Option("--state", help="Shown first: pending, approved, rejected or all.")
    ] = "pending",
    host: Annotated[
        str, typer.Option("--host", help="Address to listen on (beyond 127.0.0.1: a warning).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on; 0 picks a free one.")] = 0,
    no_open: Annotated[bool, typer.Option("--no-open", help="Do not open a browser.")] = False,
    reviewer: ReviewerOpt = None,
) -> None:
    """Open the review app in the browser; prints its URL (with an access token) first."""
    import signal
    import sys
    import threading
    import webbrowser

    from assetgen.tasks.catalog.location import CatalogUnavailable
    from assetgen.tasks.catalog.table import open_table
    from assetgen.tasks.review.app import create_app
    from assetgen.tasks.review.security import HostRule, new_token
    from assetgen.tasks.review.server import app_url, bind, public_warning
    from assetgen.tasks.review.server import run as run_server

    if state not in (*STATES, "all"):
        fail(f"--state {state!r}: expected one of {', '.join((*STATES, 'all'))}")
    opened = open_store(store, config)
    filters = parse_where(where)
    try:
        if open_table(opened) is None:
            print(f"note: {opened.url} has no catalog yet: nothing to review", file=sys.stderr)
    except CatalogUnavailable as e:
        fail(str(e))
    try:
        sock = bind(host, port)
    except OSError as e:
        fail(f"cannot listen on {host}:{port}: {e}")
    bound = sock.getsockname()[1]
    token = new_token()
    review_app = create_app(
        opened,
        token=token,
        hosts=HostRule.for_bind(host, bound),
        reviewer=reviewer or default_reviewer(),
        where=filters,
        run=run,
        state=state,
    )
    url = app_url(host, bound, token)
    if warning := public_warning(host):
        print(warning, file=sys.stderr)
    print(url, flush=True)
    print("review app running: Ctrl-C stops it", file=sys.stderr, flush=True)
    if not no_open:
        # Some browsers' launchers block until the browser exits: not the server's thread.
        threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()

    def stop(signum: int, frame: object) -> None:
        # uvicorn shuts down gracefully on SIGTERM, then raises it again for the
        # handler it found: this one, so the command ends like on Ctrl-C.
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, stop)
        run_server(review_app, sock)
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    print("review app stopped", file=sys.stderr)
