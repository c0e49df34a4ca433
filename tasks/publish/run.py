"""A publish from start to end: select, key, check, copy, withdraw, feed, record.

Order of writes to the destination: the manifest with the files about to
be written as `pending`, then each file whole, then the feed (CSV, JSON
Lines), then the files of withdrawn assets removed (with --prune), then the
manifest as it now is. Then the record in the store and the catalog's
published_uri/published_at. Nothing is written with `dry_run`, nor when
anything is refused (PublishRefused, BadLayout) or the destination is inside
the store.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import fsspec

from assetgen.tasks.publish.config import PublishConfig
from assetgen.tasks.publish.copy import content_type, is_s3, remove, sha256_of, write_whole
from assetgen.tasks.publish.feed import feed_lines, render_csv, render_jsonl
from assetgen.tasks.publish.keys import FEED_CSV, FEED_JSONL, parse_layout, url_of
from assetgen.tasks.publish.plan import (
    FilePlan,
    Plan,
    PublishRefused,
    catalog_states,
    file_keys,
    list_destination,
    plan_files,
)
from assetgen.tasks.publish.record import (
    Manifest,
    Published,
    read_manifest,
    record_in_catalog,
    redact_url,
    write_manifest,
    write_record,
)
from assetgen.tasks.publish.sources import (
    IO_THREADS,
    Asset,
    HashCache,
    approved_rows,
    confirm_all,
    plan_asset,
)
from assetgen.tasks.review.record import sync_catalog
from assetgen.tasks.store.assets import AssetStore, now_utc
from assetgen.tasks.store.runs import new_run_id


@dataclass
class PublishOptions:
    """One publish: the job config's `publish:` section with the command's flags over it."""

    to: str
    to_options: dict[str, Any] = field(default_factory=dict)
    base_url: str | None = None
    layout: str = PublishConfig().layout
    renditions: list[str] | None = None
    originals: bool = False
    cache_control: str = PublishConfig().cache_control
    feed_cache_control: str = PublishConfig().feed_cache_control
    prune: bool = False
    dry_run: bool = False
    where: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def build(cls, cfg: PublishConfig, **flags: Any) -> PublishOptions:
        """`cfg` with every flag that is not None over it; ValueError without a destination."""
        values = {**cfg.model_dump(), **{k: v for k, v in flags.items() if v is not None}}
        if not values.get("to"):
            raise ValueError("no destination: give --to URL (or publish.to in the job config)")
        return cls(**{k: v for k, v in values.items() if k in cls.__dataclass_fields__})

    @property
    def public_base(self) -> str:
        return redact_url(self.base_url or self.to).rstrip("/")


def check(store: AssetStore, opts: PublishOptions) -> None:
    """What refuses a publish before any file is read: the layout, the destination, every
    key and collision among the approved assets' files (PublishRefused, BadLayout)."""
    _keyed(store, opts)


def _keyed(
    store: AssetStore, opts: PublishOptions
) -> tuple[Any, str, Manifest, list[Asset], list[tuple[str, Asset, Any]]]:
    layout = parse_layout(opts.layout)
    fs, root = fsspec.core.url_to_fs(opts.to, **opts.to_options)
    root = root.rstrip("/")
    _outside_store(store, fs, root)
    manifest = read_manifest(fs, root)
    rows = approved_rows(store, opts.where)
    assets = [plan_asset(r, opts.renditions, opts.originals) for r in rows]
    keyed = file_keys(layout, [a for a in assets if not a.problem])  # bad keys, collisions
    return fs, root, manifest, assets, keyed


def publish(store: AssetStore, opts: PublishOptions) -> dict[str, Any]:
    """Publish the approved, current assets; the summary. Raises PublishRefused (and
    BadLayout, BadManifest: ValueErrors) before anything is written."""
    started = now_utc()
    run_id = new_run_id(started)
    fs, root, manifest, assets, keyed = _keyed(store, opts)
    ready = [a for a in assets if not a.problem]
    cache = HashCache(manifest.hashes)
    confirm_all(store, ready, cache)
    skipped = [a for a in assets if a.problem]
    published_ids = {f.asset_id for f in (*manifest.files.values(), *manifest.pending.values())}
    states = catalog_states(store, published_ids)
    for asset in skipped:
        if asset.store_state:  # the store's decisions count, not the catalog's copy
            states[asset.asset_id] = {**asset.row, "review_state": asset.store_state}
    keyed = [(k, a, f) for k, a, f in keyed if not a.problem]
    listing = list_destination(fs, root)
    plan = plan_files(fs, root, keyed, manifest, listing, states, opts.cache_control, is_s3(fs))
    summary = _summary(run_id, opts, assets, plan, started)
    if opts.dry_run:
        return summary
    _resync(store, skipped)
    errors = _execute(store, fs, root, opts, plan, manifest, listing, cache, run_id, started)
    summary["errors"] = errors
    summary["feed"] = {
        "csv": url_of(opts.public_base, FEED_CSV),
        "jsonl": url_of(opts.public_base, FEED_JSONL),
    }
    summary["finished_at"] = now_utc().isoformat()
    summary["record"] = write_record(store, run_id, summary)
    _update_catalog(store, opts, plan, states, run_id, errors)
    return summary


