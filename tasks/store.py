"""The asset store: partition folders, one folder per asset, each object written whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import fsspec
from pydantic import BaseModel

from tasks.fsio import open_atomic
from tasks.plan import Job
from tasks.providers import Usage

SIDECAR = "asset.json"
EXTENSIONS = {"png": "png", "jpeg": "jpg", "webp": "webp"}
# Folders of the store that hold run records, not assets.
SYSTEM_PREFIX = "_"


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
    returned: dict[str, Any] = {}
    usage: Usage
    cost_usd: float
    request_id: str | None = None
    latency_s: float
    attempts: int


def partition_path(partition: dict[str, str]) -> str:
    """Hive-style `key=value/...`, each value percent-encoded so it stays one folder."""
    return "/".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in partition.items())


class AssetStore:
    """An fsspec URL (local folder, s3://bucket/prefix, memory://...) holding assets."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self.fs, self._root = fsspec.core.url_to_fs(self.url)

    def asset_dir(self, job: Job) -> str:
        """Folder of a job's asset, relative to the store root."""
        part = partition_path(job.partition)
        return f"{part}/{job.asset_id}" if part else job.asset_id

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
        """Write one object whole; returns its URL."""
        url = self.uri(relative)
        with open_atomic(url, "wb") as f:
            f.write(data)
        return url

    def write_json(self, relative: str, obj: Any) -> str:
        """Write a JSON document whole; returns its URL."""
        return self.write_bytes(relative, json.dumps(obj, indent=2, default=str).encode())

    def read_json(self, relative: str) -> Any:
        with self.fs.open(f"{self._root}/{relative}", "rb") as f:
            return json.load(f)

    def write_asset(self, folder: str, original: str, image: bytes, sidecar: Sidecar) -> str:
        """Original first, then the sidecar: a sidecar means the asset is complete."""
        self.write_bytes(f"{folder}/{original}", image)
        return self.write_bytes(
            f"{folder}/{SIDECAR}", sidecar.model_dump_json(indent=2).encode("utf-8")
        )


def now_utc() -> datetime:
    return datetime.now(UTC)
