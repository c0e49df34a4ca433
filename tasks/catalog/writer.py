"""The catalog rows a run records, committed as it goes and at its end."""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from assetgen.tasks.catalog.table import commit
from assetgen.tasks.store.assets import AssetStore

FLUSH_ROWS = 500
FLUSH_SECONDS = 10.0


class CatalogWriter:
    """Buffers rows and commits them every FLUSH_ROWS rows or FLUSH_SECONDS, and at flush().

    A run cut short keeps what it committed: each checkpoint is a version of
    the table. Each commit carries this writer's application transaction
    (`assetgen-<run_id>-<token>`, numbered), so one retried after an unclear
    failure is not applied twice. A commit that fails for good loses no row
    that matters: the store is the truth (`rebuild`), and the error goes to
    `errors`, not to the run.
    """

    def __init__(self, store: AssetStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.rows_written = 0
        self.errors: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._app = f"assetgen-{run_id}-{secrets.token_hex(3)}"
        self._seq = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def add(self, row: dict[str, Any]) -> None:
        """Record one row; may commit a checkpoint (call from a worker thread)."""
        with self._lock:
            self._rows.append(row)
            due = (
                len(self._rows) >= FLUSH_ROWS
                or time.monotonic() - self._last_flush >= FLUSH_SECONDS
            )
            if due:
                self._commit()

    def flush(self) -> None:
        """Commit what is buffered."""
        with self._lock:
            self._commit()

    def _commit(self) -> None:
        """Commit the buffered rows as the next version (hold the lock)."""
        rows, self._rows = self._rows, []
        self._last_flush = time.monotonic()
        if not rows:
            return
        self._seq += 1
        try:
            commit(self.store, rows, self.run_id, (self._app, self._seq))
        except Exception as e:
            self.errors.append(f"{type(e).__name__}: {e}")
            return
        self.rows_written += len(rows)
