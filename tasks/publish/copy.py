"""Writing published files whole, with their Content-Type and Cache-Control; removing them.

Locally a file is written beside its place and renamed over it (a reader sees
the old file or the new one); on S3 it is one PUT carrying the headers and a
SHA-256 checksum, which S3 verifies before it stores anything, so the object
is the bytes sent or nothing.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from typing import Any

from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem

from assetgen.tasks.store.assets import IMAGE_TYPES
from assetgen.tasks.store.fsio import open_atomic

WRITE_ATTEMPTS = 4
WRITE_BACKOFF_S = 0.2
# Below s3fs's multipart threshold (2 x 50 MiB chunks) a write is one PUT: it can carry a
# whole-object checksum. Larger files go up in parts (still published whole, at completion).
SINGLE_PUT_BYTES = 100 * 2**20
CONTENT_TYPES = {
    **IMAGE_TYPES,
    "csv": "text/csv; charset=utf-8",
    "jsonl": "application/x-ndjson; charset=utf-8",
    "json": "application/json",
}


def content_type(ext: str) -> str:
    return CONTENT_TYPES.get(ext.lower().lstrip("."), "application/octet-stream")


def is_s3(fs: AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple | list) else (fs.protocol,)
    return bool({"s3", "s3a"} & set(protocols))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_whole(
    fs: AbstractFileSystem, path: str, data: bytes, mime: str, cache_control: str
) -> None:
    """Write `data` at `path` whole; on S3 with Content-Type and Cache-Control."""
    if isinstance(fs, LocalFileSystem):
        with open_atomic(path, "wb") as f:
            f.write(data)
        return
    kwargs: dict[str, Any] = {}
    if is_s3(fs):
        kwargs = {"ContentType": mime, "CacheControl": cache_control}
        if len(data) < SINGLE_PUT_BYTES:
            digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
            kwargs |= {"ChecksumAlgorithm": "SHA256", "ChecksumSHA256": digest}
    for attempt in range(1, WRITE_ATTEMPTS + 1):
        try:
            # A failed PUT leaves nothing behind: trying again is safe.
            fs.pipe_file(path, data, **kwargs)
            return
        except OSError:
            if attempt == WRITE_ATTEMPTS:
                raise
            time.sleep(WRITE_BACKOFF_S * attempt)


def remove(fs: AbstractFileSystem, path: str, root: str) -> bool:
    """Remove the file at `path` (True if it was there); locally also the folders it leaves
    empty, up to `root`."""
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        return False
    if isinstance(fs, LocalFileSystem):
        folder = os.path.dirname(path)
        top = os.path.abspath(root)
        while os.path.abspath(folder).startswith(top + os.sep):
            try:
                os.rmdir(folder)
            except OSError:  # not empty
                break
            folder = os.path.dirname(folder)
    return True
