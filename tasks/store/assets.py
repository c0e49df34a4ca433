"""The asset store: partition folders, one folder per asset, each object written whole."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

import fsspec
from fsspec.implementations.local import LocalFileSystem
from pydantic import BaseModel

from assetgen.tasks.plan.pricing import Usage
from assetgen.tasks.store.fsio import open_atomic

if TYPE_CHECKING:  # the planner is not needed to read a store
    from assetgen.tasks.plan.jobs import Job

SIDECAR = "asset.json"
WRITE_ATTEMPTS = 4
WRITE_BACKOFF_S = 0.2
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
# The image files a store holds, by extension: what they are served and published as.
IMAGE_TYPES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "avif": "image/avif",
}
# Folders of the store that hold run records, not assets.
SYSTEM_PREFIX = "_"


class RenditionInfo(BaseModel):
    """One rendition file next to the original."""

    name: str
    file: str
    width: int
    height: int
    format: str
    bytes: int
    quality: int | None = None
    note: str | None = None
    credentials: str | None = None  # "signed" when it carries a C2PA manifest of ours
    # What its overlays drew, one record per layer: name, type, parameters and, for text,
    # the exact text and fitted size; for a logo its uri and sha256. Empty without overlays.
    overlays: list[dict[str, Any]] = []


class Sidecar(BaseModel):
    """Everything known about one stored image; the catalog is rebuilt from these."""

    asset_id: str
    run_id: str
    created_at: datetime
    row: int
    row_id: str
    variant: int
    partition: dict[str, str]
    metadata: dict[str, Any]
    provider: str
    model: str
    prompt: str
    revised_prompt: str | None = None
    params: dict[str, Any]
    references: list[dict[str, Any]] = []
    original: str
    width: int | None = None
    height: int | None = None
    bytes: int
    sha256: str | None = None
    renditions: list[RenditionInfo] = []
    returned: dict[str, Any] = {}
    usage: Usage
    cost_usd: float
    request_id: str | None = None
    latency_s: float
    attempts: int
    batch_id: str | None = None  # Batch API mode: the batch that made it
    # What the original's C2PA manifest says as it arrived (renditions/credentials.py
    # Credentials); None for assets stored before it was read.
    credentials: dict[str, Any] | None = None
    # The job config's review setting when it was made ("off": counts as approved).
    review: Literal["required", "off"] = "required"
    # A revision of a rejected asset (assetgen revise): its number, the asset it
    # replaces, and the reviewer's note it answers. 0 / None for a first version.
    revision: int = 0
    revision_of: str | None = None
    revision_note: str | None = None
    # A row's own asset over another row's picture (tasks/generation/shared.py): the
    # asset_id that paid for the picture; its original here is a copy. None: its own.
    shares: str | None = None


class UnsafePath(ValueError):
    """A path built from user data that would not stay one folder inside the store."""


def _segment(text: str) -> str:
    # Percent-encoding leaves no separator; what is left that could still
    # move out of the folder (empty, '.', '..') is refused.
    encoded = quote(text, safe="")
    if encoded in ("", ".", ".."):
        raise UnsafePath(f"{text!r} cannot be a folder name")
    return encoded


def partition_path(partition: dict[str, str]) -> str:
    """Hive-style `key=value/...`, each part percent-encoded so it stays one folder."""
    return "/".join(f"{_segment(k)}={_segment(v)}" for k, v in partition.items())


def asset_folder(partition: dict[str, str], asset_id: str) -> str:
    """Folder of an asset, relative to the store root."""
    if not asset_id.isalnum():
        raise UnsafePath(f"asset_id {asset_id!r} is not alphanumeric")
    part = partition_path(partition)
    return f"{part}/{asset_id}" if part else asset_id


class AssetStore:
    """An fsspec URL (local folder, s3://bucket/prefix, memory://...) holding assets.

    `options` go to the filesystem (for S3: `endpoint_url`, `key`, `secret`,
    `client_kwargs`...); without them s3fs reads the standard AWS environment.
    """

    def __init__(self, url: str, options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.options = options or {}
        self.fs, self._root = fsspec.core.url_to_fs(self.url, **self.options)
        self._local = isinstance(self.fs, LocalFileSystem)

    def asset_dir(self, job: Job) -> str:
        """Folder of a job's asset, relative to the store root."""
        return asset_folder(job.partition, job.asset_id)

    def path(self, relative: str) -> str:
        """The filesystem path (no protocol) of a path inside the store."""
        return f"{self._root.rstrip('/')}/{relative}"

    def uri(self, relative: str) -> str:
        """The full URL of a path inside the store."""
        return f"{self.url}/{relative}"

    def existing(self) -> dict[str, str]:
        """asset_id -> folder (relative) of every asset whose sidecar is in the store."""
        if not self.fs.exists(self._root):
            return {}
        found: dict[str, str] = {}
        prefix = self._root.rstrip("/") + "/"
        for path in self.fs.find(self._root):
            relative = path[len(prefix) :] if path.startswith(prefix) else path
            if relative.startswith(SYSTEM_PREFIX) or not relative.endswith("/" + SIDECAR):
                continue
            folder = relative[: -len(SIDECAR) - 1]
            found[folder.rsplit("/", 1)[-1]] = folder
        return found

    def write_bytes(self, relative: str, data: bytes) -> str:
        """Write one object whole (local: temp file then rename; S3: one PUT); returns its URL."""
        path = self.path(relative)
        if self._local:
            with open_atomic(path, "wb") as f:
                f.write(data)
        else:
            # One PUT publishes the object whole; a failed PUT leaves nothing
            # behind, so trying again is safe.
            for attempt in range(1, WRITE_ATTEMPTS + 1):
                try:
                    self.fs.pipe_file(path, data)
                    break
                except OSError:
                    if attempt == WRITE_ATTEMPTS:
                        raise
                    time.sleep(WRITE_BACKOFF_S * attempt)
        return self.uri(relative)

    @property
    def is_local(self) -> bool:
        """A folder on this machine (other machines cannot see it)."""
        return self._local

    def read_bytes(self, relative: str) -> bytes:
        return self.fs.cat_file(self.path(relative))

    def read_json(self, relative: str) -> Any:
        return json.loads(self.read_bytes(relative))

    def write_json(self, relative: str, obj: Any) -> str:
        """Write a JSON document whole; returns its URL."""
        return self.write_bytes(relative, json.dumps(obj, indent=2, default=str).encode())

    def write_asset(self, folder: str, original: str, image: bytes, sidecar: Sidecar) -> str:
        """Original first, then the sidecar: a sidecar means the asset is complete."""
        self.write_bytes(f"{folder}/{original}", image)
        return self.write_bytes(
            f"{folder}/{SIDECAR}", sidecar.model_dump_json(indent=2).encode("utf-8")
        )


def now_utc() -> datetime:
    return datetime.now(UTC)
