"""Whole-file writes to any fsspec URL: readers see the old file or the new one, never half."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import fsspec
from fsspec import AbstractFileSystem
from fsspec.implementations.local import LocalFileSystem


@contextmanager
def open_atomic(
    url: str,
    mode: str = "w",
    storage_options: dict[str, Any] | None = None,
    **open_kwargs: Any,
) -> Iterator[IO]:
    """Write to a temporary file, then move it into place in one step.

    Locally that is a rename within the target folder; elsewhere (S3) one
    upload, which object stores publish whole. `storage_options` go to the
    filesystem (an S3 endpoint, keys).
    """
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    local = isinstance(fs, LocalFileSystem)
    folder = os.path.dirname(path) if local else None
    if folder:
        os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder or None, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if local:
            os.replace(tmp, path)
        else:
            fs.put_file(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def create_exclusive(fs: AbstractFileSystem, path: str, data: bytes) -> bool:
    """Write `path` whole only if nothing is there yet: True if this call created it.

    Locally a complete temporary file is hard-linked into place (`link`
    fails if the name exists, and no reader sees a half-written file, which
    O_EXCL alone would allow); on S3 one PUT with `If-None-Match: *`.
    """
    if isinstance(fs, LocalFileSystem):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    try:
        fs.pipe_file(path, data, mode="create")
        return True
    except FileExistsError:
        return False
