"""Planning a publish: every file's key, what is already there, what goes and what is withdrawn.

Everything that can refuse a publish is found here, before anything is
copied: a bad layout, a key that would leave the destination, two files on
one key (in this publish, or one of them already published for an asset still
approved), and a file at a key that the publish did not put there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from fsspec import AbstractFileSystem

from assetgen.tasks.catalog.rows import GENERATED
from assetgen.tasks.catalog.table import read_catalog
from assetgen.tasks.publish.copy import sha256_of
from assetgen.tasks.publish.keys import (
    FEED_CSV,
    FEED_JSONL,
    MANIFEST,
    BadKey,
    Layout,
    collisions,
    make_key,
)
from assetgen.tasks.publish.record import Manifest, Published
from assetgen.tasks.publish.sources import Asset, SourceFile
from assetgen.tasks.store.assets import AssetStore

OWN_FILES = {FEED_CSV, FEED_JSONL, MANIFEST}


class PublishRefused(ValueError):
    """Bad input found before anything was copied: each problem names asset, key and reason."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:20] + (
            [f"... and {len(problems) - 20} more"] if len(problems) > 20 else []
        )
        super().__init__("nothing was published:\n  " + "\n  ".join(shown))
        self.problems = problems


@dataclass
class FilePlan:
    """One file of an approved asset and what this publish does with it."""

    key: str
    asset: Asset
    source: SourceFile
    action: str  # new, replace, repair (same bytes, missing or other headers), unchanged
    previous: Published | None = None


@dataclass
class Withdrawn:
    """A published file whose asset is no longer approved (or that moved to another key)."""

    key: str
    file: Published
    reason: str


@dataclass
class Plan:
    files: list[FilePlan]
    withdrawn: list[Withdrawn]
    kept: dict[str, Published]  # published files of assets this publish leaves alone
    adopted: list[str] = field(default_factory=list)  # keys found there with the right bytes

    @property
    def to_copy(self) -> list[FilePlan]:
        return [f for f in self.files if f.action != "unchanged"]


def file_keys(layout: Layout, assets: Iterable[Asset]) -> list[tuple[str, Asset, SourceFile]]:
    """The key of every file of every asset; PublishRefused lists each refused key and
    each collision."""
    problems, keyed = [], []
    for asset in assets:
        for f in asset.files:
            builtins = {
                "row_id": asset.row["row_id"],
                "variant": asset.row["variant"],
                "rendition": f.rendition,
                "ext": f.ext,
                "asset_id": asset.asset_id,
            }
            try:
                key = make_key(layout, asset.asset_id, builtins, asset.partition, asset.metadata)
            except BadKey as e:
                problems.append(str(e))
                continue
            keyed.append((key, asset, f))
    problems += collisions((k, a.asset_id, f.rendition) for k, a, f in keyed)
    if problems:
        raise PublishRefused(problems)
    return sorted(keyed, key=lambda t: t[0])


def catalog_states(store: AssetStore, asset_ids: set[str]) -> dict[str, dict[str, Any]]:
    """asset_id -> status, review_state, superseded_by of these assets and of their successors."""
    if not asset_ids:
        return {}
    columns = ["asset_id", "status", "review_state", "superseded_by", "published_uri"]
    rows = {r["asset_id"]: r for r in read_catalog(store, columns=columns).to_pylist()}
    wanted = asset_ids | {rows[a]["superseded_by"] for a in asset_ids if a in rows}
    return {a: rows[a] for a in wanted if a in rows}


def withdrawn_reason(asset_id: str, states: dict[str, dict[str, Any]]) -> str | None:
    """Why a published asset may no longer be out; None while it is approved and current."""
    row = states.get(asset_id)
    if row is None:
        return "no longer in the catalog"
    if row["status"] != GENERATED:
        return f"its catalog status is {row['status']}"
    successor = row["superseded_by"]
    if successor:
        state = (states.get(successor) or {}).get("review_state") or "unknown"
        return f"superseded by {successor} ({state})"
    if row["review_state"] != "approved":
        return str(row["review_state"] or "pending")
    return None


