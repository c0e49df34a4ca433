"""The catalog as a Delta Lake table at `<store>/_catalog`: one current row per asset_id.

Writers upsert by asset_id (a MERGE) and, in the same commit, set
`superseded_by` on the older versions of every slot (partition, row_id,
variant) a new generated asset takes over. Delta's commits are put-if-absent
on the log, so writers on several machines need no lock service; a writer
that loses a commit race reloads and tries again, and each commit carries an
application transaction so a retried one is never applied twice. Readers see
whole versions only; `history` and `as_of` are the table's own. The catalog
is an index: `rebuild` makes it again from the sidecars alone.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
from deltalake import (
    CommitProperties,
    DeltaTable,
    Field,
    Transaction,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError

from assetgen.tasks.catalog.location import CATALOG, RUN_KEY, location
from assetgen.tasks.catalog.migrate import migrate
from assetgen.tasks.catalog.rows import (
    GENERATED,
    KEPT_COLUMNS,
    REVIEW_COLUMNS,
    SCHEMA,
    SLOT_COLUMNS,
    SUPERSEDED_BY,
    row_from_sidecar,
    superseded,
    with_superseded,
)
from assetgen.tasks.catalog.select import select, where_columns
from assetgen.tasks.review.decisions import ReviewState, decisions_by_folder
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar

COMMIT_ATTEMPTS = 40
COMMIT_BACKOFF_S = 0.05
RETENTION_HOURS = 7 * 24  # what compact's vacuum keeps: time travel a week back
COMPACT_FILE_BYTES = 16 * 2**20
COMPACT_ROW_GROUP = 16_384
# What a commit reads of the stored rows to set superseded_by.
SLOT_COLUMNS_READ = (*SLOT_COLUMNS, SUPERSEDED_BY)
OP = "_op"  # source rows of a MERGE: a whole row to upsert, or only superseded_by to set


def open_table(store: AssetStore, as_of: int | str | datetime | None = None) -> DeltaTable | None:
    """The table (at version or time `as_of`), or None when the store has none yet.

    A store with a catalog of an earlier assetgen (Parquet parts) is migrated first.
    """
    uri, options = location(store)
    try:
        table = DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        if not migrate(store):
            return None
        table = DeltaTable(uri, storage_options=options)
    if as_of is not None:
        when = _version(as_of)
        if isinstance(when, datetime):
            # delta-rs gives version 0 for any time before it; that table did not exist.
            first = min(e["timestamp"] for e in table.history())
            if when.timestamp() * 1000 < first:
                made = datetime.fromtimestamp(first / 1000, UTC).isoformat(timespec="seconds")
                raise ValueError(f"before the catalog's first version ({made})")
        table.load_as_version(when)
    return table


def _version(as_of: int | str | datetime) -> int | datetime:
    """A version number, or a time (one without a zone is UTC, as --since reads it)."""
    if isinstance(as_of, int | datetime):
        when = as_of
    else:
        text = as_of.strip()
        if text.isdigit():
            return int(text)
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if isinstance(when, datetime) and when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    return when


# --- reading ---------------------------------------------------------------------------------


def read_catalog(
    store: AssetStore,
    *,
    as_of: int | str | datetime | None = None,
    columns: Iterable[str] | None = None,
    filter: pc.Expression | None = None,
) -> pa.Table:
    """Every row (only `columns`, only those matching `filter`), as the table is now or was."""
    names = [n for n in SCHEMA.names if columns is None or n in set(columns)]
    table = open_table(store, as_of)
    if table is None:
        return SCHEMA.empty_table().select(names)
    found = _conform(_files(store, table).to_table(columns=names), names)
    # Filtered here, not in the scan: files delta-rs wrote may keep their strings
    # as string_view, which a pushed-down comparison with a string refuses.
    return found if filter is None else found.filter(filter)


def _files(store: AssetStore, table: DeltaTable) -> ds.Dataset:
    """The table's current files as a pyarrow dataset read through the store's filesystem.

    Not DeltaTable.to_pyarrow_dataset(): with deltalake 1.6 a process that used
    one aborts at exit about half the time ("terminate called without an active
    exception"), its filesystem threads outliving the interpreter. The tables
    assetgen writes have no deletion vectors, so the files are the rows.
    """
    files = table.file_uris()
    if store.is_local:
        return ds.dataset(files, schema=SCHEMA, format="parquet")
    # Files that delta-rs wrote since this process last listed the folder are
    # not in s3fs's listings cache.
    store.fs.invalidate_cache(store.path(CATALOG))
    fs = pa_fs.PyFileSystem(pa_fs.FSSpecHandler(store.fs))
    paths = [f.split("://", 1)[-1] for f in files]
    return ds.dataset(paths, schema=SCHEMA, format="parquet", filesystem=fs)


def _conform(table: pa.Table, names: list[str]) -> pa.Table:
    """`table` with exactly `names` of SCHEMA, in order: columns a table of an earlier
    assetgen lacks are null, types as SCHEMA has them."""
    columns = []
    for name in names:
        field = SCHEMA.field(name)
        if name in table.column_names:
            columns.append(table[name].cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.table(columns, schema=pa.schema([SCHEMA.field(n) for n in names]))


def query(
    store: AssetStore,
    where: Iterable[tuple[str, str]] = (),
    status: str | None = None,
    since: datetime | None = None,
    *,
    columns: Iterable[str] | None = None,
    as_of: int | str | datetime | None = None,
    current_only: bool = False,
) -> pa.Table:
    """`select(read_catalog(store), ...)`, reading only the columns shown and filtered on."""
    where = list(where)
    shown = [n for n in SCHEMA.names if columns is None or n in set(columns)]
    needed = {*shown, *where_columns(where), "status", "created_at", SUPERSEDED_BY}
    pushed = None
    if status:
        pushed = pc.field("status") == status
    table = read_catalog(store, as_of=as_of, columns=needed, filter=pushed)
    return select(table, where, status, since, current_only=current_only).select(shown)


def read_matching(
    store: AssetStore, where: Mapping[str, Iterable[str]], as_of: int | None = None
) -> pa.Table:
    """Rows whose column has one of its values, for any of `where`'s columns."""
    tests = [pc.field(column).isin(sorted(set(values))) for column, values in where.items()]
    tests = [t for t, values in zip(tests, where.values(), strict=True) if set(values)]
    if not tests:
        return SCHEMA.empty_table()
    return read_catalog(store, filter=_any(tests), as_of=as_of)


def run_version(store: AssetStore, run_ids: Iterable[str]) -> int | None:
    """The last version one of `run_ids` committed, if the table still has its files."""
    runs = set(run_ids)
    found = [e["version"] for e in history(store) if e["run_id"] in runs]
    if not found:
        return None
    try:
        read_catalog(store, as_of=max(found), columns=["asset_id"])
    except (OSError, DeltaError):  # vacuumed since: the current version it is
        return None
    return max(found)


def _any(tests: list[pc.Expression]) -> pc.Expression:
    found = tests[0]
    for test in tests[1:]:
        found = found | test
    return found


def history(store: AssetStore, limit: int | None = None) -> list[dict[str, Any]]:
    """The table's versions, newest first: version, time, operation, run, rows changed."""
    table = open_table(store)
    if table is None:
        return []
    found = []
    for entry in table.history(limit):
        metrics = entry.get("operationMetrics") or {}
        changed = sum(
            int(metrics.get(k) or 0)
            for k in (
                "num_target_rows_inserted",
                "num_target_rows_updated",
                "num_target_rows_deleted",
                "num_added_rows",
            )
        )
        found.append(
            {
                "version": entry.get("version"),
                "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000).astimezone(),
                "operation": entry.get("operation"),
                "run_id": entry.get(RUN_KEY),
                "rows_changed": changed,
            }
        )
    return found


# --- writing ---------------------------------------------------------------------------------


def commit(
    store: AssetStore,
    rows: list[dict[str, Any]],
    run_id: str,
    transaction: tuple[str, int] | None = None,
) -> None:
    """Upsert `rows` (the last row of an asset_id wins) in one commit.

    A row of an asset the table has keeps the stored review columns. `transaction`
    (app id, sequence number): a commit whose number the table has recorded for
    that app already is not made again (a retried checkpoint).
    """
    if not rows:
        return
    new = _last_per_asset(pa.Table.from_pylist(rows, schema=SCHEMA))
    uri, options = location(store)

    def attempt(table: DeltaTable | None) -> None:
        if transaction and table is not None:
            app, seq = transaction
            if (table.transaction_version(app) or -1) >= seq:
                return
        properties = CommitProperties(
            custom_metadata={RUN_KEY: run_id},
            app_transactions=[Transaction(*transaction)] if transaction else None,
            # delta-rs retries a creation that lost version 0 as an append at the next
            # version, unchecked: rows twice. It must fail, to come back as a MERGE.
            max_commit_retries=0 if table is None else None,
        )
        if table is None:
            write_deltalake(
                uri,
                with_superseded(new),
                mode="error",
                storage_options=options,
                commit_properties=properties,
            )
        else:
            _merge(_evolved(table), _source(store, table, new), properties)

    _retrying(store, attempt)


def commit_reviews(store: AssetStore, states: Mapping[str, ReviewState]) -> None:
    """Set the review columns of these assets, unless a later decision is there already
    (two reviewers at once: their commits may land in either order)."""
    values = {a: s.model_dump() for a, s in states.items()}
    update_columns(store, values, REVIEW_COLUMNS, "review", newer="reviewed_at")


def update_columns(
    store: AssetStore,
    values: Mapping[str, Mapping[str, Any]],
    columns: Iterable[str],
    run_id: str,
    newer: str | None = None,
) -> None:
    """Set `columns` of the assets in `values` (asset_id -> column -> value) in one commit.

    `newer`: a time column; a row whose stored time is later is left as it is.
    Assets the table lacks are skipped (this changes rows, it adds none).
    """
    if not values:
        return
    columns = list(columns)
    fields = [SCHEMA.field("asset_id"), *(SCHEMA.field(c) for c in columns)]
    source = pa.Table.from_pylist(
        [{"asset_id": a, **{c: v.get(c) for c in columns}} for a, v in values.items()],
        schema=pa.schema(fields),
    )
    guard = f"t.{newer} IS NULL OR s.{newer} >= t.{newer}" if newer else None
    properties = CommitProperties(custom_metadata={RUN_KEY: run_id})

    def attempt(table: DeltaTable | None) -> None:
        if table is None:
            raise ValueError("no catalog in this store yet")
        (
            _evolved(table)
            .merge(
                source,
                predicate="t.asset_id = s.asset_id",
                source_alias="s",
                target_alias="t",
                merge_schema=True,  # a table of an earlier assetgen gains the columns
                commit_properties=properties,
            )
            .when_matched_update(updates={c: f"s.{c}" for c in columns}, predicate=guard)
            .execute()
        )

    _retrying(store, attempt)


def _evolved(table: DeltaTable) -> DeltaTable:
    """`table`, with the columns of SCHEMA a table of an earlier assetgen lacks added first
    (a metadata-only commit): a MERGE cannot name a column its target does not have."""
    have = set(table.schema().to_arrow().names)
    missing = [Field.from_arrow(f) for f in SCHEMA if f.name not in have]
    if missing:
        table.alter.add_columns(
            missing, commit_properties=CommitProperties(custom_metadata={RUN_KEY: "schema"})
        )
    return table


def _retrying(store: AssetStore, attempt: Callable[[DeltaTable | None], None]) -> None:
    """Run `attempt` on the table as it is now until it commits: a writer that lost a
    commit race (or the race to create the table) reads it again and tries again."""
    for n in range(1, COMMIT_ATTEMPTS + 1):
        try:
            attempt(open_table(store))
            return
        except (CommitFailedError, DeltaError) as e:
            if n == COMMIT_ATTEMPTS or not _conflict(e):
                raise
            time.sleep(random.uniform(0, COMMIT_BACKOFF_S * min(n, 10)))


def _conflict(e: Exception) -> bool:
    if isinstance(e, CommitFailedError):
        return True
    text = str(e).lower()
    return any(w in text for w in ("conflict", "already exists", "version", "transaction"))


def _merge(table: DeltaTable, source: pa.Table, properties: CommitProperties) -> None:
    (
        table.merge(
            source,
            predicate="t.asset_id = s.asset_id",
            source_alias="s",
            target_alias="t",
            merge_schema=True,  # a table of an earlier assetgen gains the new columns
            commit_properties=properties,
        )
        # A new record of an asset keeps its review and publish columns (update_columns
        # sets them), unless it has no review yet (it failed before).
        .when_matched_update_all(
            predicate=f"s.{OP} = 'upsert' AND t.review_state IS NULL", except_cols=[OP]
        )
        .when_matched_update_all(predicate=f"s.{OP} = 'upsert'", except_cols=[OP, *KEPT_COLUMNS])
        .when_matched_update(
            updates={SUPERSEDED_BY: f"s.{SUPERSEDED_BY}"}, predicate=f"s.{OP} = 'supersede'"
        )
        .when_not_matched_insert_all(predicate=f"s.{OP} = 'upsert'", except_cols=[OP])
        .execute()
    )


def _last_per_asset(table: pa.Table) -> pa.Table:
    ids = table["asset_id"].to_pylist()
    last = {asset: i for i, asset in enumerate(ids)}
    if len(last) == len(ids):
        return table
    return table.take(sorted(last.values()))


def _source(store: AssetStore, table: DeltaTable, new: pa.Table) -> pa.Table:
    """The MERGE source: `new` with its superseded_by, and the stored rows of the same slots
    whose superseded_by changes (only that column is set on them)."""
    row_ids = sorted(set(new.filter(pc.equal(new["status"], GENERATED))["row_id"].to_pylist()))
    stored = SCHEMA.empty_table().select(list(SLOT_COLUMNS_READ))
    if row_ids:
        found = _conform(
            _files(store, table).to_table(columns=list(SLOT_COLUMNS_READ)), list(SLOT_COLUMNS_READ)
        )
        stored = found.filter(pc.is_in(found["row_id"], pa.array(row_ids, pa.string())))
    mine = set(new["asset_id"].to_pylist())
    others = stored.filter(pc.invert(pc.is_in(stored["asset_id"], pa.array(sorted(mine)))))
    both = pa.concat_tables([new.select(list(SLOT_COLUMNS_READ)), others])
    wanted = dict(zip(both["asset_id"].to_pylist(), superseded(both).to_pylist(), strict=True))
    upserts = new.set_column(
        new.schema.get_field_index(SUPERSEDED_BY),
        SUPERSEDED_BY,
        pa.array([wanted[a] for a in new["asset_id"].to_pylist()], pa.string()),
    )
    changed = [
        (asset, wanted[asset])
        for asset, now in zip(
            others["asset_id"].to_pylist(), others[SUPERSEDED_BY].to_pylist(), strict=True
        )
        if wanted[asset] != now
    ]
    rows = upserts.append_column(OP, pa.array(["upsert"] * upserts.num_rows))
    if not changed:
        return rows
    update = {"asset_id": [a for a, _ in changed], SUPERSEDED_BY: [s for _, s in changed]}
    updates = pa.Table.from_pydict(update, schema=pa.schema([SCHEMA.field(k) for k in update]))
    updates = _conform(updates, SCHEMA.names).append_column(
        OP, pa.array(["supersede"] * len(changed))
    )
    return pa.concat_tables([rows, updates])


def iter_sidecars(store: AssetStore) -> Iterator[tuple[str, Sidecar]]:
    for folder in store.existing().values():
        yield folder, Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))


