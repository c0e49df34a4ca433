"""The catalog rows a run records, committed as it goes and at its end."""

from __future__ import annotations

import secrets
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from assetgen.tasks.catalog.rows import GENERATED
from assetgen.tasks.catalog.table import commit, compact_small, settle
from assetgen.tasks.store.assets import AssetStore

FLUSH_ROWS = 500
FLUSH_SECONDS = 10.0


class CatalogWriter:
    """Buffers rows and commits them every FLUSH_ROWS rows or FLUSH_SECONDS, and at flush().

    A run cut short keeps what it committed: each checkpoint is a version of
    the table. Checkpoints are committed by one thread of the writer's own, in
    order, so `add` never waits for a commit (a MERGE into a big table takes
    seconds; the threads calling `add` render and store images). Each commit
    carries this writer's application transaction (`assetgen-<run_id>-<token>`,
    numbered), so one retried after an unclear failure is not applied twice. A
    commit that fails for good loses no row that matters: the store is the
    truth (`rebuild`), and the error goes to `errors`, not to the run.

    `flush` ends with two commits of upkeep: `settle` marks the versions this
    writer's assets superseded (the checkpoints only listed them), once for the
    whole run rather than a rewrite of older files at every checkpoint, and
    `compact_small` packs the run's checkpoint files into a few.
    """

    def __init__(self, store: AssetStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.rows_written = 0
        self.errors: list[str] = []
        self._generated: set[str] = set()  # row_ids of generated rows: slots to settle
        self._rows: list[dict[str, Any]] = []
        self._app = f"assetgen-{run_id}-{secrets.token_hex(3)}"
        self._seq = 0
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()
        self._committer = ThreadPoolExecutor(1, thread_name_prefix="catalog-commit")
        self._last: Future[None] | None = None

    def add(self, row: dict[str, Any]) -> None:
        """Record one row; may start a checkpoint commit (it runs on the writer's thread)."""
        with self._lock:
            self._rows.append(row)
            due = (
                len(self._rows) >= FLUSH_ROWS
                or time.monotonic() - self._last_flush >= FLUSH_SECONDS
            )
            if due:
                self._submit()

    def flush(self) -> None:
        """Commit what is buffered, settle and pack what was committed, and wait until
        every commit started is done."""
        with self._lock:
            self._submit()
        self.wait()
        with self._lock:
            if self._generated:
                self._last = self._committer.submit(self._upkeep)
        self.wait()

    def wait(self) -> None:
        """Wait until every commit started is done (what is buffered stays buffered)."""
        with self._lock:
            last = self._last
        if last is not None:
            last.result()

    def _submit(self) -> None:
        """Hand the buffered rows to the commit thread as the next version (hold the lock)."""
        rows, self._rows = self._rows, []
        self._last_flush = time.monotonic()
        if not rows:
            return
        self._seq += 1
        self._last = self._committer.submit(self._commit, rows, self._seq)

    def _commit(self, rows: list[dict[str, Any]], seq: int) -> None:
        try:
            commit(self.store, rows, self.run_id, (self._app, seq))
        except Exception as e:
            self.errors.append(f"{type(e).__name__}: {e}")
            return
        self.rows_written += len(rows)
        self._generated |= {r["row_id"] for r in rows if r.get("status") == GENERATED}

    def _upkeep(self) -> None:
        row_ids, self._generated = self._generated, set()
        try:
            settle(self.store, row_ids, self.run_id)
            compact_small(self.store, self.run_id)
        except Exception as e:
            self.errors.append(f"{type(e).__name__}: {e}")
