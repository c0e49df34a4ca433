"""What the review app lists: the catalog's generated assets in review order, filtered, paged.

The catalog is read once per table version, not per request: a `Snapshot`
holds the rows (as Arrow), their order (by partition, then manifest row, row
id, variant) and the few columns filters need as Python lists. A page then
costs a scan of those lists and a `take` of its own rows, whatever the size
of the store. The table's version is looked up at most every CHECK_S seconds
(and at once after a decision made here), so decisions made elsewhere (the
CLI, another app) show up on the next page load.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from assetgen.tasks.catalog.rows import GENERATED, SUPERSEDED_BY
from assetgen.tasks.catalog.select import of_run, select
from assetgen.tasks.catalog.table import open_table, read_catalog
from assetgen.tasks.reporting.cards import group_key
from assetgen.tasks.review.decisions import STATES
from assetgen.tasks.store.assets import AssetStore

CHECK_S = 1.0
PAGE_SIZE = 60  # fills rows of 2, 3, 4, 5 or 6 cards
ALL = "all"
SortKey = tuple[str, int, str, int, str]


@dataclass(frozen=True)
class Filter:
    """What the reviewer narrowed the grid to (values already checked against the snapshot)."""

    state: str = ALL  # pending, approved, rejected or all
    part: str | None = None  # a partition group ("campaign=spring / locale=en-US")
    run: str | None = None

    def query(self, **more: str | None) -> dict[str, str]:
        """These filters (and `more`) as query parameters; empty ones left out."""
        found = {"state": self.state, "part": self.part, "run": self.run, **more}
        return {k: v for k, v in found.items() if v}


@dataclass
class Page:
    """One page of the grid: its rows (catalog dicts) and where it stands in the whole."""

    rows: list[dict[str, Any]]
    first: int  # position of the first row in the filtered list (0-based)
    total: int  # rows matching the filter
    counts: dict[str, int]  # by state, for the filter without its state
    after: str | None  # asset_id to start the next page after, if there is one
    before: str | None  # asset_id to end the previous page before, if there is one


class Snapshot:
    """The app's generated assets at one table version, indexed for filters and pages."""

    def __init__(self, table: pa.Table, version: int | None) -> None:
        self.version = version
        self.table = table
        ids = table["asset_id"].to_pylist()
        self.ids = ids
        self.position = {a: i for i, a in enumerate(ids)}
        self.groups = [group_key(dict(p or [])) for p in table["partition"].to_pylist()]
        self.states = [s or "pending" for s in table["review_state"].to_pylist()]
        self.runs = table["run_id"].to_pylist()
        current = pc.is_null(table[SUPERSEDED_BY]).to_pylist()
        keys = [
            (g, r if r is not None else -1, rid or "", v or 0, a)
            for g, r, rid, v, a in zip(
                self.groups,
                table["row"].to_pylist(),
                table["row_id"].to_pylist(),
                table["variant"].to_pylist(),
                ids,
                strict=True,
            )
        ]
        self.keys: list[SortKey] = keys
        # Current versions only, in review order; older versions stay reachable by id.
        self.order = sorted((i for i in range(len(ids)) if current[i]), key=keys.__getitem__)
        self.partitions = sorted({self.groups[i] for i in self.order})
        self.run_ids = sorted({r for i in self.order if (r := self.runs[i])}, reverse=True)

    def __contains__(self, asset_id: object) -> bool:
        return asset_id in self.position

    def row(self, asset_id: str) -> dict[str, Any]:
        """The catalog row of one asset (KeyError when the app does not show it)."""
        return self.table.slice(self.position[asset_id], 1).to_pylist()[0]

    def matching(self, flt: Filter, with_state: bool = True) -> list[int]:
        """Positions of the current rows matching `flt`, in review order."""
        return [
            i
            for i in self.order
            if (flt.part is None or self.groups[i] == flt.part)
            and (flt.run is None or self.runs[i] == flt.run)
            and (not with_state or flt.state == ALL or self.states[i] == flt.state)
        ]

    def counts(self, flt: Filter) -> dict[str, int]:
        """Assets by state among those `flt` matches whatever their state (and `all`)."""
        found = Counter(self.states[i] for i in self.matching(flt, with_state=False))
        return {**{s: found.get(s, 0) for s in STATES}, ALL: sum(found.values())}

    def page(
        self,
        flt: Filter,
        after: str | None = None,
        before: str | None = None,
        size: int = PAGE_SIZE,
    ) -> Page:
        """The page after asset `after` (or before `before`; else the first).

        By key, not by number: approving the cards of a `pending` page takes them
        out of the filter, and a page number would then skip as many.
        """
        picked = self.matching(flt)
        keys = [self.keys[i] for i in picked]
        if after in self:
            start = bisect.bisect_right(keys, self.keys[self.position[after]])
        elif before in self:
            start = max(0, bisect.bisect_left(keys, self.keys[self.position[before]]) - size)
        else:
            start = 0
        shown = picked[start : start + size]
        rows = self.table.take(pa.array(shown, pa.int64())).to_pylist() if shown else []
        return Page(
            rows=rows,
            first=start,
            total=len(picked),
            counts=self.counts(flt),
            after=self.ids[shown[-1]] if shown and start + size < len(picked) else None,
            before=self.ids[shown[0]] if shown and start > 0 else None,
        )

    def neighbours(self, asset_id: str, flt: Filter) -> tuple[str | None, str | None]:
        """The assets before and after `asset_id` in the filtered order (detail view: j/k)."""
        picked = self.matching(flt)
        keys = [self.keys[i] for i in picked]
        key = self.keys[self.position[asset_id]]
        at = bisect.bisect_left(keys, key)
        here = at < len(keys) and keys[at] == key
        prev = self.ids[picked[at - 1]] if at > 0 else None
        nxt_at = at + 1 if here else at
        nxt = self.ids[picked[nxt_at]] if nxt_at < len(picked) else None
        return prev, nxt

    def versions(self, asset_id: str) -> list[dict[str, Any]]:
        """Every version of the asset's slot (same partition, row id, variant), newest first."""
        group, _, row_id, variant, _ = self.keys[self.position[asset_id]]
        slot = (group, row_id, variant)
        found = [i for i, k in enumerate(self.keys) if (k[0], k[2], k[3]) == slot]
        if len(found) < 2:
            return []
        table = self.table.take(pa.array(found, pa.int64())).select(
            ["asset_id", "created_at", "review_state", SUPERSEDED_BY]
        )
        return sorted(table.to_pylist(), key=lambda r: r["created_at"], reverse=True)


