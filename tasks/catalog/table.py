"""The catalog as a Delta Lake table at `<store>/_catalog`: one current row per asset_id.

Writers upsert by asset_id (a MERGE). delta-rs rewrites every file a MERGE
changes a row of (copy-on-write), so a commit is scoped: its MERGE names the
row_ids it touches (`t.row_id IN (...)`), which prunes the table's files by
their row_id ranges, and it changes no older row. An asset that takes over a
slot (partition, row_id, variant) lists the versions it supersedes on its own
row (`supersedes`); the writer's last commit of a run sets their
`superseded_by` and clears that list (`settle`), once, and `compact` does it
for a run that died first. Readers apply what is still listed, so every read
is exact at every version. Delta's commits are put-if-absent on the log, so
writers on several machines need no lock service; a writer that loses a
commit race reloads and tries again, and each commit carries an application
transaction so a retried one is never applied twice. `history` and `as_of`
are the table's own. The catalog is an index: `rebuild` makes it again from
the sidecars alone.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
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

from assetgen.tasks.catalog.location import (
    CATALOG,
    FILE_BYTES,
    RUN_KEY,
    TABLE_PROPERTIES,
    location,
)
from assetgen.tasks.catalog.migrate import migrate
from assetgen.tasks.catalog.rows import (
    KEPT_COLUMNS,
    REVIEW_COLUMNS,
    SCHEMA,
    SLOT_COLUMNS,
    SUPERSEDED_BY,
    SUPERSEDES,
    row_from_sidecar,
    superseded,
    with_superseded,
)
from assetgen.tasks.catalog.select import (
    other_keys,
    partition_value,
    prefilter,
    scanned,
    select,
    where_columns,
)
from assetgen.tasks.review.decisions import ReviewState, decisions_by_folder
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar, now_utc

COMMIT_ATTEMPTS = 40
COMMIT_BACKOFF_S = 0.05
RETENTION_HOURS = 7 * 24  # what compact's vacuum keeps: time travel a week back
COMPACT_ROW_GROUP = 16_384
TIME_RANGES = 16  # recorded_at ranges a MERGE predicate names (_located)
FILE_COLUMN = "__filename"  # a scan's own column: the file a row is in
PACK_AT_FILES = 8  # small files that make a writer pack them at its end
# What a commit reads of the stored rows to work out superseded_by.
SLOT_COLUMNS_READ = (*SLOT_COLUMNS, SUPERSEDED_BY, SUPERSEDES)
# What a read needs to apply the supersedes lists; the rank of a listing row.
PENDING_COLUMNS = ("asset_id", SUPERSEDED_BY, SUPERSEDES)
RANK_COLUMNS = ("asset_id", "created_at", "recorded_at")
# Where a stored row is (_located).
KEY_COLUMNS = ("asset_id", "row_id", "recorded_at")
# How long before a commit began another writer's commit may have begun and still land
# after it: a MERGE takes seconds; this covers that and clocks an hour apart.
CONCURRENT_COMMIT_WINDOW = timedelta(hours=2)
RECORDED_AT = "recorded_at"
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
    scan: pc.Expression | None = None,
    row_ids: Iterable[str] | None = None,
) -> pa.Table:
    """Every row (only `columns`, only those matching `filter`), as the table is now or was.

    `row_ids`: only rows of those row_ids, read from the files whose row_id range may
    hold one. `scan`: a filter applied while the files are read, which may keep more
    rows than `filter` (it is a cheaper superset, as `select.prefilter` makes).
    """
    names = [n for n in SCHEMA.names if columns is None or n in set(columns)]
    table = open_table(store, as_of)
    if table is None:
        return SCHEMA.empty_table().select(names)
    found = _read(store, table, names, scan, None if row_ids is None else set(row_ids))
    return found if filter is None else found.filter(filter)


def _read(
    store: AssetStore,
    table: DeltaTable,
    names: list[str],
    scan: pc.Expression | None = None,
    row_ids: set[str] | None = None,
    *,
    stored: bool = False,
    files: list[str] | None = None,
) -> pa.Table:
    """`names` of the rows of `table` (or of its `files`) that `scan` and `row_ids` keep,
    superseded_by as the versions still listed in `supersedes` make it (see
    _pending_superseded), or as `stored`."""
    exact = SUPERSEDED_BY in names and not stored
    read = [n for n in SCHEMA.names if n in {*names, *(PENDING_COLUMNS if exact else ())}]
    if exact and scan is not None:
        # The rows that list a superseded version: a version's superseded_by may be there.
        scan = scan | pc.field(SUPERSEDES).is_valid()
    if row_ids is not None:
        ids = sorted(row_ids)
        pruned = table.file_uris(file_pruning_predicate=[("row_id", "in", ids)]) if ids else []
        kept = set(map(_path, pruned))
        files = pruned if files is None else [f for f in files if _path(f) in kept]
        # A slot is within one row_id: every version of the rows kept is read.
        by_row = scanned("row_id").isin(ids)
        scan = by_row if scan is None else by_row & scan
    if files == []:  # nothing to read
        return SCHEMA.empty_table().select(names)
    dataset = _files(store, table, files)
    found = _conform(dataset.to_table(columns=read, filter=scan), read)
    if exact:
        listing = found.filter(pc.is_valid(found[SUPERSEDES]))
        if listing.num_rows:
            # Rare (a run not ended yet): the listing rows' times, to rank them.
            ranked = list(RANK_COLUMNS)
            listers = scanned("asset_id").isin(listing["asset_id"])
            ranks = _conform(dataset.to_table(columns=ranked, filter=listers), ranked)
            found = _pending_superseded(found, ranks)
    return found.select(names)


def _pending_superseded(table: pa.Table, ranks: pa.Table | None = None) -> pa.Table:
    """`table` with the superseded_by that its rows' `supersedes` lists say, where no
    commit has set it yet: a listed version is superseded by the newest row listing it,
    and so is an older row that lists the same version (two writers at once). `ranks`:
    RANK_COLUMNS of the listing rows, when `table` lacks them."""
    listing = table.filter(pc.is_valid(table[SUPERSEDES]))
    if listing.num_rows == 0:
        return table
    times = ranks if ranks is not None else listing
    when = {
        asset: (created, recorded or created, asset)
        for asset, created, recorded in zip(
            *(times[c].to_pylist() for c in RANK_COLUMNS), strict=True
        )
    }
    newest: dict[str, tuple[Any, Any, str]] = {}
    listers: dict[str, list[tuple[Any, Any, str]]] = {}
    for asset, olds in zip(
        listing["asset_id"].to_pylist(), listing[SUPERSEDES].to_pylist(), strict=True
    ):
        rank = when[asset]
        for old in olds:
            listers.setdefault(old, []).append(rank)
            if old not in newest or rank > newest[old]:
                newest[old] = rank
    by = dict(newest)
    for old, theirs in listers.items():
        for rank in theirs:
            if rank < newest[old]:
                by[rank[2]] = newest[old]
    olds = pa.array(list(by), pa.string())
    listed = pc.take(
        pa.array([r[2] for r in by.values()], pa.string()),
        pc.index_in(table["asset_id"], value_set=olds),
    )
    index = table.schema.get_field_index(SUPERSEDED_BY)
    return table.set_column(index, SUPERSEDED_BY, pc.coalesce(listed, table[SUPERSEDED_BY]))


def _files(store: AssetStore, table: DeltaTable, files: list[str] | None = None) -> ds.Dataset:
    """The table's current files (or `files` of them) as a pyarrow dataset read through
    the store's filesystem.

    Not DeltaTable.to_pyarrow_dataset(): with deltalake 1.6 a process that used
    one aborts at exit about half the time ("terminate called without an active
    exception"), its filesystem threads outliving the interpreter. The tables
    assetgen writes have no deletion vectors, so the files are the rows.
    """
    files = table.file_uris() if files is None else files
    if store.is_local:
        return ds.dataset(files, schema=SCHEMA, format="parquet")
    # Files that delta-rs wrote since this process last listed the folder are
    # not in s3fs's listings cache.
    store.fs.invalidate_cache(store.path(CATALOG))
    fs = pa_fs.PyFileSystem(pa_fs.FSSpecHandler(store.fs))
    paths = [_path(f) for f in files]
    return ds.dataset(paths, schema=SCHEMA, format="parquet", filesystem=fs)


def _path(uri: str) -> str:
    """A file's path without its scheme: file_uris() names S3 files with one, a scan not."""
    return uri.split("://", 1)[-1]


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
    """`select(read_catalog(store), ...)`, reading only the columns shown and filtered on
    (and what a scan can filter on, filtered as the files are read)."""
    where = list(where)
    shown = [n for n in SCHEMA.names if columns is None or n in set(columns)]
    table = open_table(store, as_of)
    if table is None:
        return SCHEMA.empty_table().select(shown)
    everywhere = {k for k in other_keys(where) if _in_every_partition(store, table, k)}
    needed = {*where_columns(where, everywhere), *shown, SUPERSEDED_BY}
    needed |= {"status"} if status else set()
    needed |= {"created_at"} if since else set()
    names = [n for n in SCHEMA.names if n in needed]
    scan, row_ids = prefilter(where, status, since, everywhere)
    found = _read(store, table, names, scan, row_ids)
    return select(found, where, status, since, current_only=current_only).select(shown)


def _in_every_partition(store: AssetStore, table: DeltaTable, key: str) -> bool:
    """Whether every row's partition has `key` (then its metadata is not read for it)."""
    lacking = pc.is_null(partition_value(key))
    return _files(store, table).head(1, columns=["asset_id"], filter=lacking).num_rows == 0


def read_matching(
    store: AssetStore, where: Mapping[str, Iterable[str]], as_of: int | None = None
) -> pa.Table:
    """Rows whose column has one of its values, for any of `where`'s columns."""
    wanted = {column: sorted(set(values)) for column, values in where.items() if set(values)}
    if not wanted:
        return SCHEMA.empty_table()
    if list(wanted) == ["row_id"]:
        return read_catalog(store, as_of=as_of, row_ids=wanted["row_id"])
    tests = [scanned(column).isin(values) for column, values in wanted.items()]
    return read_catalog(store, as_of=as_of, scan=_any(tests))


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

    A row of an asset the table has keeps the stored review columns. A new current
    asset lists the older versions of its slot in `supersedes` (`settle` marks them).
    Every row's recorded_at is when the commit began.
    `transaction` (app id, sequence number): a commit whose number the table has
    recorded for that app already is not made again (a retried checkpoint).
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
        started = now_utc()
        stamped = new.set_column(
            new.schema.get_field_index(RECORDED_AT),
            RECORDED_AT,
            pa.array([started] * new.num_rows, SCHEMA.field(RECORDED_AT).type),
        )
        if table is None:
            write_deltalake(
                uri,
                with_superseded(stamped),
                mode="error",
                configuration=TABLE_PROPERTIES,
                storage_options=options,
                commit_properties=properties,
            )
        else:
            source, keys = _source(store, table, stamped)
            # What another writer commits meanwhile is read too (recorded_at from its
            # start on), so delta-rs sees the conflict if it recorded one of these assets.
            meanwhile = _timestamp(started - CONCURRENT_COMMIT_WINDOW)
            found = f"{_located(keys)} OR t.{RECORDED_AT} >= {meanwhile}"
            _merge(_evolved(table), source, f"({found})", properties)

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
        keys = _stored_keys(store, table, values)
        if keys.num_rows == 0:
            return
        (
            _evolved(table)
            .merge(
                source,
                predicate=f"t.asset_id = s.asset_id AND {_located(keys)}",
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
    """`table`, with what a table of an earlier assetgen lacks added first (metadata-only
    commits): the columns of SCHEMA (a MERGE cannot name a column its target does not
    have) and TABLE_PROPERTIES."""
    have = set(table.schema().to_arrow().names)
    missing = [Field.from_arrow(f) for f in SCHEMA if f.name not in have]
    properties = CommitProperties(custom_metadata={RUN_KEY: "schema"})
    if missing:
        table.alter.add_columns(missing, commit_properties=properties)
    configured = table.metadata().configuration
    if any(configured.get(k) != v for k, v in TABLE_PROPERTIES.items()):
        table.alter.set_table_properties(
            TABLE_PROPERTIES, raise_if_not_exists=False, commit_properties=properties
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


def _merge(table: DeltaTable, source: pa.Table, located: str, properties: CommitProperties) -> None:
    (
        table.merge(
            source,
            predicate=f"t.asset_id = s.asset_id AND {located}",
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
            updates={SUPERSEDED_BY: f"s.{SUPERSEDED_BY}", SUPERSEDES: f"s.{SUPERSEDES}"},
            predicate=f"s.{OP} = 'supersede'",
        )
        .when_not_matched_insert_all(predicate=f"s.{OP} = 'upsert'", except_cols=[OP])
        .execute()
    )


def _located(keys: pa.Table) -> str:
    """SQL: a target row is one of the stored rows `keys` (their row_id and recorded_at).

    Both are in the files' statistics, so delta-rs reads and rewrites only the files
    that may hold those rows: asset ids, hashes, narrow down nothing, while recorded_at
    follows the order of the commits (and compact's bin-packing keeps it). The times as
    at most TIME_RANGES ranges, split at their widest gaps: a longer list of values
    prunes no file.
    """
    if keys.num_rows == 0:
        return "FALSE"
    rows = ", ".join(_quoted(r) for r in sorted(set(keys["row_id"].to_pylist())))
    found = f"t.row_id IN ({rows})"
    times = sorted(set(keys[RECORDED_AT].to_pylist()), key=lambda t: (t is None, t))
    if times[-1] is None:  # a row of an earlier assetgen may lack it: by row_id alone
        return found
    gaps = sorted(range(1, len(times)), key=lambda i: times[i] - times[i - 1])
    cuts = sorted(gaps[len(gaps) - TIME_RANGES + 1 :] if len(times) > TIME_RANGES else gaps)
    bounds = [0, *cuts, len(times)]
    ranges = " OR ".join(
        f"t.{RECORDED_AT} BETWEEN {_timestamp(times[a])} AND {_timestamp(times[b - 1])}"
        for a, b in itertools.pairwise(bounds)
    )
    return f"{found} AND ({ranges})"


def _timestamp(at: datetime) -> str:
    return f"CAST({_quoted(at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ'))} AS TIMESTAMP)"


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _stored_keys(store: AssetStore, table: DeltaTable, asset_ids: Iterable[str]) -> pa.Table:
    """Where the table has these assets: their row_id and recorded_at (an asset id is a
    hash of what makes the image, not of the row: a row may record an asset stored under
    another row_id)."""
    wanted = scanned("asset_id").isin(sorted(set(asset_ids)))
    # The asset ids alone first: most commits are of new assets, which no file holds, and
    # a scan decodes every column it returns before it filters.
    holding = _files(store, table).to_table(columns=[FILE_COLUMN], filter=wanted)
    files = sorted(set(holding[FILE_COLUMN].to_pylist()))
    if not files:
        return SCHEMA.empty_table().select(list(KEY_COLUMNS))
    return _read(store, table, list(KEY_COLUMNS), wanted, files=files)


def _last_per_asset(table: pa.Table) -> pa.Table:
    ids = table["asset_id"].to_pylist()
    last = {asset: i for i, asset in enumerate(ids)}
    if len(last) == len(ids):
        return table
    return table.take(sorted(last.values()))


def _source(store: AssetStore, table: DeltaTable, new: pa.Table) -> tuple[pa.Table, pa.Table]:
    """The MERGE source and the keys of the stored rows it may match (_located): `new`,
    each with its superseded_by and the versions it supersedes listed, changing no stored
    row of another asset (but the rare one whose superseded_by a list cannot give: only
    that column is set on it)."""
    mine = new["asset_id"].to_pylist()
    # The MERGE matches only the stored rows of these assets, found here. A new asset
    # matches nothing, and its slot's older versions are read here, not merged.
    keys = _stored_keys(store, table, mine)
    slots = set(keys["row_id"].to_pylist()) | set(new["row_id"].to_pylist())
    stored = _read(store, table, list(SLOT_COLUMNS_READ), row_ids=slots, stored=True)
    others = stored.filter(pc.invert(pc.is_in(stored["asset_id"], pa.array(mine, pa.string()))))
    both = pa.concat_tables([new.select(list(SLOT_COLUMNS_READ)), others])
    wanted = dict(zip(both["asset_id"].to_pylist(), superseded(both).to_pylist(), strict=True))
    new_ids = set(mine)
    lists: dict[str, list[str]] = {}
    for asset, now in zip(
        others["asset_id"].to_pylist(), others[SUPERSEDED_BY].to_pylist(), strict=True
    ):
        if wanted[asset] in new_ids and wanted[asset] != now:
            lists.setdefault(wanted[asset], []).append(asset)
    upserts = new.set_column(
        new.schema.get_field_index(SUPERSEDED_BY),
        SUPERSEDED_BY,
        pa.array([wanted[a] for a in mine], pa.string()),
    ).set_column(
        new.schema.get_field_index(SUPERSEDES),
        SUPERSEDES,
        pa.array([lists.get(a) for a in mine], pa.list_(pa.string())),
    )
    # What readers will make of it; a stored row they would get wrong is set directly.
    after = _pending_superseded(
        pa.concat_tables(
            [upserts.select(list(SLOT_COLUMNS_READ)), others.select(list(SLOT_COLUMNS_READ))]
        )
    )
    direct = [
        asset
        for asset, now in zip(
            after["asset_id"].to_pylist(), after[SUPERSEDED_BY].to_pylist(), strict=True
        )
        if asset not in new_ids and now != wanted[asset]
    ]
    rows = upserts.append_column(OP, pa.array(["upsert"] * upserts.num_rows))
    if not direct:
        return rows, keys
    update = {"asset_id": direct, SUPERSEDED_BY: [wanted[a] for a in direct]}
    updates = pa.Table.from_pydict(update, schema=pa.schema([SCHEMA.field(k) for k in update]))
    updates = _conform(updates, SCHEMA.names).append_column(
        OP, pa.array(["supersede"] * len(direct))
    )
    direct_keys = stored.filter(pc.is_in(stored["asset_id"], pa.array(direct)))
    keys = pa.concat_tables([keys, direct_keys.select(list(KEY_COLUMNS))])
    return pa.concat_tables([rows, updates]), keys


def settle(store: AssetStore, row_ids: Iterable[str] | None, run_id: str) -> int:
    """Set superseded_by on the versions of these row_ids' slots (None: of every row that
    lists one) as the slots' current assets say, and clear the `supersedes` lists, in one
    commit; the rows changed. What a writer does once, at its end."""
    changed = 0

    def attempt(table: DeltaTable | None) -> None:
        nonlocal changed
        changed = 0
        if table is None:
            return
        slots = set(row_ids) if row_ids is not None else None
        if slots is None:
            listing = _read(store, table, ["row_id"], pc.field(SUPERSEDES).is_valid())
            slots = set(listing["row_id"].to_pylist())
        rows = _read(store, table, list(SLOT_COLUMNS_READ), row_ids=slots, stored=True)
        wanted = superseded(rows)
        stored = rows[SUPERSEDED_BY]
        differs = pc.fill_null(pc.not_equal(stored, wanted), True)
        differs = pc.and_(differs, pc.invert(pc.and_(pc.is_null(stored), pc.is_null(wanted))))
        stale = pc.or_(differs, pc.is_valid(rows[SUPERSEDES]))
        if not pc.any(stale).as_py():
            return
        touched = rows.filter(stale)
        source = pa.table(
            {
                "asset_id": touched["asset_id"],
                SUPERSEDED_BY: wanted.filter(stale),
                SUPERSEDES: pa.nulls(touched.num_rows, SCHEMA.field(SUPERSEDES).type),
            }
        )
        (
            _evolved(table)
            .merge(
                source,
                predicate=f"t.asset_id = s.asset_id AND {_located(touched)}",
                source_alias="s",
                target_alias="t",
                commit_properties=CommitProperties(custom_metadata={RUN_KEY: run_id}),
            )
            .when_matched_update(
                updates={SUPERSEDED_BY: f"s.{SUPERSEDED_BY}", SUPERSEDES: f"s.{SUPERSEDES}"}
            )
            .execute()
        )
        changed = touched.num_rows

    _retrying(store, attempt)
    return changed


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
        configuration=TABLE_PROPERTIES,
        storage_options=options,
        commit_properties=CommitProperties(custom_metadata={RUN_KEY: "rebuild"}),
    )
    return table.num_rows


def compact(store: AssetStore, retention_hours: int = RETENTION_HOURS) -> dict[str, Any]:
    """Settle what runs that died before their end left listed, optimize (small files into
    files of about FILE_BYTES, row groups of COMPACT_ROW_GROUP rows), then vacuum the files
    no version within `retention_hours` needs.

    Bin-packing, not z-order: at 1M assets z-order sorted the whole table in memory
    (2.3 GB) and wrote one row group per file, which no reader can skip within.
    """
    settle(store, None, "compact")
    table = open_table(store)
    if table is None:
        return {"files_before": 0, "files_after": 0, "removed": 0, "assets": 0}
    before = len(table.file_uris())
    _bin_pack(table, "compact")
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


def compact_small(store: AssetStore, run_id: str) -> None:
    """Bin-pack the table's small files (a run's checkpoints, one file each), once there
    are PACK_AT_FILES of them, without a vacuum: what a writer does at its end, so
    readers open a few files, not thousands.
    Maintenance only: a commit race lost to another writer is left to the next one."""
    table = open_table(store)
    if table is None:
        return
    sizes = pa.table(table.get_add_actions(flatten=True))["size_bytes"]
    if pc.sum(pc.less(sizes, FILE_BYTES)).as_py() < PACK_AT_FILES:
        return
    try:
        _bin_pack(table, run_id)
    except (CommitFailedError, DeltaError) as e:
        if not _conflict(e):
            raise


def _bin_pack(table: DeltaTable, run_id: str) -> None:
    table.optimize.compact(
        target_size=FILE_BYTES,
        writer_properties=WriterProperties(max_row_group_size=COMPACT_ROW_GROUP),
        commit_properties=CommitProperties(custom_metadata={RUN_KEY: run_id}),
    )