def rebuild(store: AssetStore) -> int:
    """Make the catalog again from the store alone, sidecars and review decisions (a new
    version); the number of assets."""
    decisions = decisions_by_folder(store)
    rows = [
        row_from_sidecar(store, sidecar, decisions.get(folder))
        for folder, sidecar in iter_sidecars(store)
    ]
    table = with_superseded(_last_per_asset(pa.Table.from_pylist(rows, schema=SCHEMA)))
    uri, options = location(store)
    write_deltalake(
        uri,
        table,
        mode="overwrite",
        schema_mode="overwrite",
        storage_options=options,
        commit_properties=CommitProperties(custom_metadata={RUN_KEY: "rebuild"}),
    )
    return table.num_rows


def compact(store: AssetStore, retention_hours: int = RETENTION_HOURS) -> dict[str, Any]:
    """Optimize (small files into files of about COMPACT_FILE_BYTES, row groups of
    COMPACT_ROW_GROUP rows), then vacuum the files no version within `retention_hours` needs.

    Bin-packing, not z-order: at 1M assets z-order sorted the whole table in memory
    (2.3 GB) and wrote one row group per file, which no reader can skip within.
    """
    table = open_table(store)
    if table is None:
        return {"files_before": 0, "files_after": 0, "removed": 0, "assets": 0}
    before = len(table.file_uris())
    table.optimize.compact(
        target_size=COMPACT_FILE_BYTES,
        writer_properties=WriterProperties(max_row_group_size=COMPACT_ROW_GROUP),
        commit_properties=CommitProperties(custom_metadata={RUN_KEY: "compact"}),
    )
    removed = table.vacuum(
        retention_hours=retention_hours, dry_run=False, enforce_retention_duration=False
    )
    table = open_table(store)
    assert table is not None
    return {
        "files_before": before,
        "files_after": len(table.file_uris()),
        "removed": len(removed),
        "assets": table.count(),
    }
