"""The catalog: Parquet parts under `<store>/_catalog/`, one row per asset, latest row wins.

Runs append part files as they go, so a crash keeps what was recorded, and
merge their own parts into one when they end (CatalogWriter.flush), so reads
stay fast; `compact` merges every part. The catalog is an index: `rebuild`
makes it again from the sidecars alone.

A new prompt or style_version makes new assets for the same slot (partition,
row_id, variant) and keeps the old ones: on read, each generated asset that a
newer one of its slot replaced names it in `superseded_by` (derived, never
stored).

Longer than the ~400 lines a module should have, and left whole on purpose:
it is the home-made table format that a Delta Lake table replaces (issue 18),
which deletes most of it; its writer, reader and selection share one schema
and one set of helpers, and split apart they would only point at each other.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from assetgen.tasks.generation.dispatch import JobOutcome
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar, asset_folder, now_utc

CATALOG = "_catalog"
FLUSH_ROWS = 500
FLUSH_SECONDS = 10.0
READ_RETRIES = 20
READ_THREADS = 8  # parts read at once: S3 latency
WHOLE_READ_BYTES = 8 << 20  # a part up to this size is read whole, a bigger one by column
TAKE_ROWS = 65_536  # compact reorders and writes this many rows at a time

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
        ("moderation", pa.string()),
        ("attempts", pa.int32()),
        ("latency_s", pa.float64()),
        ("text_input_tokens", pa.int64()),
        ("image_input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("text_output_tokens", pa.int64()),
        ("cost_usd", pa.float64()),
        ("run_id", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
        ("original_uri", pa.string()),
        ("original_bytes", pa.int64()),
        ("original_sha256", pa.string()),
        ("renditions", pa.list_(RENDITION)),
        # The original's C2PA manifest as it arrived: its validation state
        # ("absent" without one), claim generator, signer, digital source type.
        ("c2pa_state", pa.string()),
        ("c2pa_generator", pa.string()),
        ("c2pa_signer", pa.string()),
        ("c2pa_source_type", pa.string()),
        # Whether the renditions carry our signed manifests: signed, unsigned, mixed.
        ("rendition_credentials", pa.string()),
        ("metadata", pa.string()),  # JSON: columns differ from manifest to manifest
    ]
)
PARTITION_COLUMNS = {"partition"}
# What latest_rows and superseded read.
SLOT_COLUMNS = ("asset_id", "recorded_at", "created_at", "partition", "row_id", "variant", "status")
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
        "moderation": sidecar.params.get("moderation"),
        "attempts": sidecar.attempts,
        "latency_s": sidecar.latency_s,
        "text_input_tokens": sidecar.usage.text_input_tokens,
        "image_input_tokens": sidecar.usage.image_input_tokens,
        "output_tokens": sidecar.usage.output_tokens,
        "text_output_tokens": sidecar.usage.text_output_tokens,
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
        **_credential_columns(sidecar),
        "metadata": json.dumps(sidecar.metadata, default=str),
    }


def _credential_columns(sidecar: Sidecar) -> dict[str, Any]:
    found = sidecar.credentials
    states = {r.credentials or "unsigned" for r in sidecar.renditions}
    renditions = None if not states else states.pop() if len(states) == 1 else "mixed"
    return {
        "c2pa_state": None if found is None else found.get("validation_state") or "absent",
        "c2pa_generator": (found or {}).get("claim_generator"),
        "c2pa_signer": (found or {}).get("signer"),
        "c2pa_source_type": (found or {}).get("digital_source_type"),
        "rendition_credentials": renditions,
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
        "moderation": job.moderation,
        "attempts": outcome.attempts,
        "cost_usd": outcome.cost_usd,
        "run_id": run_id,
        "created_at": now,
        "recorded_at": now,
        "renditions": [],
        "metadata": json.dumps(job.metadata, default=str),
    }


class CatalogWriter:
    """Buffers rows and publishes them as part files, every FLUSH_ROWS rows or FLUSH_SECONDS.

    `flush()` (the end of a run, or of a collected batch) also merges the parts
    published since the last flush() into one (merge_parts): a run leaves one
    part, not one per FLUSH_ROWS rows, and reads of the catalog stay fast. A run
    cut short before it keeps its parts: every row they hold counts.
    """

    def __init__(self, store: AssetStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id
        self.rows_written = 0
        self.merge_errors: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._seq = 0
        self._parts: list[str] = []  # published since the last flush(): merged by the next
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
            with self._lock:
                self._publish()

    def flush(self) -> None:
        """Publish buffered rows as one part file (whole, never partial), then merge.

        The parts published since the last flush() become one (only if more
        than one): published before they are deleted, so a reader sees every
        row, at worst twice for a moment (latest_rows keeps one of identical
        rows). A merge that fails leaves the parts as they were, every row in
        them: the error goes to `merge_errors`, not to the run.
        """
        with self._lock:
            self._publish()
            parts, self._parts = self._parts, []
        if len(parts) < 2:
            return
        first, last = (p.removesuffix(".parquet").rsplit("-", 1)[1] for p in (parts[0], parts[-1]))
        # Sorts where its parts did (before the first of them), after this
        # writer's earlier ones: parts are read in name order.
        merged = f"{CATALOG}/part-{self.run_id}-{self._token}-{first}-{last}.parquet"
        try:
            merge_parts(self.store, parts, merged)
        except OSError as e:
            self.merge_errors.append(f"{type(e).__name__}: {e}")

    def _publish(self) -> None:
        """Write the buffered rows as the next part (hold the lock)."""
        rows, self._rows = self._rows, []
        self._last_flush = time.monotonic()
        if not rows:
            return
        self._seq += 1
        name = f"{CATALOG}/part-{self.run_id}-{self._token}-{self._seq:05d}.parquet"
        write_part(self.store, name, rows)
        self._parts.append(name)
        self.rows_written += len(rows)


def merge_parts(store: AssetStore, parts: list[str], merged: str) -> bool:
    """Publish the rows of `parts` (store-relative names), in order, as one part `merged`.

    Then delete `parts`: as compact, publish before delete, so a reader in
    between sees each row twice (identical rows: latest_rows keeps one), never
    a gap, and a crash in between leaves both. Streams: at most READ_THREADS
    parts and about TAKE_ROWS rows decoded at once (one row group each).
    False, changing nothing, if a part is gone: a compaction took it (its rows
    are in the compacted part).
    """
    paths = [store.path(p) for p in parts]
    read = functools.partial(_read_part, store, schema=SCHEMA)
    buf = io.BytesIO()
    try:
        with (
            ThreadPoolExecutor(READ_THREADS) as pool,
            pq.ParquetWriter(buf, SCHEMA, compression="zstd") as writer,
        ):
            pending: list[pa.Table] = []
            for start in range(0, len(paths), READ_THREADS):
                pending += pool.map(read, paths[start : start + READ_THREADS])
                if sum(t.num_rows for t in pending) >= TAKE_ROWS:
                    writer.write_table(pa.concat_tables(pending))
                    pending = []
            if pending:
                writer.write_table(pa.concat_tables(pending))
    except FileNotFoundError:
        return False
    store.write_bytes(merged, buf.getvalue())
    _remove(store, [p for p in paths if p != store.path(merged)])
    return True


def _remove(store: AssetStore, paths: list[str]) -> None:
    """Delete `paths`; one already gone (a concurrent compact or merge took it) is no error."""
    if paths and not store.is_local:
        try:
            store.fs.rm(paths)  # S3: a few bulk requests, not one per part
            return
        except FileNotFoundError:
            pass
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            store.fs.rm_file(path)


def write_part(store: AssetStore, relative: str, rows: list[dict[str, Any]]) -> str:
    return write_table(store, relative, pa.Table.from_pylist(rows, schema=SCHEMA))


def write_table(
    store: AssetStore, relative: str, table: pa.Table, rows: pa.Array | None = None
) -> str:
    """Publish `table` (only its `rows`, in that order, if given) as one Parquet object."""
    buf = io.BytesIO()
    with pq.ParquetWriter(buf, table.schema, compression="zstd") as writer:
        if rows is None:
            writer.write_table(table)
        else:
            for part in _take_slices(table, rows):
                writer.write_table(part)
    return store.write_bytes(relative, buf.getvalue())


def _take_slices(table: pa.Table, rows: pa.Array) -> Iterator[pa.Table]:
    """`table.take(rows)` TAKE_ROWS rows at a time: the reordered copy is never whole in memory.

    Each slice is filtered out of the table's chunks as they are, then put in
    order: a take over many chunks (a table read from many parts) first joins
    them for nested columns, a copy of all of `renditions` for every slice.
    """
    # Per stored row: where it goes in the output (null: left out).
    at = pa.array(range(len(rows)), pa.int64())
    positions = pc.scatter(at, rows.cast(pa.int64()), max_index=table.num_rows - 1)
    for start in range(0, len(rows), TAKE_ROWS):
        mask = pc.and_(pc.greater_equal(positions, start), pc.less(positions, start + TAKE_ROWS))
        mask = pc.fill_null(mask, False)
        order = pc.sort_indices(positions.filter(mask))
        yield table.filter(mask).combine_chunks().take(order)


def part_paths(store: AssetStore) -> list[str]:
    root = store.path(CATALOG)
    if not store.fs.exists(root):
        return []
    return sorted(p for p in store.fs.find(root) if p.endswith(".parquet"))


def read_catalog(store: AssetStore, *, latest: bool = True) -> pa.Table:
    """The newest row of each asset_id, with `superseded_by`; every stored row without `latest`."""
    table = _read_parts(store, SCHEMA)
    return superseded(latest_rows(table)) if latest else table


def query(
    store: AssetStore,
    where: Iterable[tuple[str, str]] = (),
    status: str | None = None,
    since: datetime | None = None,
    *,
    columns: Iterable[str] | None = None,
) -> pa.Table:
    """`select(read_catalog(store), where, status, since)`, only `columns` if given.

    The same rows, in less time and memory: it reads only the columns shown and
    those the query needs; filters the stored rows before latest_rows picks the
    newest of each asset (a filter looks at one row at a time), so a column that
    only a filter needs (metadata) is never copied; and copies whole only the
    rows that pass.
    """
    where = list(where)
    stored = [(k, v) for k, v in where if k != SUPERSEDED_BY]
    derived = [(k, v) for k, v in where if k == SUPERSEDED_BY]
    shown = [n for n in SCHEMA.names if columns is None or n in {*columns, *SLOT_COLUMNS}]
    needed = {*shown, *where_columns(stored)}
    raw = _read_parts(store, pa.schema([field for field in SCHEMA if field.name in needed]))
    keep = _mask(raw, stored, status, since)
    if keep is not None and not derived:
        # Only the assets that share a row_id with a row that passes can be
        # shown or supersede one that is: if that leaves out most rows, only
        # theirs are sorted (latest_rows) and compared (superseded).
        row_ids = pc.unique(raw["row_id"].filter(keep))
        assets = pc.unique(raw["asset_id"].filter(pc.is_in(raw["row_id"], row_ids)))
        near = pc.is_in(raw["asset_id"], assets)
        if pc.sum(near, min_count=0).as_py() < raw.num_rows // 2:
            raw, keep = raw.filter(near), keep.filter(near)
    rows = _latest(raw)
    slots = superseded(_take(raw.select(list(SLOT_COLUMNS)), rows))
    if keep is not None and rows is not None:
        keep = keep.take(rows)
    derived_keep = _mask(slots, derived)
    if derived_keep is not None:
        keep = derived_keep if keep is None else pc.and_(keep, derived_keep)
    table = raw.select(shown)
    if keep is not None:  # a null drops the row, as filter does
        slots = slots.filter(keep)
        if rows is None:  # in stored order: a filter copies only the rows it keeps
            table = table.filter(keep)
        else:
            rows = rows.filter(keep)
    return _take(table, rows).append_column(SUPERSEDED_BY, slots[SUPERSEDED_BY])


def read_matching(store: AssetStore, where: Mapping[str, Iterable[str]]) -> pa.Table:
    """Every stored row (not only the newest) whose value in a column of `where` is one of its.

    Decodes only those columns of a part that has no such row: what one run
    (a report) needs from a big catalog costs a fraction of a full read.
    """
    keys = {column: pa.array(sorted(set(values)), pa.string()) for column, values in where.items()}
    return _read_parts(store, SCHEMA, keys)


def _read_parts(
    store: AssetStore, schema: pa.Schema, where: dict[str, pa.Array] | None = None
) -> pa.Table:
    read = functools.partial(_read_part, store, schema=schema, where=where)
    with ThreadPoolExecutor(READ_THREADS) as pool:

        def read_all() -> pa.Table:
            return pa.concat_tables([schema.empty_table(), *pool.map(read, part_paths(store))])

        for attempt in range(1, READ_RETRIES):
            try:
                return read_all()
            except FileNotFoundError:
                # A compaction removed a part between listing and reading; its
                # rows are in the compacted file by then: list again.
                time.sleep(0.01 * attempt)
        return read_all()


def _read_part(
    store: AssetStore, path: str, schema: pa.Schema, where: dict[str, pa.Array] | None = None
) -> pa.Table:
    """The part's `schema` columns; with `where`, only rows matching one of its columns."""
    with store.fs.open(path, "rb") as f:
        # A small part in one read (one request on S3, faster than many small
        # reads); a big (compacted) one only the columns asked for. Decoded
        # on Arrow's CPU pool, not on this thread: READ_THREADS are for S3's
        # latency, and decoding on all of them at once made a cold read of
        # 1M rows (a command's) about 1.5x slower, mostly in page faults.
        small = f.size <= WHOLE_READ_BYTES
        source = pa.BufferReader(f.read()) if small else f
        part = pq.ParquetFile(source)

        def columns(names: list[str]) -> pa.Table:
            if part.schema_arrow.equals(SCHEMA):  # as write_table wrote it: the fast reader
                return part.read(names)
            return pq.read_table(source, schema=SCHEMA, columns=names)

        if where is None:
            return columns(schema.names)
        found = columns(list(where))
        mask = functools.reduce(
            pc.or_, (pc.fill_null(pc.is_in(found[c], values), False) for c, values in where.items())
        )
        if not pc.any(mask).as_py():
            return schema.empty_table()
        return columns(schema.names).filter(mask)