def plan_files(
    fs: AbstractFileSystem,
    root: str,
    keyed: list[tuple[str, Asset, SourceFile]],
    manifest: Manifest,
    listing: dict[str, int],
    states: dict[str, dict[str, Any]],
    cache_control: str,
    headers: bool,
) -> Plan:
    """Compare the keyed files with the manifest and the destination's listing (key -> size).

    `states`: catalog_states of every asset the manifest lists. `headers`: the destination
    keeps Content-Type/Cache-Control (S3), so a changed Cache-Control means a new copy.
    """
    problems: list[str] = []
    files: list[FilePlan] = []
    adopted: list[str] = []
    moving = {a.asset_id for _, a, _ in keyed}  # their files go to their new keys
    for key, asset, f in keyed:
        previous = manifest.files.get(key)
        if (
            previous is not None
            and previous.asset_id not in moving
            and withdrawn_reason(previous.asset_id, states) is None
        ):
            problems.append(
                f"key {key!r}: {f.rendition} of asset {asset.asset_id} would replace "
                f"{previous.rendition} of asset {previous.asset_id}, which is still "
                "approved and current (change the layout so they differ)"
            )
            continue
        if previous is None and key in listing and key not in manifest.pending:
            # A file the publish did not put there: ours only if it has these very bytes.
            if sha256_of(fs.cat_file(f"{root}/{key}")) != f.sha256:
                problems.append(
                    f"key {key!r}: {f.rendition} of asset {asset.asset_id} would overwrite a file "
                    "that assetgen did not publish there (move it, or choose another layout)"
                )
                continue
            adopted.append(key)
        files.append(
            FilePlan(
                key,
                asset,
                f,
                _action(key, f, previous, manifest, listing, cache_control, headers, adopted),
                previous,
            )
        )
    if problems:
        raise PublishRefused(problems)
    planned = {p.key for p in files}
    moved = {(p.asset.asset_id, p.source.rendition): p.key for p in files}
    planned_assets = {p.asset.asset_id for p in files}
    withdrawn, kept = [], {}
    for key, published in manifest.files.items():
        if key in planned:
            continue
        if published.asset_id in planned_assets:
            new_key = moved.get((published.asset_id, published.rendition))
            if new_key:
                withdrawn.append(Withdrawn(key, published, f"moved to {new_key}"))
            else:
                kept[key] = replace(published, withdrawn=None)
            continue
        reason = withdrawn_reason(published.asset_id, states)
        if reason:
            withdrawn.append(Withdrawn(key, published, reason))
        else:
            kept[key] = replace(published, withdrawn=None)
    for key, published in manifest.pending.items():
        if key not in planned and key not in manifest.files:
            withdrawn.append(Withdrawn(key, published, "left by a publish that was cut short"))
    return Plan(files, withdrawn, kept, adopted)


def _action(
    key: str,
    f: SourceFile,
    previous: Published | None,
    manifest: Manifest,
    listing: dict[str, int],
    cache_control: str,
    headers: bool,
    adopted: list[str],
) -> str:
    if key in adopted:
        return "unchanged"
    if previous is None:
        return "new"
    if previous.sha256 != f.sha256:
        return "replace"
    there = listing.get(key) == f.size and key not in manifest.pending
    if not there or (headers and previous.cache_control != cache_control):
        return "repair"
    return "unchanged"


def list_destination(fs: AbstractFileSystem, root: str) -> dict[str, int]:
    """key -> size of every file under `root` (the publish's own files left out)."""
    fs.invalidate_cache(root)
    try:
        found = fs.find(root, detail=True)
    except FileNotFoundError:
        return {}
    prefix = root.rstrip("/") + "/"
    listing = {}
    for path, info in found.items():
        if info.get("type") == "directory" or not path.startswith(prefix):
            continue
        key = path[len(prefix) :]
        if key not in OWN_FILES and not key.rsplit("/", 1)[-1].startswith(".tmp-"):
            listing[key] = int(info.get("size") or 0)
    return listing
