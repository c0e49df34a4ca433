"""The images the review app serves: an asset's original, its renditions, its references.

A request names an asset (its id, checked against the catalog first) and a
number; the file comes from the catalog row or the sidecar, never from the
request. Originals and renditions are read from the asset's own folder
(`asset_folder(partition, asset_id)` and a plain file name), through the
store's filesystem, so an S3 store needs no public bucket or presigned link.
A reference image lies where the manifest said (often outside the store): it
is served only when its bytes still have the sha256 the job recorded, i.e.
only the exact image the model was given.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import fsspec

from assetgen.tasks.manifest.references import READ_LIMIT
from assetgen.tasks.store.assets import IMAGE_TYPES, SIDECAR, AssetStore, asset_folder

# A file name the pipeline writes: `original.png`, `thumb.webp`, `og.jpg`.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
REFERENCE_CACHE = 50_000  # assets whose reference list is kept (a few hundred bytes each)


class NotServed(LookupError):
    """The asset has no such image, or it cannot be read (a 404, never a path)."""


@dataclass(frozen=True)
class Reference:
    """A reference image the asset was made from, as its sidecar recorded it."""

    index: int  # in the sidecar's `references` (the number in its URL)
    uri: str
    sha256: str
    width: int | None
    height: int | None


def content_type(name: str) -> str:
    """The image type of a file name, or NotServed for anything that is not an image."""
    if not FILE_NAME.fullmatch(name) or ".." in name:
        raise NotServed(name)
    found = IMAGE_TYPES.get(name.rsplit(".", 1)[-1].lower())
    if found is None:
        raise NotServed(name)
    return found


def _folder(row: dict[str, Any]) -> str:
    return asset_folder(dict(row.get("partition") or []), row["asset_id"])


def _read(store: AssetStore, row: dict[str, Any], uri: str | None) -> tuple[bytes, str]:
    # Only the last part of the recorded URI: the folder follows from the row itself.
    name = (uri or "").rsplit("/", 1)[-1]
    kind = content_type(name)
    try:
        return store.read_bytes(f"{_folder(row)}/{name}"), kind
    except (FileNotFoundError, OSError) as e:
        raise NotServed(name) from e


def original(store: AssetStore, row: dict[str, Any]) -> tuple[bytes, str]:
    """The original's bytes and content type."""
    return _read(store, row, row.get("original_uri"))


def rendition(store: AssetStore, row: dict[str, Any], index: int) -> tuple[bytes, str]:
    """Rendition number `index` of the row's renditions."""
    found = row.get("renditions") or []
    if not 0 <= index < len(found):
        raise NotServed(f"rendition {index}")
    return _read(store, row, found[index].get("uri"))


def sniff(data: bytes) -> str | None:
    """The content type of image bytes by their magic number (references have no name we
    trust)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class References:
    """Each asset's reference images, from its sidecar, read once per asset.

    An asset_id is a hash of its reference images' bytes, so the list of an
    asset never changes: cached for as long as the app runs.
    """

    def __init__(self, store: AssetStore) -> None:
        self.store = store
        self._known: OrderedDict[str, list[Reference]] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, row: dict[str, Any]) -> list[Reference]:
        """The asset's reference images (its mask left out); none if the sidecar is gone."""
        asset_id = row["asset_id"]
        with self._lock:
            if asset_id in self._known:
                self._known.move_to_end(asset_id)
                return self._known[asset_id]
        try:
            sidecar = self.store.read_json(f"{_folder(row)}/{SIDECAR}")
        except (FileNotFoundError, OSError, ValueError):
            return []
        found = [
            Reference(i, str(r["uri"]), str(r["sha256"]), r.get("width"), r.get("height"))
            for i, r in enumerate(sidecar.get("references") or [])
            if isinstance(r, dict) and r.get("uri") and r.get("sha256") and not r.get("mask")
        ]
        with self._lock:
            self._known[asset_id] = found
            while len(self._known) > REFERENCE_CACHE:
                self._known.popitem(last=False)
        return found

    def read(self, row: dict[str, Any], index: int) -> tuple[bytes, str]:
        """Reference number `index`: its bytes, if they are still the bytes the job sent."""
        ref = next((r for r in self.of(row) if r.index == index), None)
        if ref is None:
            raise NotServed(f"reference {index}")
        try:
            if ref.uri.startswith(self.store.url + "/"):  # in the store: its options apply
                data = self.store.read_bytes(ref.uri[len(self.store.url) + 1 :])
            else:
                with fsspec.open(ref.uri, "rb") as f:
                    data = f.read(READ_LIMIT + 1)
        except Exception as e:  # any backend's error means the same here: not there
            raise NotServed(f"reference {index}") from e
        kind = sniff(data)
        if len(data) > READ_LIMIT or kind is None or hashlib.sha256(data).hexdigest() != ref.sha256:
            raise NotServed(f"reference {index} changed since the job read it")
        return data, kind