class Listing:
    """The current Snapshot of a store, limited to `where` and `run` (the `serve` options)."""

    def __init__(
        self,
        store: AssetStore,
        where: Iterable[tuple[str, str]] = (),
        check_s: float = CHECK_S,
        run: str | None = None,
    ) -> None:
        self.store = store
        self.where = list(where)
        self.run = run
        self.check_s = check_s
        self._snapshot: Snapshot | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        """The rows as the table is now (its version looked up at most every check_s)."""
        with self._lock:
            now = time.monotonic()
            if self._snapshot is not None and now - self._checked < self.check_s:
                return self._snapshot
            table = open_table(self.store)
            version = None if table is None else table.version()
            if self._snapshot is None or version != self._snapshot.version:
                self._snapshot = Snapshot(self._read(version), version)
            self._checked = now
            return self._snapshot

    def invalidate(self) -> None:
        """Look the table up again on the next request (after a decision made here)."""
        with self._lock:
            self._checked = 0.0

    def _read(self, version: int | None) -> pa.Table:
        if version is None:  # no catalog yet: nothing to review
            return read_catalog(self.store)
        table = read_catalog(self.store, as_of=version, filter=pc.field("status") == GENERATED)
        table = select(table, self.where, GENERATED)
        return of_run(table, self.run) if self.run else table