def _outside_store(store: AssetStore, fs: Any, root: str) -> None:
    same_fs = type(fs) is type(store.fs)
    inner = store.path("").rstrip("/")
    if same_fs and (root == inner or root.startswith(inner + "/")):
        raise PublishRefused([f"the destination {root!r} is inside the store {store.url!r}"])


def _resync(store: AssetStore, skipped: list[Asset]) -> None:
    """Assets whose decisions in the store changed after the catalog last heard: the catalog
    is told (the store is the truth)."""
    stale = {a.asset_id: a.row for a in skipped if a.store_state}
    if stale:
        sync_catalog(store, stale)


def _entry(p: FilePlan, opts: PublishOptions, when: str) -> Published:
    asset, f = p.asset, p.source
    alt = asset.metadata.get("alt_text")
    previous = p.previous
    if previous is not None and previous.asset_id == asset.asset_id:
        replaces = previous.replaces
    else:
        replaces = previous.asset_id if previous is not None else None
    return Published(
        key=p.key,
        asset_id=asset.asset_id,
        row_id=asset.row["row_id"],
        variant=asset.row["variant"],
        partition=asset.partition,
        rendition=f.rendition,
        content_type=content_type(f.ext),
        cache_control=opts.cache_control,
        sha256=str(f.sha256),
        bytes=int(f.size or 0),
        width=f.width,
        height=f.height,
        revision=int(asset.row["revision"] or 0),
        alt_text=None if alt is None else str(alt),
        published_at=when,
        source=f"{asset.folder}/{f.file}",
        replaces=replaces,
    )


def _execute(
    store: AssetStore,
    fs: Any,
    root: str,
    opts: PublishOptions,
    plan: Plan,
    manifest: Manifest,
    listing: dict[str, int],
    cache: HashCache,
    run_id: str,
    started: datetime,
) -> list[str]:
    now = started.isoformat()
    copying = plan.to_copy
    pending = {p.key: _entry(p, opts, now) for p in copying}
    if pending:
        write_manifest(
            fs, root, replace(manifest, pending={**manifest.pending, **pending}), run_id, started
        )

    def copy(p: FilePlan) -> str | None:
        data = store.fs.cat_file(store.path(f"{p.asset.folder}/{p.source.file}"))
        if sha256_of(data) != p.source.sha256:
            return f"asset {p.asset.asset_id}: {p.source.file} changed while publishing; not copied"
        write_whole(fs, f"{root}/{p.key}", data, content_type(p.source.ext), opts.cache_control)
        return None

    with ThreadPoolExecutor(IO_THREADS) as pool:
        results = list(pool.map(_guarded(copy), copying))
    errors = [e for e in results if e]
    failed = {p.key for p, e in zip(copying, results, strict=True) if e}
    files = dict(plan.kept)
    for key, published in manifest.files.items():
        if key in failed:
            files[key] = published  # as it was: the new bytes did not arrive
    for p in plan.files:
        if p.key in failed:
            continue
        if p.action == "unchanged":
            when = p.previous.published_at if p.previous and p.key not in plan.adopted else now
            files[p.key] = _entry(p, opts, when)
        else:
            files[p.key] = pending[p.key]
    withdrawn = {w.key: w for w in plan.withdrawn}
    for key, w in withdrawn.items():
        if opts.prune:
            files.pop(key, None)
        elif key in manifest.files:
            files[key] = replace(w.file, withdrawn=w.reason)
    lines = feed_lines(files, opts.public_base)
    csv_bytes, jsonl_bytes = render_csv(lines), render_jsonl(lines)
    feed_sha = sha256_of(csv_bytes + b"\0" + jsonl_bytes)
    feed_there = {FEED_CSV, FEED_JSONL} <= _own(fs, root)
    if feed_sha != manifest.feed_sha256 or not feed_there:
        write_whole(
            fs, f"{root}/{FEED_JSONL}", jsonl_bytes, content_type("jsonl"), opts.feed_cache_control
        )
        write_whole(
            fs, f"{root}/{FEED_CSV}", csv_bytes, content_type("csv"), opts.feed_cache_control
        )
    if opts.prune:
        for key in withdrawn:
            if key not in files:
                remove(fs, f"{root}/{key}", root)
    folders = {f.source.rsplit("/", 1)[0] for f in files.values()}
    hashes = {**manifest.hashes, **cache.used}
    prefix = store.url + "/"
    kept_hashes = {
        uri: h
        for uri, h in hashes.items()
        if uri.startswith(prefix) and uri[len(prefix) :].rsplit("/", 1)[0] in folders
    }
    # Still pending: files that may be there but are not known to be (a failed write, one
    # left by a publish cut short and not pruned).
    done = {p.key for p in plan.files} - failed
    still = {
        k: v
        for k, v in manifest.pending.items()
        if k not in done and k not in files and not (opts.prune and k in withdrawn)
    }
    new = Manifest(files, {**still, **{k: pending[k] for k in failed}}, kept_hashes, feed_sha)
    if new != manifest:
        write_manifest(fs, root, new, run_id, now_utc())
    return errors