def latest_rows(table: pa.Table) -> pa.Table:
    """The newest row per asset_id (by recorded_at); a row doubled by compaction counts once.

    In asset_id order; rows tied on recorded_at keep the table's order (the sort is stable).
    """
    return _take(table, _latest(table))


def _take(table: pa.Table, rows: pa.Array | None) -> pa.Table:
    if rows is None:
        return table
    # Column by column, each in one chunk first: a take over many chunks is
    # slower, and one column at a time keeps the copy small.
    return pa.table([_one_chunk(c).take(rows) for c in table.columns], schema=table.schema)


def _latest(table: pa.Table) -> pa.Array | None:
    """The indices of latest_rows, or None if that is the whole table as it is."""
    n = table.num_rows
    if n < 2:
        return None
    ids = _one_chunk(table["asset_id"])
    if ids.null_count == 0 and pc.all(pc.greater(ids.slice(1), ids.slice(0, n - 1))).as_py():
        return None  # one row per asset_id, in order: as compact writes it
    # Sort the two key columns only: the other columns are taken once, after.
    keys = pa.table({"asset_id": ids, "recorded_at": table["recorded_at"]})
    order = pc.sort_indices(keys, [("asset_id", "ascending"), ("recorded_at", "descending")])
    ids = ids.take(order)
    first = pc.not_equal(ids.slice(1), ids.slice(0, n - 1))
    return order.filter(pa.concat_arrays([pa.array([True]), first]))  # drops a null asset_id


