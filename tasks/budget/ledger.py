"""The store's spend ledger: one append-only log a month, shared by every run, shard and batch.

Each change is an entry `_ledger/<YYYY-MM>/log/<seq>.json` that is created
only if its number is still free (`fsio.create_exclusive`: a hard link
locally, `If-None-Match: *` on S3), so exactly one writer wins each number.
A writer decides on the state after the last entry and writes the next one;
if another writer took that number first, it reads the winner and decides
again. That makes every change atomic across processes and machines with
no lock and no server. Every SNAPSHOT_EVERY entries the writer also stores
the whole state, so a reader starts from the latest snapshot, not entry 1.

An entry holds the new state of each account it changes (an account is one
spender: a run, a shard, a batch), so replaying the log is a plain overwrite.
Accounts count in the month (and day) their spender started.
"""

from __future__ import annotations

import errno
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, field_validator

from assetgen.tasks.store.assets import AssetStore, now_utc
from assetgen.tasks.store.fsio import create_exclusive

LEDGER = "_ledger"
SNAPSHOT_EVERY = 20
SEQ_DIGITS = 12
# Backoff between attempts when another writer took the number (high contention).
RETRY_BACKOFF_S = 0.005
MAX_ATTEMPTS = 200
IO_ATTEMPTS = 4  # store errors in a row before a commit gives up

Kind = Literal["run", "shard", "batch"]
Period = Literal["day", "month"]
_ACCOUNT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Account(BaseModel):
    """One spender as the ledger knows it; `spent + held` is what it counts against caps."""

    id: str
    kind: Kind
    group: str  # accounts of one group share a run cap (the shards of a sharded run)
    day: str  # YYYY-MM-DD (UTC) the spender started: the period it counts in
    opened_at: datetime
    host: str | None = None
    pid: int | None = None
    spent_usd: float = 0.0
    held_usd: float = 0.0  # claimed and not yet spent; a dead spender's counts as spent
    closed: bool = False
    updated_at: datetime

    @field_validator("id", "group")
    @classmethod
    def _safe(cls, v: str) -> str:
        # Ids name files under _ledger/: letters, digits, '-', '_', '.' only.
        if not _ACCOUNT_ID.match(v) or ".." in v:
            raise ValueError(f"{v!r} is not a valid ledger account id")
        return v

    @property
    def total(self) -> float:
        return self.spent_usd + self.held_usd


class Entry(BaseModel):
    """One numbered change to the ledger."""

    seq: int
    at: datetime
    by: str
    nonce: str  # tells a writer whether the entry it finds at its number is its own
    changes: list[Account]


class LedgerState(BaseModel):
    """Every account of one month, as of entry `seq`."""

    month: str
    seq: int = 0
    accounts: dict[str, Account] = {}

    def apply(self, entry: Entry) -> None:
        for account in entry.changes:
            self.accounts[account.id] = account
        self.seq = entry.seq

    def period_total(self, day: str, period: Period, exclude: str | None = None) -> float:
        """Spent plus held by every account of the day (or of its month)."""
        prefix = day if period == "day" else day[:7]
        return sum(
            a.total for a in self.accounts.values() if a.day.startswith(prefix) and a.id != exclude
        )

    def group_total(self, group: str) -> float:
        return sum(a.total for a in self.accounts.values() if a.group == group)


class LedgerConflict(RuntimeError):
    """The ledger could not take an entry after many attempts (extreme contention)."""


def month_of(day: str) -> str:
    return day[:7]


def day_of(when: datetime) -> str:
    return when.strftime("%Y-%m-%d")


