"""What a publish takes from the store: approved, current assets, confirmed against the store.

The catalog selects (approved, current, generated, matching --where); the
store, the truth, confirms: each asset's review decisions are read again and
must say approved for the original's exact bytes (sha256), and the original
in the store must still hash to what was approved. Files are hashed once;
a hash is reused while the file's size and version tag (S3 ETag, local
mtime and inode) stay as they were when it was taken (`HashCache`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from assetgen.tasks.catalog.rows import GENERATED
from assetgen.tasks.catalog.table import query
from assetgen.tasks.publish.copy import sha256_of
from assetgen.tasks.review.decisions import REVIEWS, Decision, current_state
from assetgen.tasks.store.assets import SIDECAR, AssetStore, asset_folder

IO_THREADS = 16
ORIGINAL = "original"  # the rendition name of an original, in keys and the feed
COLUMNS = [
    "asset_id",
    "row_id",
    "variant",
    "partition",
    "status",
    "review_state",
    "reviewed_by",
    "superseded_by",
    "original_uri",
    "original_sha256",
    "original_bytes",
    "renditions",
    "metadata",
    "revision",
    "published_uri",
    "published_at",
]


@dataclass
class SourceFile:
    """One file of an asset to publish: a rendition (or the original) in the store."""

    rendition: str
    file: str  # its name in the asset's folder
    ext: str
    width: int | None
    height: int | None
    size: int | None = None  # as the store lists it
    tag: str | None = None
    sha256: str | None = None


@dataclass
class Asset:
    """An approved, current asset and the files of it that go out."""

    row: dict[str, Any]
    folder: str
    files: list[SourceFile]
    metadata: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None  # why it cannot be published this time
    store_state: str | None = None  # the store's review state, where it is not the catalog's

    @property
    def asset_id(self) -> str:
        return self.row["asset_id"]

    @property
    def partition(self) -> dict[str, str]:
        return dict(self.row["partition"] or [])


def approved_rows(store: AssetStore, where: Iterable[tuple[str, str]]) -> list[dict[str, Any]]:
    """Approved, current generated rows matching `where`, in catalog order."""
    table = query(store, list(where), GENERATED, columns=COLUMNS, current_only=True)
    return [r for r in table.to_pylist() if r["review_state"] == "approved"]


def plan_asset(row: dict[str, Any], renditions: list[str] | None, originals: bool) -> Asset:
    """The files of `row` that go out: `renditions` (None: all it has), then the original."""
    folder = asset_folder(dict(row["partition"] or []), row["asset_id"])
    try:
        metadata = json.loads(row["metadata"] or "{}")
    except ValueError:
        metadata = {}
    asset = Asset(row, folder, [], metadata if isinstance(metadata, dict) else {})
    have = {r["name"]: r for r in row["renditions"] or []}
    names = list(have) if renditions is None else renditions
    missing = [n for n in names if n not in have]
    if missing:
        asset.problem = (
            f"has no rendition {', '.join(missing)} (`assetgen refresh --preset NAME` makes it)"
        )
    for name in names:
        if name in have:
            r = have[name]
            file = r["uri"].rsplit("/", 1)[-1]
            ext = file.rsplit(".", 1)[-1] if "." in file else r["format"]
            asset.files.append(SourceFile(name, file, ext, r["width"], r["height"]))
    if originals and row["original_uri"]:
        file = row["original_uri"].rsplit("/", 1)[-1]
        ext = file.rsplit(".", 1)[-1] if "." in file else "png"
        asset.files.append(SourceFile(ORIGINAL, file, ext, None, None))
    if not asset.files and not asset.problem:
        asset.problem = "has no renditions to publish (--originals publishes the original)"
    return asset


class HashCache:
    """sha256 of store files by URI, valid while size and version tag are unchanged."""

    def __init__(self, entries: dict[str, Any] | None = None) -> None:
        self.entries: dict[str, dict[str, Any]] = dict(entries or {})
        self.used: dict[str, dict[str, Any]] = {}

    def get(self, uri: str, size: int, tag: str | None) -> str | None:
        found = self.entries.get(uri)
        if tag and found and found.get("size") == size and found.get("tag") == tag:
            self.used[uri] = found
            return found["sha256"]
        return None

    def put(self, uri: str, size: int, tag: str | None, sha256: str) -> None:
        if tag:
            self.used[uri] = {"size": size, "tag": tag, "sha256": sha256}


def _tag(info: dict[str, Any]) -> str | None:
    if info.get("ETag"):
        return str(info["ETag"])
    if info.get("mtime") is not None:
        return f"{info['mtime']}:{info.get('ino', '')}"
    return None


def confirm(store: AssetStore, asset: Asset, cache: HashCache) -> Asset:
    """Check `asset` against the store and fill in each file's size and sha256.

    Sets `asset.problem` (and leaves the asset out) when its decisions no longer
    approve these bytes, when the original does not hash to what was approved,
    or when a file is missing.
    """
    if asset.problem:
        return asset
    root = store.path(asset.folder)
    store.fs.invalidate_cache(root)
    listing = {
        path[len(root) + 1 :]: info
        for path, info in store.fs.find(root, detail=True).items()
        if path.startswith(root + "/")
    }
    decisions = sorted(
        (
            Decision.model_validate_json(store.fs.cat_file(f"{root}/{name}"))
            for name in listing
            if name.startswith(f"{REVIEWS}/") and name.endswith(".json")
        ),
        key=lambda d: d.decided_at,
    )
    sidecar: dict[str, Any] = {}

    def read_sidecar() -> dict[str, Any]:
        if not sidecar:
            sidecar.update(store.read_json(f"{asset.folder}/{SIDECAR}"))
        return sidecar

    expected = asset.row["original_sha256"]
    if not expected:
        asset.problem = "no sha256 of its original is recorded: no approval can be tied to it"
        return asset
    state = current_state(decisions, expected, lambda: read_sidecar().get("review") or "required")
    if state.review_state != "approved":
        asset.store_state = state.review_state
        asset.problem = (
            f"the catalog says approved, the store's decisions say {state.review_state} "
            "(the catalog is brought up to date)"
        )
        return asset
    original = asset.row["original_uri"].rsplit("/", 1)[-1]
    checked = {original}
    files = {f.file: f for f in asset.files}
    for name in dict.fromkeys([original, *files]):
        info = listing.get(name)
        if info is None:
            asset.problem = f"{name} is missing from the store"
            return asset
        uri = store.uri(f"{asset.folder}/{name}")
        size, tag = int(info["size"]), _tag(info)
        sha = cache.get(uri, size, tag)
        if sha is None:
            sha = sha256_of(store.fs.cat_file(f"{root}/{name}"))
            cache.put(uri, size, tag, sha)
        if name in checked and sha != expected:
            asset.problem = (
                f"its original ({name}) no longer has the bytes that were approved "
                f"(sha256 {sha[:12]}..., approved {str(expected)[:12]}...)"
            )
            return asset
        if name in files:
            files[name].size, files[name].tag, files[name].sha256 = size, tag, sha
    for f in asset.files:
        if f.rendition == ORIGINAL and f.width is None:
            f.width, f.height = read_sidecar().get("width"), read_sidecar().get("height")
    return asset


def confirm_all(store: AssetStore, assets: list[Asset], cache: HashCache) -> list[Asset]:
    """`confirm` each asset (in threads: on S3 the time is round trips)."""

    def one(asset: Asset) -> Asset:
        try:
            return confirm(store, asset, cache)
        except (OSError, ValueError) as e:
            asset.problem = f"cannot be read from the store: {type(e).__name__}: {e}"
            return asset

    with ThreadPoolExecutor(IO_THREADS) as pool:
        return list(pool.map(one, assets))