def superseded(table: pa.Table) -> pa.Table:
    """`table` (one row per asset) with `superseded_by`: the current asset of each older one.

    A slot is (partition, row_id, variant); of its generated assets the newest
    by created_at is current (ties: recorded_at, then the table's order), the
    others name it. Other rows, and current ones, get null. Column-wise
    throughout: the slot becomes one integer, so the one sort is numeric.
    """
    n = table.num_rows
    none = pa.nulls(n, pa.string())
    if n == 0:
        return table.append_column(SUPERSEDED_BY, none)
    other = pc.invert(pc.fill_null(pc.equal(table["status"], GENERATED), False))
    # A row alone in its (row_id, variant, generated or not) is alone in its
    # slot: compare the partitions (the costly part) of the other rows only.
    near = _combine(
        [
            _codes(table["row_id"]),
            _codes(table["variant"]),
            pc.cast(other, pa.int64()),  # a slot's generated rows, apart from the rest
        ]
    )
    counts = pc.value_counts(near)
    shared = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    rows = pc.indices_nonzero(pc.is_in(near, shared)).cast(pa.int64())
    if len(rows) == 0:
        return table.append_column(SUPERSEDED_BY, none)
    keys = table.select(["asset_id", "partition", "created_at", "recorded_at"]).take(rows)
    names = _superseded_by(keys, pc.take(near, rows), pc.take(other, rows))
    return table.append_column(SUPERSEDED_BY, pc.scatter(names, rows, max_index=n - 1))