class Ledger:
    """The log of one month of a store; safe to share between threads of a process."""

    def __init__(self, store: AssetStore, month: str) -> None:
        self.store = store
        self.month = month
        self.fs = store.fs
        self.root = store.path(f"{LEDGER}/{month}")
        self.writes = 0  # entries this object wrote for its callers
        self.lost = 0  # times another writer took the number first
        self._state: LedgerState | None = None
        self._legacy: dict[str, Account] | None = None
        self._lock = threading.Lock()

    def read(self) -> LedgerState:
        """The current state (a copy)."""
        with self._lock:
            self._refresh()
            assert self._state is not None
            return self._state.model_copy(deep=True)

    def commit(
        self, decide: Callable[[LedgerState], list[Account] | None], by: str
    ) -> list[Account] | None:
        """Write what `decide` makes of the current state as the next entry.

        `decide` sees the state after the last entry and returns the new
        state of the accounts it changes, or None to write nothing; it is
        called again whenever another writer got in first, so it must only
        depend on the state it is given. Returns what was written.
        """
        with self._lock:
            failures = 0
            for attempt in range(1, MAX_ATTEMPTS + 1):
                try:
                    self._refresh()
                    state = self._state
                    assert state is not None
                    if state.seq == 0:
                        # Entry 1 carries the records of the old per-run ledger, if any.
                        legacy = list(state.accounts.values())
                        self._append(
                            Entry(seq=1, at=now_utc(), by="import", nonce=_nonce(), changes=legacy)
                        )
                        continue
                    changes = decide(state.model_copy(deep=True))
                    if not changes:
                        return None
                    entry = Entry(
                        seq=state.seq + 1, at=now_utc(), by=by, nonce=_nonce(), changes=changes
                    )
                    if self._append(entry):
                        self.writes += 1
                        return changes
                    self.lost += 1
                except OSError:
                    # The store did not answer (S3 503, a dropped connection); the
                    # entry is not there (or _append would have found it ours).
                    failures += 1
                    if failures >= IO_ATTEMPTS:
                        raise
                time.sleep(random.uniform(0, RETRY_BACKOFF_S * min(attempt, 20)))
        raise LedgerConflict(f"{self.root}: no entry taken after {MAX_ATTEMPTS} attempts")

    def _append(self, entry: Entry) -> bool:
        """Create the entry's number; True if it is ours (then it is applied)."""
        path = self._entry_path(entry.seq)
        try:
            created = create_exclusive(self.fs, path, entry.model_dump_json().encode())
        except OSError as e:
            # S3 answers 409 to a conditional PUT racing another on the same key;
            # any other error may have come after the PUT was done. Look.
            found = self._read_entry(entry.seq)
            if found is None and e.errno != errno.EBUSY:
                raise
            created = found is not None and found.nonce == entry.nonce
        if not created:
            found = self._read_entry(entry.seq)
            # A PUT that succeeded but whose answer was lost, retried: ours after all.
            if found is None or found.nonce != entry.nonce:
                return False
        assert self._state is not None
        self._state.apply(entry)
        if entry.seq % SNAPSHOT_EVERY == 0:
            self._snapshot()
        return True

    def _refresh(self) -> None:
        if self._state is None:
            self._state = self._load_snapshot() or LedgerState(month=self.month)
        # Listings may be cached by the filesystem: an entry must never look missing.
        self.fs.invalidate_cache(f"{self.root}/log")
        while (entry := self._read_entry(self._state.seq + 1)) is not None:
            if entry.seq == 1:
                self._state.accounts = {}  # the import below was only a preview of entry 1
            self._state.apply(entry)
        if self._state.seq == 0:
            if self._legacy is None:
                self._legacy = legacy_accounts(self.store, self.month)
            self._state.accounts = dict(self._legacy)

    def _read_entry(self, seq: int) -> Entry | None:
        try:
            return Entry.model_validate_json(self.fs.cat_file(self._entry_path(seq)))
        except FileNotFoundError:
            return None

    def _entry_path(self, seq: int) -> str:
        return f"{self.root}/log/{seq:0{SEQ_DIGITS}d}.json"

    def _snapshot(self) -> None:
        assert self._state is not None
        seq = self._state.seq
        data = self._state.model_dump_json().encode()
        try:
            create_exclusive(self.fs, f"{self.root}/snapshots/{seq:0{SEQ_DIGITS}d}.json", data)
            # A stale hint only means reading a few more entries.
            self.fs.pipe_file(f"{self.root}/snapshot.json", str(seq).encode())
        except OSError:
            pass  # a snapshot is an optimisation: the log alone is the truth

    def _load_snapshot(self) -> LedgerState | None:
        try:
            seq = int(self.fs.cat_file(f"{self.root}/snapshot.json"))
            data = self.fs.cat_file(f"{self.root}/snapshots/{seq:0{SEQ_DIGITS}d}.json")
        except (FileNotFoundError, ValueError):
            return None
        return LedgerState.model_validate_json(data)


def _nonce() -> str:
    return secrets.token_hex(8)


class _LegacyRecord(BaseModel):
    run_id: str
    started_at: datetime
    spent_usd: float
    reserved_usd: float
    final: bool


def legacy_accounts(store: AssetStore, month: str) -> dict[str, Account]:
    """Records of the per-run ledger of earlier versions (`_ledger/<day>/<run>.json`).

    A record that never became final belongs to a run that died (or a batch
    not yet collected): what it reserved counts as held.
    """
    fs = store.fs
    found: dict[str, Account] = {}
    for path in sorted(fs.glob(f"{store.path(LEDGER)}/{month}-[0-3][0-9]/*.json")):
        day = path.rsplit("/", 2)[-2]
        record = _LegacyRecord.model_validate_json(fs.cat_file(path))
        found[record.run_id] = Account(
            id=record.run_id,
            kind="batch" if record.run_id.startswith("batch-") else "run",
            group=record.run_id,
            day=day,
            opened_at=record.started_at,
            spent_usd=record.spent_usd,
            held_usd=0.0 if record.final else record.reserved_usd,
            closed=record.final,
            updated_at=record.started_at,
        )
    return found