def _guarded(fn: Any) -> Any:
    def run(p: FilePlan) -> str | None:
        try:
            return fn(p)
        except OSError as e:
            return f"asset {p.asset.asset_id}: {p.key}: {type(e).__name__}: {e}"

    return run


def _own(fs: Any, root: str) -> set[str]:
    try:
        return {p.rsplit("/", 1)[-1] for p in fs.ls(root, detail=False)}
    except FileNotFoundError:
        return set()


def _summary(
    run_id: str, opts: PublishOptions, assets: list[Asset], plan: Plan, started: datetime
) -> dict[str, Any]:
    actions = [p.action for p in plan.files]
    return {
        "run_id": run_id,
        "started_at": started.isoformat(),
        "to": redact_url(opts.to),
        "base_url": opts.public_base,
        "layout": opts.layout,
        "renditions": opts.renditions,
        "originals": opts.originals,
        "where": [f"{k}={v}" for k, v in opts.where],
        "cache_control": opts.cache_control,
        "dry_run": opts.dry_run,
        "prune": opts.prune,
        "selected": len(assets),
        "assets": len({p.asset.asset_id for p in plan.files}),
        "files": len(plan.files),
        "copied": len(plan.to_copy),
        "unchanged": len(plan.files) - len(plan.to_copy),
        "new": actions.count("new"),
        "replaced": actions.count("replace"),
        "repaired": actions.count("repair"),
        "copies": [
            {
                "key": p.key,
                "url": url_of(opts.public_base, p.key),
                "asset_id": p.asset.asset_id,
                "rendition": p.source.rendition,
                "action": p.action,
                "sha256": p.source.sha256,
                "replaces": p.previous.asset_id
                if p.previous and p.previous.asset_id != p.asset.asset_id
                else None,
            }
            for p in plan.to_copy
        ],
        "withdrawn": [
            {
                "key": w.key,
                "asset_id": w.file.asset_id,
                "rendition": w.file.rendition,
                "reason": w.reason,
            }
            for w in plan.withdrawn
        ],
        "pruned": [w.key for w in plan.withdrawn] if opts.prune else [],
        "skipped": [{"asset_id": a.asset_id, "reason": a.problem} for a in assets if a.problem],
        "errors": [],
    }


def _update_catalog(
    store: AssetStore,
    opts: PublishOptions,
    plan: Plan,
    states: dict[str, dict[str, Any]],
    run_id: str,
    errors: list[str],
) -> None:
    """published_uri (the URL of the asset's first file) and published_at: set for assets
    whose files were written now, or that the catalog has no publish for yet; cleared for
    assets whose files --prune removed from this destination."""
    failed = {e.split(":", 1)[0].removeprefix("asset ") for e in errors}
    by_asset: dict[str, list[FilePlan]] = {}
    for p in plan.files:
        by_asset.setdefault(p.asset.asset_id, []).append(p)
    values: dict[str, dict[str, Any]] = {}
    for asset_id, plans in by_asset.items():
        if asset_id in failed:
            continue
        asset = plans[0].asset
        order = [f.rendition for f in asset.files]
        first = min(plans, key=lambda p: order.index(p.source.rendition))
        copied = any(p.action != "unchanged" for p in plans)
        if copied or asset.row["published_uri"] is None:
            then = first.previous.published_at if first.previous else None
            values[asset_id] = {
                "published_uri": url_of(opts.public_base, first.key),
                "published_at": (None if copied else _time(then)) or now_utc(),
            }
    if opts.prune:
        remaining = {p.asset.asset_id for p in plan.files}
        here = opts.public_base + "/"
        for w in plan.withdrawn:
            asset_id = w.file.asset_id
            if asset_id in remaining or asset_id in values:
                continue
            if str((states.get(asset_id) or {}).get("published_uri") or "").startswith(here):
                values[asset_id] = {"published_uri": None, "published_at": None}
    if values:
        record_in_catalog(store, values, run_id)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