def _superseded_by(table: pa.Table, near: pa.Array, other: pa.Array) -> pa.Array:
    """superseded's column for `table`, where `near` codes (row_id, variant, other)."""
    slot = _combine([*_partition_codes(table["partition"]), _codes(near)])
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
    newest = pc.if_else(older, newest, pa.scalar(None, pa.int64()))
    # Back to the table's order, then the asset_id of each older row's newest.
    return pc.take(table["asset_id"], pc.scatter(newest, order))


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
    mask = _mask(table, where, status, since, current_only)
    # One filter (a null drops the row, as it would in a chain of filters):
    # each filter copies every column.
    return table if mask is None else table.filter(mask)


def _mask(
    table: pa.Table,
    where: Iterable[tuple[str, str]] = (),
    status: str | None = None,
    since: datetime | None = None,
    current_only: bool = False,
) -> pa.Array | pa.ChunkedArray | None:
    """select's rows as a mask (null: left out), or None for every row."""
    masks = []
    if current_only and SUPERSEDED_BY in table.column_names:
        masks.append(pc.is_null(table[SUPERSEDED_BY]))
    if status:
        masks.append(pc.equal(table["status"], status))
    if since:
        at = pa.scalar(since, SCHEMA.field("created_at").type)
        masks.append(pc.greater_equal(table["created_at"], at))
    for key, value in where:
        if key in table.column_names and key not in PARTITION_COLUMNS:
            masks.append(pc.equal(pc.cast(table[key], pa.string()), value))
        else:
            masks.append(_field_equals(table, key, value))
    return functools.reduce(pc.and_, masks) if masks else None


