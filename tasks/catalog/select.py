"""Selecting catalog rows: by partition key, column or metadata key, status and time.

Plain pyarrow over a table already read (the catalog, or a slice of it).
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Collection, Iterable
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from assetgen.tasks.catalog.rows import PARTITION_COLUMNS, SCHEMA, SUPERSEDED_BY, SUPERSEDES


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
    if current_only:
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


def prefilter(
    where: Iterable[tuple[str, str]] = (),
    status: str | None = None,
    since: datetime | None = None,
    everywhere: Collection[str] = (),
) -> tuple[pc.Expression | None, set[str] | None]:
    """What of `select` a scan can do while it reads the files: a filter that keeps every
    row `select` keeps (and maybe more), and the row_ids asked for (None: any).

    `everywhere`: keys in every row's partition (their metadata is never looked at)."""
    tests: list[pc.Expression] = []
    row_ids: set[str] | None = None
    if status:
        tests.append(scanned("status") == status)
    if since:
        at = pa.scalar(since, SCHEMA.field("created_at").type)
        tests.append(scanned("created_at") >= at)
    for key, value in where:
        if key == "row_id":
            row_ids = {value} if row_ids is None else row_ids & {value}
        elif key in (SUPERSEDED_BY, SUPERSEDES):  # worked out after the read
            continue
        elif key in SCHEMA.names and key not in PARTITION_COLUMNS:
            field = SCHEMA.field(key)
            if pa.types.is_string(field.type) or pa.types.is_integer(field.type):
                tests.append(scanned(key).cast(pa.string()) == value)
        elif value != "None":  # a null partition value reads as "None": no test for it
            part = pc.coalesce(partition_value(key) == value, False)
            if key not in everywhere:
                meta = pc.match_substring_regex(scanned("metadata"), _metadata_pattern(key, value))
                part = part | pc.coalesce(meta, False)
            tests.append(part)
    return (functools.reduce(operator.and_, tests) if tests else None), row_ids


def partition_value(key: str) -> pc.Expression:
    """A key's value in a row's partition (null without the key), in a scan filter."""
    return pc.map_lookup(scanned("partition"), pa.scalar(key), "last")


def scanned(name: str) -> pc.Expression:
    """A column in a scan filter, as SCHEMA has it: files delta-rs wrote may keep strings
    as string_view, which a comparison with a string refuses."""
    return pc.field(name).cast(SCHEMA.field(name).type)


def where_columns(where: Iterable[tuple[str, str]], everywhere: Collection[str] = ()) -> set[str]:
    """The stored columns `select` reads for `where` (`everywhere`: as for prefilter)."""
    keys = {key for key, _ in where}
    fields = keys & (set(SCHEMA.names) - PARTITION_COLUMNS)
    others = keys - fields
    return (
        fields
        | ({"partition"} if others else set())
        | ({"metadata"} if others - set(everywhere) else set())
    )


def other_keys(where: Iterable[tuple[str, str]]) -> set[str]:
    """The keys of `where` that are no column: a partition or a metadata key."""
    return {key for key, _ in where if key in PARTITION_COLUMNS or key not in SCHEMA.names}


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


def of_run(table: pa.Table, run_id: str) -> pa.Table:
    """Rows a run recorded: its own run_id, or one of its shards' (`<run_id>-s<N>`)."""
    ids = table["run_id"]
    mine = pc.or_(pc.equal(ids, run_id), pc.starts_with(ids, f"{run_id}-s"))
    return table.filter(pc.fill_null(mine, False))
