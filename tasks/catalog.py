"""The catalog: Parquet parts under `<store>/_catalog/`, one row per asset, latest row wins.

Runs append part files as they go, so a crash keeps what was recorded. The
catalog is an index: `rebuild` makes it again from the sidecars alone.
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
    """Every part, and with `latest` only the newest row of each asset_id."""
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
        return SCHEMA.empty_table()
    table = pa.concat_tables(tables)
    return latest_rows(table) if latest else table


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


def select(
    table: pa.Table,
    where: Iterable[tuple[str, str]] = (),
    status: str | None = None,
    since: datetime | None = None,
) -> pa.Table:
    """Rows matching every `column=value` (a partition key, a column or a metadata key)."""
    rows = table
    if status:
        rows = rows.filter(pc.equal(rows["status"], status))
    if since:
        rows = rows.filter(
            pc.greater_equal(rows["created_at"], pa.scalar(since, SCHEMA.field("created_at").type))
        )
    for key, value in where:
        if key in SCHEMA.names and key not in PARTITION_COLUMNS:
            column = pc.cast(rows[key], pa.string())
            rows = rows.filter(pc.equal(column, value))
        else:
            rows = rows.filter(
                pa.array([_match(r, key, value) for r in _partitions_and_meta(rows)])
            )
    return rows


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
    table = read_catalog(store)
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
