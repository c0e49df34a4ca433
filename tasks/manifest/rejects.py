"""The rejects file: one CSV line per reason a row was not accepted."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.store.fsio import open_atomic

COLUMNS = ("row", "id", "column", "code", "reason")


class RejectSink(Protocol):
    def __call__(self, reject: Reject) -> None: ...


@contextmanager
def rejects_file(url: str, storage_options: dict[str, Any] | None = None) -> Iterator[RejectSink]:
    """Collect rejects into a CSV at `url`, published whole when the block ends.

    The file is written even when empty, so a stale one from an earlier
    run never tells of rows that are fine now.
    """
    with open_atomic(url, "w", storage_options, encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        yield lambda r: writer.writerow([r.row, r.id or "", r.column or "", r.code, r.reason])