def where_columns(where: Iterable[tuple[str, str]]) -> set[str]:
    """The stored columns `select` reads for `where`."""
    keys = {key for key, _ in where}
    fields = keys & (set(SCHEMA.names) - PARTITION_COLUMNS)
    return fields | ({"partition", "metadata"} if keys - fields else set())


def _field_equals(table: pa.Table, key: str, value: str) -> pa.Array:
    """Per row: does `{**json.loads(metadata), **dict(partition)}` have key, with str(it) == value.

    The partition column-wise; json.loads only where the metadata text could hold the
    pair (_metadata_pattern), to check exactly.
    """
    n = table.num_rows
    part = table["partition"]
    in_part = pc.is_valid(pc.map_lookup(part, key, "all"))
    # dict() keeps a key's last value; a null value is str(None).
    part_equal = pc.fill_null(pc.equal(pc.map_lookup(part, key, "last"), value), value == "None")
    part_match = pc.and_(in_part, part_equal)
    outside = pc.invert(in_part)
    if not pc.any(outside).as_py():  # a partition key of every row
        return part_match
    meta = table["metadata"]  # chunked as read: combining would copy it all
    maybe = pc.match_substring_regex(meta, _metadata_pattern(key, value))
    candidate = pc.and_(outside, pc.fill_null(maybe, False))
    # filter, not take: a take from many chunks first joins them (all the metadata).
    texts = meta.filter(candidate).to_pylist()
    hits = [
        i
        for i, text in zip(pc.indices_nonzero(candidate).to_pylist(), texts, strict=True)
        if key in (fields := json.loads(text)) and str(fields[key]) == value
    ]
    found = pa.array([True] * len(hits), pa.bool_())
    meta_equal = pc.scatter(found, pa.array(hits, pa.int64()), max_index=n - 1)
    return pc.or_(part_match, pc.fill_null(meta_equal, False))


