"""The catalog: Parquet parts under `<store>/_catalog/`, one row per asset, latest row wins.

Runs append part files as they go, so a crash keeps what was recorded. The
catalog is an index: `rebuild` makes it again from the sidecars alone.

A new prompt or style_version makes new assets for the same slot (partition,
row_id, variant) and keeps the old ones: on read, each generated asset that a
newer one of its slot replaced names it in `superseded_by` (derived, never
stored).
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.dispatch import JobOutcome
from tasks.store import SIDECAR, AssetStore, Sidecar, asset_folder, now_utc

CATALOG = "_catalog"
FLUSH_ROWS = 500
FLUSH_SECONDS = 10.0
READ_RETRIES = 20

RENDITION = pa.struct(
    [
        ("name", pa.string()),
        ("uri", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("format", pa.string()),
        ("bytes", pa.int64()),
    ]
)
SCHEMA = pa.schema(
    [
        ("asset_id", pa.string()),
        ("row_id", pa.string()),
        ("row", pa.int64()),
        ("variant", pa.int32()),
        ("partition", pa.map_(pa.string(), pa.string())),
        ("status", pa.string()),
        ("error", pa.string()),
        ("model", pa.string()),
        ("prompt", pa.string()),
        ("revised_prompt", pa.string()),
        ("size", pa.string()),
        ("quality", pa.string()),
        ("output_format", pa.string()),
        ("background", pa.string()),
        ("attempts", pa.int32()),
        ("latency_s", pa.float64()),
        ("text_input_tokens", pa.int64()),
        ("image_input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("run_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("original_uri", pa.string()),
        ("original_bytes", pa.int64()),
        ("original_sha256", pa.string()),
        ("renditions", pa.list_(RENDITION)),
        ("metadata", pa.string()),  # JSON: columns differ from manifest to manifest
    ]
)
PARTITION_COLUMNS = {"partition"}
# Derived on read (see superseded): the newer asset of the same slot, or null.
SUPERSEDED_BY = "superseded_by"
READ_SCHEMA = SCHEMA.append(pa.field(SUPERSEDED_BY, pa.string()))
GENERATED = "generated"


def row_from_sidecar(store: AssetStore, sidecar: Sidecar) -> dict[str, Any]:
    """The catalog row of a stored asset."""
    folder = asset_folder(sidecar.partition, sidecar.asset_id)
    return {
        "asset_id": sidecar.asset_id,
        "row_id": sidecar.row_id,
        "row": sidecar.row,
        "variant": sidecar.variant,
        "partition": sidecar.partition,
        "status": "generated",
        "error": None,
        "model": sidecar.model,
        "prompt": sidecar.prompt,
        "revised_prompt": sidecar.revised_prompt,
        "size": sidecar.params.get("size"),
        "quality": sidecar.params.get("quality"),
        "output_format": sidecar.params.get("output_format"),
        "background": sidecar.params.get("background"),
        "attempts": sidecar.attempts,
        "latency_s": sidecar.latency_s,
        "text_input_tokens": sidecar.usage.text_input_tokens,
        "image_input_tokens": sidecar.usage.image_input_tokens,
        "output_tokens": sidecar.usage.output_tokens,
        "cost_usd": sidecar.cost_usd,
        "run_id": sidecar.run_id,
        "created_at": sidecar.created_at,
        "recorded_at": now_utc(),
        "original_uri": store.uri(f"{folder}/{sidecar.original}"),
        "original_bytes": sidecar.bytes,
        "original_sha256": sidecar.sha256,
        "renditions": [
            {
                "name": r.name,
                "uri": store.uri(f"{folder}/{r.file}"),
                "width": r.width,
                "height": r.height,
                "format": r.format,
                "bytes": r.bytes,
            }
            for r in sidecar.renditions
        ],
        "metadata": json.dumps(sidecar.metadata, default=str),
    }


def row_from_outcome(outcome: JobOutcome, run_id: str) -> dict[str, Any]:
    """The catalog row of a job that has no image: failed, left for budget, not sent."""
    job = outcome.job
    now = now_utc()
    return {
        "asset_id": job.asset_id,
        "row_id": job.row_id,
        "row": job.row,
        "variant": job.variant,
        "partition": job.partition,
        "status": outcome.status,
        "error": outcome.reason,
        "model": job.model,
        "prompt": job.prompt,
        "size": job.size,
        "quality": job.quality,
        "output_format": job.output_format,
        "background": job.background,
        "attempts": outcome.attempts,
        "cost_usd": outcome.cost_usd,
        "run_id": run_id,
        "created_at": now,
        "recorded_at": now,
        "renditions": [],
        "metadata": json.dumps(job.metadata, default=str),
    }


class CatalogWriter:
    """Buffers rows and publishes them as part files, every FLUSH_ROWS rows or FLUSH_SECONDS."""

    def __init__(self, store: AssetStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.rows_written = 0
        self._rows: list[dict[str, Any]] = []
        self._seq = 0
        # Two writers of one run (generation, then completing stored assets)
        # must never pick the same part name.
        self._token = secrets.token_hex(3)
        self._last_flush = time.monotonic()
        self._lock = threading.Lock()

    def add(self, row: dict[str, Any]) -> None:
        """Record one row; may write a part file (call from a worker thread)."""
        with self._lock:
            self._rows.append(row)
            due = (
                len(self._rows) >= FLUSH_ROWS
                or time.monotonic() - self._last_flush >= FLUSH_SECONDS
            )
        if due:
            self.flush()

    def flush(self) -> None:
        """Publish buffered rows as one part file (whole, never partial)."""
        with self._lock:
            rows, self._rows = self._rows, []
            self._last_flush = time.monotonic()
            if not rows:
                return
            self._seq += 1
            name = f"{CATALOG}/part-{self.run_id}-{self._token}-{self._seq:05d}.parquet"
            write_part(self.store, name, rows)
            self.rows_written += len(rows)


def write_part(store: AssetStore, relative: str, rows: list[dict[str, Any]]) -> str:
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return store.write_bytes(relative, buf.getvalue())


def part_paths(store: AssetStore) -> list[str]:
    root = store.path(CATALOG)
    if not store.fs.exists(root):
        return []
    return sorted(p for p in store.fs.find(root) if p.endswith(".parquet"))


def read_catalog(store: AssetStore, *, latest: bool = True) -> pa.Table:
    """The newest row of each asset_id, with `superseded_by`; every stored row without `latest`."""
    for attempt in range(READ_RETRIES):
        try:
            tables = [_read_part(store, p) for p in part_paths(store)]
            break
        except FileNotFoundError:
            # A compaction removed a part between listing and reading; its
            # rows are in the compacted file by then: list again.
            if attempt == READ_RETRIES - 1:
                raise
            time.sleep(0.01 * attempt)
    if not tables:
        return (READ_SCHEMA if latest else SCHEMA).empty_table()
    table = pa.concat_tables(tables)
    return superseded(latest_rows(table)) if latest else table


def _read_part(store: AssetStore, path: str) -> pa.Table:
    with store.fs.open(path, "rb") as f:
        return pq.read_table(f, schema=SCHEMA)


def latest_rows(table: pa.Table) -> pa.Table:
    """The newest row per asset_id (by recorded_at); a row doubled by compaction counts once."""
    if table.num_rows == 0:
        return table
    indexed = table.append_column("_i", pa.array(range(table.num_rows), pa.int64()))
    order = indexed.sort_by([("asset_id", "ascending"), ("recorded_at", "descending")])
    ids = order["asset_id"]
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    keep = pa.concat_arrays([pa.array([True]), first.combine_chunks()])
    return order.filter(keep).drop_columns(["_i"])


def superseded(table: pa.Table) -> pa.Table:
    """`table` (one row per asset) with `superseded_by`: the current asset of each older one.

    A slot is (partition, row_id, variant); of its generated assets the newest
    by created_at is current (ties: recorded_at, then the table's order), the
    others name it. Other rows, and current ones, get null. Column-wise
    throughout: the slot becomes one integer, so the one sort is numeric.
    """
    n = table.num_rows
    if n == 0:
        return table.append_column(SUPERSEDED_BY, pa.nulls(0, pa.string()))
    row_ids = pc.dictionary_encode(_one_chunk(table["row_id"]))
    if len(row_ids.dictionary) == n:  # every row_id once: no slot holds two assets
        return table.append_column(SUPERSEDED_BY, pa.nulls(n, pa.string()))
    other = pc.invert(pc.fill_null(pc.equal(table["status"], GENERATED), False))
    slot = _combine(
        [
            *_partition_codes(table["partition"]),
            _codes(row_ids),
            _codes(table["variant"]),
            pc.cast(other, pa.int64()),  # a slot's generated rows, apart from the rest
        ]
    )
    keys = pa.table(
        {"slot": slot, "created_at": table["created_at"], "recorded_at": table["recorded_at"]}
    )
    # Stable: full ties keep the table's order (read_catalog's is by asset_id).
    order = pc.sort_indices(
        keys,
        sort_keys=[
            ("slot", "ascending"),
            ("created_at", "descending"),
            ("recorded_at", "descending"),
        ],
    ).cast(pa.int64())
    starts = _changed(pc.take(slot, order))  # the newest row of each group
    group = pc.subtract(pc.cumulative_sum(pc.cast(starts, pa.int64())), 1)
    newest = order.filter(starts).take(group)  # per sorted row: its group's newest
    older = pc.and_(pc.invert(pc.take(other, order)), pc.invert(starts))
    if not pc.any(older).as_py():
        return table.append_column(SUPERSEDED_BY, pa.nulls(n, pa.string()))
    newest = pc.if_else(older, newest, pa.scalar(None, pa.int64()))
    # Back to the table's order, then the asset_id of each older row's newest.
    names = pc.take(table["asset_id"], pc.scatter(newest, order))
    return table.append_column(SUPERSEDED_BY, names)


def _combine(codes: list[pa.Array]) -> pa.Array:
    """One int64 per row, equal where every code is equal (codes are 0..k-1 or -1)."""
    total: pa.Array | None = None
    bound = 1
    for code in codes:
        width = pc.max(code).as_py() + 2  # -1 (null) to max
        if total is None:
            total, bound = pc.add(code, 1), width
            continue
        if bound * width >= 2**62:  # re-number the combinations so far: fewer than rows
            total = _codes(total)
            bound = pc.max(total).as_py() + 1
        total = pc.add(pc.multiply(total, width), pc.add(code, 1))
        bound *= width
    assert total is not None
    return total


def _partition_codes(column: pa.ChunkedArray) -> list[pa.Array]:
    """One integer column per partition key: the code of the row's value, -1 if absent.

    Equal maps get equal codes whatever the order of their keys.
    """
    maps = _one_chunk(column)
    n = len(maps)
    offsets = maps.offsets
    first, last = offsets[0].as_py(), offsets[-1].as_py()
    keys = maps.keys.slice(first, last - first)
    values = _codes(maps.items.slice(first, last - first))
    offsets = pc.subtract(offsets, first)
    parents = pc.list_parent_indices(pa.ListArray.from_arrays(offsets, keys))
    names = pc.dictionary_encode(keys)
    columns = []
    for code in range(len(names.dictionary)):
        has = pc.equal(names.indices, code)
        placed = pc.scatter(values.filter(has), parents.filter(has), max_index=n - 1)
        columns.append(pc.fill_null(placed, -1))
    return columns


def _codes(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """int64 codes 0..k-1, equal where the values are equal (null: -1)."""
    values = _one_chunk(values)
    if not isinstance(values, pa.DictionaryArray):
        values = pc.dictionary_encode(values)
    return pc.cast(pc.fill_null(values.indices, -1), pa.int64())


def _one_chunk(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _changed(sorted_values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """True where a value differs from the one before it (the first is True)."""
    sorted_values = _one_chunk(sorted_values)
    differs = pc.not_equal(sorted_values.slice(1), sorted_values.slice(0, len(sorted_values) - 1))
    return pa.concat_arrays([pa.array([True]), pc.fill_null(differs, True)])


def select(
    table: pa.Table,
    where: Iterable[tuple[str, str]] = (),
    status: str | None = None,
    since: datetime | None = None,
    *,
    current_only: bool = False,
) -> pa.Table:
    """Rows matching every `column=value` (a partition key, a column or a metadata key).

    `current_only` leaves out superseded versions (needs `superseded_by`).
    """
    rows = table
    if current_only:
        rows = _current(rows)
    if status:
        rows = rows.filter(pc.equal(rows["status"], status))
    if since:
        rows = rows.filter(
            pc.greater_equal(rows["created_at"], pa.scalar(since, SCHEMA.field("created_at").type))
        )
    for key, value in where:
        if key in rows.column_names and key not in PARTITION_COLUMNS:
            column = pc.cast(rows[key], pa.string())
            rows = rows.filter(pc.equal(column, value))
        else:
            rows = rows.filter(
                pa.array([_match(r, key, value) for r in _partitions_and_meta(rows)])
            )
    return rows


def _current(table: pa.Table) -> pa.Table:
    if SUPERSEDED_BY not in table.column_names:
        return table
    names = table[SUPERSEDED_BY]
    # A filter copies every column: only when some row is superseded.
    return table.filter(pc.is_null(names)) if names.null_count < len(names) else table


def _partitions_and_meta(table: pa.Table) -> Iterator[dict[str, Any]]:
    for part, meta in zip(
        table["partition"].to_pylist(), table["metadata"].to_pylist(), strict=True
    ):
        yield {**(json.loads(meta) if meta else {}), **dict(part or [])}


def _match(fields: dict[str, Any], key: str, value: str) -> bool:
    return key in fields and str(fields[key]) == value


def rebuild(store: AssetStore) -> int:
    """Make the catalog again from the sidecars alone; returns the number of assets."""
    before = part_paths(store)
    rows = [row_from_sidecar(store, s) for s in iter_sidecars(store)]
    _replace_parts(store, rows, "rebuild", before)
    return len(rows)


def compact(store: AssetStore) -> tuple[int, int]:
    """Merge every part into one; returns (parts before, assets)."""
    before = part_paths(store)
    table = read_catalog(store).drop_columns([SUPERSEDED_BY])  # derived on read
    _replace_parts(store, table.to_pylist(), "compact", before)
    return len(before), table.num_rows


def _replace_parts(
    store: AssetStore, rows: list[dict[str, Any]], kind: str, old: list[str]
) -> None:
    # The new file is published before the old ones go: a reader in between
    # sees rows twice, which latest_rows() folds into one, never a gap.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{CATALOG}/{kind}-{stamp}-{secrets.token_hex(3)}.parquet"
    if rows:
        write_part(store, name, rows)
    new = store.path(name)
    for path in old:
        if path != new:
            store.fs.rm_file(path)


def iter_sidecars(store: AssetStore) -> Iterator[Sidecar]:
    """Every asset's sidecar in the store."""
    for folder in store.existing().values():
        yield Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))
