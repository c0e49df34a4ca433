"""`refresh --manifest`: which stored assets take new overlay text from an updated manifest.

The manifest is read and validated exactly as `plan` and `run` read it (the
same Planner: CSV, Parquet, JSONL, any fsspec URL; a bad row is a reject
naming its row, column and reason, and the other rows go on). Each valid row
is matched by its slot (partition, row id, variant) to the current generated
asset of the catalog. Only the columns change: a row whose image-deciding
fields (prompt, size, references, ...) no longer give the stored asset's id
is not refreshed, since its picture would not be the one the row asks for;
`assetgen run` makes that one. Nothing here calls a provider.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from assetgen.tasks.catalog.rows import GENERATED
from assetgen.tasks.catalog.table import read_matching
from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.config.models import load_model_table
from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.manifest.rejects import rejects_file
from assetgen.tasks.manifest.rows import RowContext
from assetgen.tasks.plan.jobs import Job, Planner
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.store.assets import AssetStore, asset_folder


@dataclass
class Retext:
    """What an updated manifest asks of the store."""

    # folder of a stored asset -> the row's columns (the sidecar's new metadata)
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    rows: int = 0  # valid rows read
    rejected: list[Reject] = field(default_factory=list)  # bad rows: row, column, reason
    unmatched: list[str] = field(default_factory=list)  # rows no stored asset has
    needs_run: list[str] = field(default_factory=list)  # rows whose picture would change


def describe_reject(r: Reject) -> str:
    """One line naming the row, its id, the column and the reason."""
    who = f"row {r.row}" + (f" (id {r.id})" if r.id else "")
    return f"{who}, column {r.column or '(row)'}: {r.reason}"


def _slot(partition: Iterable[tuple[str, str]] | dict[str, str], row_id: str, variant: int) -> Any:
    items = partition.items() if isinstance(partition, dict) else partition
    return (tuple(sorted(items or [])), row_id, variant)


def _where(job: Job) -> str:
    part = ", ".join(f"{k}={v}" for k, v in job.partition.items())
    return f" in {part}" if part else ""


def plan_rows(
    manifest: str, fmt: str | None, cfg: JobConfig, rejects_url: str
) -> tuple[list[Job], list[Reject]]:
    """The manifest's jobs and its rejects (also written to the CSV at `rejects_url`)."""
    planner = Planner(RowContext.build(cfg, load_model_table()), load_price_table())
    jobs: list[Job] = []
    rejected: list[Reject] = []
    with rejects_file(rejects_url, cfg.store_options) as write_reject:
        for item in planner.plan(manifest, fmt):
            if isinstance(item, Reject):
                write_reject(item)
                rejected.append(item)
            else:
                jobs.append(item)
    return jobs, rejected


def match_rows(store: AssetStore, jobs: list[Job]) -> Retext:
    """Each job's current stored asset, or why it has none to refresh."""
    table = read_matching(store, {"row_id": [j.row_id for j in jobs]}).to_pylist()
    by_id = {r["asset_id"]: r for r in table}
    current: dict[Any, dict[str, Any]] = {}
    for r in table:
        if r["status"] != GENERATED or r["superseded_by"] is not None:
            continue
        key = _slot(r["partition"], r["row_id"], r["variant"])
        if key not in current or r["created_at"] > current[key]["created_at"]:
            current[key] = r
    out = Retext(rows=len({j.row for j in jobs}))
    reported: set[int] = set()  # one line per row, not per variant
    for job in jobs:
        stored = current.get(_slot(job.partition, job.row_id, job.variant))
        if stored is None:
            if job.row not in reported:
                out.unmatched.append(
                    f"row {job.row} (id {job.row_id}): no stored asset with this id{_where(job)}"
                )
            reported.add(job.row)
            continue
        if _first_version(stored, by_id) != job.asset_id:
            if job.row not in reported:
                out.needs_run.append(
                    f"row {job.row} (id {job.row_id}): its prompt or image inputs differ from "
                    f"stored asset {stored['asset_id']}; refresh changes only the overlays "
                    "(`assetgen run` makes the new picture)"
                )
            reported.add(job.row)
            continue
        folder = asset_folder(dict(stored["partition"] or []), stored["asset_id"])
        out.folders[folder] = job.metadata
    return out


def _first_version(row: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> str:
    """The asset_id the slot's first version had: a revision's own id has its revision
    number in it (and maybe a revised prompt), the manifest row gives the first one's."""
    seen = {row["asset_id"]}
    while (parent := row.get("revision_of")) and parent in by_id and parent not in seen:
        seen.add(parent)
        row = by_id[parent]
    return row["asset_id"] if not row.get("revision_of") else row["revision_of"]
