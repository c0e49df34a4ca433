"""`assetgen publish`: approved, current versions to a destination under stable keys, a feed."""

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
    StoreOpt,
    WhereOpt,
    bad_input,
    fail,
    parse_where,
)
from assetgen.tasks.config.job import ConfigError, load_job_config
from assetgen.tasks.publish.config import DEFAULT_LAYOUT
from assetgen.tasks.publish.run import PublishOptions, check
from assetgen.tasks.publish.run import publish as publish_now
from assetgen.tasks.store.assets import AssetStore

SHOWN = 50  # lines per list in the text summary (--json has them all)


def publish(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Destination URL: a folder, s3://bucket/prefix, any fsspec URL "
            "[default: the config's publish.to].",
        ),
    ] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
    where: WhereOpt = None,
    layout: Annotated[
        str | None,
        typer.Option(
            "--layout",
            help="Key of each file: {partition} {row_id} {variant} {rendition} {ext} {asset_id}, "
            f"any partition key or metadata column [default: {DEFAULT_LAYOUT}].",
        ),
    ] = None,
    renditions: Annotated[
        str | None,
        typer.Option("--renditions", help="NAME,... to publish [default: every rendition]."),
    ] = None,
    originals: Annotated[
        bool | None,
        typer.Option("--originals", help="Publish the originals too (rendition 'original')."),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", help="Public URL of the destination, for the feed's urls."),
    ] = None,
    prune: Annotated[
        bool | None,
        typer.Option("--prune", help="Remove the files of assets no longer approved."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be copied; write nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Publish approved, current images: files under stable keys, then feed.csv/feed.jsonl.

    Exit codes: 0 published, 1 some assets left out (see skipped/errors), 2 refused
    (bad layout, a key leaving the destination, two files on one key): nothing copied.
    """
    names = None
    if renditions is not None:
        names = [n.strip() for n in renditions.split(",") if n.strip()]
        if not names:
            fail("--renditions: name at least one rendition")
    filters = parse_where(where)
    try:
        cfg = load_job_config(config, {"store": store})
        opts = PublishOptions.build(
            cfg.publish,
            to=to,
            layout=layout,
            renditions=names,
            originals=originals,
            base_url=base_url,
            prune=prune,
            dry_run=dry_run,
            where=filters,
        )
        opened = AssetStore(cfg.store, cfg.store_options)
        if dry_run:  # nothing is written: no flow run either
            summary = publish_now(opened, opts)
        else:
            check(opened, opts)  # refused before a Prefect server is even started
            summary = _run_flow(opts, config, store)
    except (ConfigError, ValueError) as e:
        bad_input(e, as_json)
    if as_json:
        print(json.dumps(summary, default=str))
    else:
        _print(summary)
    left_out = summary["skipped"] or summary["errors"]
    raise typer.Exit(EXIT_SOME_FAILED if left_out else EXIT_OK)


def _run_flow(opts: PublishOptions, config: Path | None, store: str | None) -> dict[str, Any]:
    from assetgen.flows.local_server import prefect_api
    from assetgen.flows.publish import publish_assets

    with prefect_api():
        return publish_assets(
            to=opts.to,
            config=str(config) if config else None,
            overrides={"store": store} if store else None,
            where=dict(opts.where),
            layout=opts.layout,
            renditions=opts.renditions,
            originals=opts.originals,
            base_url=opts.base_url,
            prune=opts.prune,
        )


def _print(summary: dict[str, Any]) -> None:
    out = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    verb = "would copy" if summary["dry_run"] else "copied"
    out.print(
        f"{'dry run: ' if summary['dry_run'] else ''}{escape(summary['to'])}: {verb} "
        f"{summary['copied']} files ({summary['new']} new, {summary['replaced']} replaced, "
        f"{summary['repaired']} repaired), {summary['unchanged']} unchanged, from "
        f"{summary['assets']} of {summary['selected']} approved assets"
    )
    for c in summary["copies"][:SHOWN]:
        was = f" (was {c['replaces']})" if c["replaces"] else ""
        out.print(f"  {c['action']:<8} {escape(c['key'])}  {c['asset_id']} {c['rendition']}{was}")
    _more(out, summary["copies"])
    if summary["withdrawn"]:
        out.print(f"{len(summary['withdrawn'])} files of assets no longer approved:")
        pruned = set(summary["pruned"])
        for w in summary["withdrawn"][:SHOWN]:
            if w["key"] in pruned:
                done = "would be removed" if summary["dry_run"] else "removed"
            else:
                done = "still there: --prune removes it"
            out.print(f"  {escape(w['key'])}  {w['asset_id']}: {escape(w['reason'])}; {done}")
        _more(out, summary["withdrawn"])
    for s in summary["skipped"][:SHOWN]:
        err.print(f"[yellow]skipped {s['asset_id']}: {escape(s['reason'])}[/]")
    _more(err, summary["skipped"])
    for e in summary["errors"][:SHOWN]:
        err.print(f"[red]{escape(e)}[/]")
    if summary.get("feed"):
        out.print(f"feed: {summary['feed']['csv']} {summary['feed']['jsonl']}")
    if summary.get("record"):
        out.print(f"record: {summary['record']}")


def _more(console: Console, items: list[Any]) -> None:
    if len(items) > SHOWN:
        console.print(f"  ... and {len(items) - SHOWN} more (--json lists all)")
