"""Helpers for tests: write manifests in every format, run a whole plan."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.plan.jobs import Job, Planner


def write_manifest(url: str, rows: list[dict[str, Any]], fmt: str | None = None) -> str:
    """Write `rows` to `url` as CSV, Parquet or JSONL (by extension or `fmt`)."""
    fmt = fmt or url.rsplit(".", 1)[-1]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with fsspec.open(url, "wb") as f:
        if fmt == "csv":
            text = io.StringIO()
            writer = csv.DictWriter(text, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow(
                    {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
                )
            f.write(text.getvalue().encode("utf-8"))
        elif fmt == "parquet":
            # from_pylist takes its columns from the first row alone.
            full = [{k: row.get(k) for k in columns} for row in rows]
            pq.write_table(pa.Table.from_pylist(full), f)
        elif fmt == "jsonl":
            f.write("".join(json.dumps(row) + "\n" for row in rows).encode("utf-8"))
        else:
            raise ValueError(fmt)
    return url


def plan_all(planner: Planner, url: str, fmt: str | None = None) -> tuple[list[Job], list[Reject]]:
    """Run a whole plan; jobs and rejects apart."""
    jobs: list[Job] = []
    rejects: list[Reject] = []
    for item in planner.plan(url, fmt):
        (rejects if isinstance(item, Reject) else jobs).append(item)
    return jobs, rejects
