"""A catalog of an earlier assetgen (Parquet parts, many rows per asset) made a Delta table.

Those parts held every row a run recorded; the newest row of an asset (by
recorded_at) was its state, and superseded_by was worked out on read. The
migration keeps exactly that view: one row per asset, superseded_by stored.
The parts are removed only once the table is committed, so a migration cut
short leaves the old catalog as it was, and the next command runs it again.
"""

from __future__ import annotations

import contextlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, write_deltalake
from deltalake.exceptions import DeltaError

from assetgen.tasks.catalog.location import CATALOG, RUN_KEY, TABLE_PROPERTIES, location
from assetgen.tasks.catalog.rows import SCHEMA, with_superseded
from assetgen.tasks.store.assets import AssetStore


def legacy_parts(store: AssetStore) -> list[str]:
    """The Parquet parts of an old catalog (none once the folder holds a Delta table)."""
    root = store.path(CATALOG)
    fs = store.fs
    fs.invalidate_cache(root)
    if not fs.exists(root) or fs.exists(f"{root}/_delta_log"):
        return []
    return sorted(p for p in fs.ls(root, detail=False) if p.endswith(".parquet"))


def migrate(store: AssetStore) -> int:
    """Convert the old catalog of `store`, if it has one; the number of assets (0: nothing)."""
    parts = legacy_parts(store)
    if not parts:
        return 0
    stored = pa.concat_tables([_read_part(store, p) for p in parts])
    table = with_superseded(_latest(stored))
    uri, options = location(store)
    try:
        write_deltalake(
            uri,
            table,
            mode="error",  # another process migrating at the same time: let it
            configuration=TABLE_PROPERTIES,
            storage_options=options,
            # A migration that lost the race must fail, not append its rows after the winner's.
            commit_properties=CommitProperties(
                custom_metadata={RUN_KEY: "migrate"}, max_commit_retries=0
            ),
        )
    except DeltaError:
        if not legacy_parts(store):  # the other migration is done: its table stands
            return table.num_rows
        raise
    for path in parts:
        with contextlib.suppress(FileNotFoundError):
            store.fs.rm_file(path)
    return table.num_rows


def _read_part(store: AssetStore, path: str) -> pa.Table:
    legacy = pa.schema([f for f in SCHEMA if f.name != "superseded_by"])
    with store.fs.open(path, "rb") as f:
        # Columns a part of an older version lacks are read as nulls.
        part = pq.read_table(pa.BufferReader(f.read()), schema=legacy)
    return part.append_column("superseded_by", pa.nulls(part.num_rows, pa.string()))


def _latest(table: pa.Table) -> pa.Table:
    """The newest row of each asset_id by recorded_at (the old catalog's rule)."""
    if table.num_rows < 2:
        return table
    order = pc.sort_indices(table, [("asset_id", "ascending"), ("recorded_at", "descending")])
    ids = table["asset_id"].take(order).combine_chunks()
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    keep = order.filter(pa.concat_arrays([pa.array([True]), pc.fill_null(first, True)]))
    return table.take(keep)
