"""What a publish remembers: its manifest in the destination, its record in the store, and
the catalog's publish columns.

The manifest (`<dest>/.assetgen-publish.json`) lists every file the publish
put in the destination: key, asset, rendition, sha256, size and headers. A
later publish compares with it (and with one listing of the destination, for
sizes) instead of reading files back. Before anything is copied the files
about to be written are added to it as `pending`, so a publish cut short
leaves no file it does not know about.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from fsspec import AbstractFileSystem

from assetgen.tasks.catalog.rows import PUBLISH_COLUMNS
from assetgen.tasks.catalog.table import update_columns
from assetgen.tasks.publish.copy import content_type, write_whole
from assetgen.tasks.publish.keys import MANIFEST
from assetgen.tasks.store.assets import AssetStore

FORMAT = 1
PUBLISH = "_publish"  # the store's folder of publish records


@dataclass
class Published:
    """One file in the destination, as the manifest and the feed describe it."""

    key: str
    asset_id: str
    row_id: str
    variant: int
    partition: dict[str, str]
    rendition: str
    content_type: str
    cache_control: str
    sha256: str
    bytes: int
    width: int | None
    height: int | None
    revision: int
    alt_text: str | None
    published_at: str  # ISO 8601, UTC: when these bytes were written at the key
    source: str  # the store file it is a copy of
    replaces: str | None = None  # the asset whose file this one replaced at the key
    withdrawn: str | None = None  # why it is no longer approved (until --prune removes it)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Published:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class Manifest:
    files: dict[str, Published]
    pending: dict[str, Published]
    hashes: dict[str, dict[str, Any]]
    feed_sha256: str | None = None

    def to_json(self, run_id: str, now: datetime) -> bytes:
        doc = {
            "format": FORMAT,
            "run_id": run_id,
            "updated_at": now.isoformat(),
            "files": {k: asdict(v) for k, v in sorted(self.files.items())},
            "pending": {k: asdict(v) for k, v in sorted(self.pending.items())},
            "hashes": dict(sorted(self.hashes.items())),
            "feed_sha256": self.feed_sha256,
        }
        return json.dumps(doc, indent=1, ensure_ascii=False).encode("utf-8")


class BadManifest(ValueError):
    """A destination manifest this version cannot read."""


def read_manifest(fs: AbstractFileSystem, root: str) -> Manifest:
    path = f"{root}/{MANIFEST}"
    try:
        doc = json.loads(fs.cat_file(path))
    except FileNotFoundError:
        return Manifest({}, {}, {})
    except ValueError as e:
        raise BadManifest(f"{MANIFEST} in the destination is not valid JSON: {e}") from None
    if doc.get("format") != FORMAT:
        raise BadManifest(f"{MANIFEST} has format {doc.get('format')!r}; this assetgen reads 1")
    return Manifest(
        {k: Published.from_json(v) for k, v in doc.get("files", {}).items()},
        {k: Published.from_json(v) for k, v in doc.get("pending", {}).items()},
        doc.get("hashes", {}),
        doc.get("feed_sha256"),
    )


def write_manifest(
    fs: AbstractFileSystem, root: str, manifest: Manifest, run_id: str, now: datetime
) -> None:
    write_whole(
        fs, f"{root}/{MANIFEST}", manifest.to_json(run_id, now), content_type("json"), "no-store"
    )


def redact_url(url: str) -> str:
    """`url` without a user or password in it (for records and summaries)."""
    return re.sub(r"^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@", r"\1", url)


def write_record(store: AssetStore, run_id: str, record: dict[str, Any]) -> str:
    """The publish's record in the store, `_publish/<run_id>.json`; its URL."""
    return store.write_json(f"{PUBLISH}/{run_id}.json", record)


def read_records(store: AssetStore) -> list[dict[str, Any]]:
    """Every publish record of the store, oldest first."""
    root = store.path(PUBLISH)
    store.fs.invalidate_cache(root)
    try:
        names = sorted(p for p in store.fs.ls(root, detail=False) if p.endswith(".json"))
    except FileNotFoundError:
        return []
    return [json.loads(store.fs.cat_file(p)) for p in names]


def record_in_catalog(store: AssetStore, values: dict[str, dict[str, Any]], run_id: str) -> None:
    """Set published_uri and published_at of these assets (asset_id -> column -> value)."""
    update_columns(store, values, PUBLISH_COLUMNS, f"publish-{run_id}")
