"""`assetgen report RUN_ID`: where a run's contact sheet is; builds it if the run has none."""

from __future__ import annotations

import json
import webbrowser
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from assetgen.flows.cli.common import ConfigOpt, StoreOpt, fail, open_store
from assetgen.tasks.reporting.contact_sheet import listed_existing_ids, report_folder, write_report
from assetgen.tasks.store.assets import AssetStore, UnsafePath
from assetgen.tasks.store.runs import RUNS


def report(
    run_id: Annotated[str, typer.Argument(help="The run id (`assetgen run` prints it).")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
    open_: Annotated[
        bool, typer.Option("--open", help="Open the contact sheet in a browser (local stores).")
    ] = False,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Write it again from the catalog, even if it exists.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout.")
    ] = False,
) -> None:
    """The HTML contact sheet of a run: every image, failure and rejected row, with the spend.

    Prints where `_reports/RUN_ID/index.html` is; writes it first from the
    run's summary and the catalog if the run has none yet. Exit code 2: no
    such run in the store.
    """
    try:
        folder = report_folder(run_id)
    except UnsafePath as e:
        fail(str(e))
    st = open_store(store, config)
    index = f"{folder}/index.html"
    built = False
    if rebuild or not st.fs.exists(st.path(index)):
        try:
            summary = st.read_json(f"{RUNS}/{run_id}/summary.json")
        except FileNotFoundError:
            fail(f"no run {run_id!r} in {st.url} (no {RUNS}/{run_id}/summary.json)")
        # A report rebuilt after the run learns which assets the run found
        # already stored only from the report it replaces.
        write_report(st, summary, listed_existing_ids(st, run_id))
        built = True
    where = _location(st, index)
    opened = _open(st, where) if open_ else None
    if as_json:
        result: dict[str, Any] = {
            "run_id": run_id,
            "index_html": where,
            "report_json": _location(st, f"{folder}/report.json"),
            "built": built,
            "opened": opened,
        }
        try:
            counts = st.read_json(f"{folder}/report.json").get("counts", {})
        except (FileNotFoundError, ValueError):
            counts = {}
        print(json.dumps(result | {"counts": counts}))
    else:
        print(where)


def _location(store: AssetStore, relative: str) -> str:
    # A path for a folder on this machine (what a file manager or `open` takes),
    # the URL for anything else.
    return store.path(relative) if store.is_local else store.uri(relative)


def _open(store: AssetStore, where: str) -> bool:
    err = Console(stderr=True, soft_wrap=True)
    if not store.is_local:
        err.print(
            f"[yellow]cannot open {escape(where)} in a browser:[/] it is not on this machine; "
            "serve the store over HTTP or copy it here"
        )
        return False
    if webbrowser.open(Path(where).resolve().as_uri()):
        return True
    err.print(f"[yellow]no browser found:[/] open {escape(where)} yourself")
    return False
