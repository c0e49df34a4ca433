"""Which assets to revise: rejected, current versions, confirmed by the store's decisions.

The catalog finds the candidates (rejected, current, matching `--where`); the
store is the truth: each candidate's sidecar and stored decisions are read
again, and one no longer rejected for these bytes (sha256) is left out. A
revision is planned from what the sidecars say: the rejected version's and
those of the versions before it in its slot (`revision_of`, back to the
first version), whose prompt and reference images are the row's own.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pyarrow.compute as pc

from assetgen.tasks.catalog.rows import GENERATED
from assetgen.tasks.catalog.table import query
from assetgen.tasks.review.decisions import current_state, read_decisions
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar, asset_folder

IO_THREADS = 16  # sidecars and decisions are small files: on S3 the time is round trips
CANDIDATE_COLUMNS = ["asset_id", "partition", "row", "row_id", "variant", "review_state"]
REJECTED = "rejected"


@dataclass
class Rejected:
    """One rejected, current asset and what a revision of it needs to know."""

    asset_id: str
    folder: str
    sidecar: Sidecar
    note: str | None
    # The versions it revises, the first version of the slot first; empty for a first
    # version. Only read for what needs them (a note to act on).
    earlier: list[Sidecar] = field(default_factory=list)
    # Why its lineage could not be read (a version it revises is not in the store).
    broken: str | None = None

    @property
    def first(self) -> Sidecar:
        """The slot's first version: its prompt and references are the row's own."""
        return self.earlier[0] if self.earlier else self.sidecar

    @property
    def notes(self) -> list[str]:
        """Every note the slot's revisions answered, oldest first, then this one's."""
        found = [s.revision_note for s in [*self.earlier[1:], self.sidecar] if s.revision_note]
        return [*found, *([self.note] if self.note else [])]


def candidates(store: AssetStore, where: Iterable[tuple[str, str]] = ()) -> list[dict]:
    """The catalog's rejected, current, generated assets matching `where`: its rows."""
    table = query(store, where, GENERATED, columns=CANDIDATE_COLUMNS, current_only=True)
    table = table.filter(pc.fill_null(pc.equal(table["review_state"], REJECTED), False))
    rows = table.to_pylist()
    rows.sort(key=lambda r: (r["row"] or 0, r["row_id"] or "", r["variant"] or 0, r["asset_id"]))
    return rows


def rejected_assets(
    store: AssetStore, where: Iterable[tuple[str, str]] = (), max_depth: int = 50
) -> list[Rejected]:
    """Every rejected, current asset matching `where`, as the store has it, in row order.

    `max_depth`: how many versions back a lineage is read at most.
    """
    rows = candidates(store, where)

    def read(row: dict) -> Rejected | None:
        asset_id = row["asset_id"]
        folder = asset_folder(dict(row["partition"] or []), asset_id)
        try:
            sidecar = Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))
        except FileNotFoundError:
            return None  # the catalog is an index: no sidecar, no asset
        state = current_state(read_decisions(store, folder), sidecar.sha256, lambda: sidecar.review)
        if state.review_state != REJECTED:
            return None  # decided again since the catalog was written
        found = Rejected(asset_id, folder, sidecar, state.review_note)
        if found.note and sidecar.revision > 0:
            found.earlier, found.broken = lineage(store, sidecar, max_depth)
        return found

    with ThreadPoolExecutor(IO_THREADS) as pool:
        return [r for r in pool.map(read, rows) if r is not None]


def lineage(
    store: AssetStore, sidecar: Sidecar, max_depth: int
) -> tuple[list[Sidecar], str | None]:
    """The versions `sidecar` revises, first version first, and why that is not all of them
    (None when it reached the slot's first version)."""
    found: list[Sidecar] = []
    seen = {sidecar.asset_id}
    current = sidecar
    while current.revision_of:
        if current.revision_of in seen or len(found) >= max_depth:
            return found[::-1], "its revisions form no chain back to a first version"
        seen.add(current.revision_of)
        folder = asset_folder(current.partition, current.revision_of)
        try:
            current = Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))
        except FileNotFoundError:
            missing = current.revision_of
            return found[::-1], f"the version it revises, {missing}, is not in the store"
        found.append(current)
    return found[::-1], None
