"""Read a manifest (CSV, Parquet, JSONL; any fsspec URL) as a stream of row batches.

Rows come out as plain dicts with their 1-based record number (the header
does not count). A record that cannot be parsed becomes a `Reject` in the
same stream, so one bad line never stops the others. A manifest that cannot
be read at all raises `ManifestError`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.utils import infer_compression
from pydantic import BaseModel

from assetgen.tasks.config.base import ConfigError

FORMATS = ("csv", "parquet", "jsonl")
_EXTENSIONS = {
    "csv": "csv",
    "parquet": "parquet",
    "pq": "parquet",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
}
# Prompts are capped at 32,000 characters by validation; let the CSV parser
# hand over longer fields so they get that clear reason instead of a parse error.
csv.field_size_limit(16 * 1024 * 1024)


class ManifestError(ConfigError):
    """The manifest cannot be read at all: missing, unparseable, no `id` column."""


class Reject(BaseModel):
    """One reason one row was not accepted."""

    row: int
    id: str | None = None
    column: str | None = None
    code: str
    reason: str


@dataclass(slots=True)
class RawRow:
    number: int
    fields: dict[str, Any]


Batch = list[RawRow | Reject]


def detect_format(url: str, fmt: str | None = None) -> str:
    """The manifest format: `fmt` if given, else from the file extension."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise ManifestError(f"unknown manifest format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    name = url.rstrip("/").rsplit("/", 1)[-1].lower()
    parts = name.split(".")
    if infer_compression(name) and len(parts) > 2:
        parts = parts[:-1]
    ext = parts[-1] if len(parts) > 1 else ""
    if ext not in _EXTENSIONS:
        raise ManifestError(
            f"{url}: cannot tell the format from the extension {('.' + ext) if ext else '(none)'}; "
            f"pass --format {'|'.join(FORMATS)}"
        )
    return _EXTENSIONS[ext]


def read_manifest(url: str, fmt: str | None = None, batch_rows: int = 2048) -> Iterator[Batch]:
    """Yield batches of rows (or rejects for records that cannot be parsed)."""
    fmt = detect_format(url, fmt)
    reader = {"csv": _read_csv, "parquet": _read_parquet, "jsonl": _read_jsonl}[fmt]
    try:
        yield from reader(url, batch_rows)
    except FileNotFoundError as e:
        raise ManifestError(f"{url}: manifest not found") from e
    except IsADirectoryError as e:
        raise ManifestError(f"{url}: is a directory, not a manifest file") from e
    except PermissionError as e:
        raise ManifestError(f"{url}: permission denied") from e


def _undecodable(fields: dict[str, Any]) -> str | None:
    # Files are decoded with surrogateescape: bad bytes survive as lone
    # surrogates. Check the whole record at once; look closer only if needed.
    try:
        "".join(v for v in fields.values() if isinstance(v, str)).encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return None
    for key, value in fields.items():
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return key
    return None


def _read_csv(url: str, batch_rows: int) -> Iterator[Batch]:
    with fsspec.open(
        url, "rt", encoding="utf-8-sig", errors="surrogateescape", newline="", compression="infer"
    ) as f:
        # strict: a quote left open must be an error for its row, not
        # silently swallow every row after it into one cell.
        reader = csv.reader(f, strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise ManifestError(f"{url}: empty file, expected a header row") from None
        except csv.Error as e:
            raise ManifestError(f"{url}: header row is not valid CSV: {e}") from e
        names = [h.strip() for h in header]
        _check_columns(url, names)
        width = len(names)
        id_pos = names.index("id")
        batch: Batch = []
        number = 0
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                number += 1
                batch.append(Reject(row=number, code="csv_syntax", reason=f"not valid CSV: {e}"))
                continue
            if not record:
                continue  # blank line
            number += 1
            if len(record) != width:
                batch.append(
                    Reject(
                        row=number,
                        id=record[id_pos] if len(record) > id_pos else None,
                        code="csv_field_count",
                        reason=f"has {len(record)} fields, the header has {width}",
                    )
                )
            else:
                batch.append(_decoded(RawRow(number, dict(zip(names, record, strict=True)))))
            if len(batch) >= batch_rows:
                yield batch
                batch = []
        if batch:
            yield batch


def _decoded(row: RawRow) -> RawRow | Reject:
    bad = _undecodable(row.fields)
    if bad is None:
        return row
    return Reject(
        row=row.number,
        id=row.fields.get("id") if bad != "id" else None,
        column=bad,
        code="encoding",
        reason="not valid UTF-8 text",
    )


def _check_columns(url: str, names: list[str]) -> None:
    if any("\x00" in n for n in names):
        raise ManifestError(f"{url}: looks like UTF-16 text; save the manifest as UTF-8")
    if "id" not in names:
        raise ManifestError(f"{url}: no `id` column (columns: {', '.join(names) or 'none'})")
    seen: set[str] = set()
    for i, name in enumerate(names, 1):
        if not name:
            raise ManifestError(f"{url}: column {i} has no name")
        if name in seen:
            raise ManifestError(f"{url}: column {name!r} appears twice")
        seen.add(name)


def _read_parquet(url: str, batch_rows: int) -> Iterator[Batch]:
    with fsspec.open(url, "rb") as f:
        try:
            pf = pq.ParquetFile(f)
        except (pa.ArrowException, OSError) as e:
            raise ManifestError(f"{url}: not a readable Parquet file: {e}") from e
        _check_columns(url, pf.schema_arrow.names)
        number = 0
        try:
            for record_batch in pf.iter_batches(batch_size=batch_rows):
                batch: Batch = []
                for fields in record_batch.to_pylist():
                    number += 1
                    batch.append(RawRow(number, fields))
                yield batch
        except (pa.ArrowException, OSError) as e:
            raise ManifestError(f"{url}: Parquet file is corrupt after row {number}: {e}") from e


def _read_jsonl(url: str, batch_rows: int) -> Iterator[Batch]:
    with (
        fsspec.open(url, "rb", compression="infer") as raw,
        io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape") as f,
    ):
        batch: Batch = []
        number = 0
        first = True
        for line in f:
            if not line.strip():
                continue
            number += 1
            try:
                fields = json.loads(line)
            except ValueError as e:
                batch.append(Reject(row=number, code="json_syntax", reason=f"not valid JSON: {e}"))
                continue
            if not isinstance(fields, dict):
                batch.append(Reject(row=number, code="json_syntax", reason="not a JSON object"))
                continue
            if first:
                # The first record plays the part of a header: without an
                # `id` the file is not a manifest.
                _check_columns(url, list(fields))
                first = False
            batch.append(_decoded(RawRow(number, fields)))
            if len(batch) >= batch_rows:
                yield batch
                batch = []
        if batch:
            yield batch