# str() of the JSON literals that are no number nor string (json.dumps writes these).
JSON_WORDS = {"True": "true", "False": "false", "None": "null"}
JSON_WORDS |= {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _metadata_pattern(key: str, value: str) -> str:
    """A regex that metadata JSON matches if `key` may have `value` in it (then checked).

    The catalog's metadata is json.dumps output (row_from_sidecar, row_from_outcome):
    a key is written "key", non-ASCII \\u-escaped or not; a value v with str(v) == value
    as "value" if a string, as value itself if a number, or one of JSON_WORDS. A list or
    dict ("[...", "{...") has many spellings: then any value of the key.
    """
    keys = "|".join(map(_literal, {json.dumps(key), json.dumps(key, ensure_ascii=False)}))
    if value.startswith(("[", "{")):
        return f"(?:{keys})\\s*:"
    values = {json.dumps(value), json.dumps(value, ensure_ascii=False), value}
    values |= {JSON_WORDS[value]} if value in JSON_WORDS else set()
    return f"(?:{keys})\\s*:\\s*(?:{'|'.join(map(_literal, values))})"


def _literal(text: str) -> str:
    """`text` as an RE2 regex that matches it literally."""
    return "".join(c if c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


def rebuild(store: AssetStore) -> int:
    """Make the catalog again from the sidecars alone; returns the number of assets."""
    before = part_paths(store)
    rows = [row_from_sidecar(store, s) for s in iter_sidecars(store)]
    _replace_parts(store, pa.Table.from_pylist(rows, schema=SCHEMA), "rebuild", before)
    return len(rows)


def compact(store: AssetStore) -> tuple[int, int]:
    """Merge every part into one; returns (parts before, assets)."""
    before = part_paths(store)
    table = _read_parts(store, SCHEMA)  # superseded_by is derived on read: not stored
    rows = _latest(table)
    _replace_parts(store, table, "compact", before, rows)
    return len(before), table.num_rows if rows is None else len(rows)


def _replace_parts(
    store: AssetStore, table: pa.Table, kind: str, old: list[str], rows: pa.Array | None = None
) -> None:
    # The new file is published before the old ones go: a reader in between
    # sees rows twice, which latest_rows() folds into one, never a gap.
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    name = f"{CATALOG}/{kind}-{stamp}-{secrets.token_hex(3)}.parquet"
    if table.num_rows:
        write_table(store, name, table, rows)
    new = store.path(name)
    _remove(store, [path for path in old if path != new])


def iter_sidecars(store: AssetStore) -> Iterator[Sidecar]:
    """Every asset's sidecar in the store."""
    for folder in store.existing().values():
        yield Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))
