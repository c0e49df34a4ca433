"""The run report: `report.json` and an HTML contact sheet under `<store>/_reports/<run_id>/`.

The contact sheet is one self-contained HTML file: inline CSS, no script at
all, a Content-Security-Policy that forbids anything but images and inline
styles. Its images are paths relative to the file itself (`../../<partition>/
<asset_id>/thumb.webp`), so it works wherever the store is readable as a
tree: opened from a local folder, or served over HTTP (a static web server,
an S3 website), with no links that expire or name a host.

Everything shown comes from user data (prompts, partition values, reasons
quoting the manifest): Jinja2's autoescape renders it as text, never markup.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from assetgen.tasks.catalog.rows import row_from_sidecar
from assetgen.tasks.catalog.table import read_matching, run_version
from assetgen.tasks.plan.pricing import format_usd
from assetgen.tasks.reporting.cards import (
    SKIPPED,
    STATUS_LABELS,
    RejectedRow,
    ReportEntry,
    entry_from_row,
    read_rejects,
)
from assetgen.tasks.reporting.html import html_environment
from assetgen.tasks.store.assets import (
    SIDECAR,
    AssetStore,
    Sidecar,
    UnsafePath,
    now_utc,
)

REPORTS = "_reports"
TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "contact_sheet.html.j2"
# Cards show a box this size when the image's own size is unknown.
DEFAULT_BOX = 256
# Order of the status figures in the header, and the summary key of each.
STATUS_COUNTS = (
    ("generated", "generated"),
    (SKIPPED, "skipped_existing"),
    ("failed", "failed"),
    ("budget_exhausted", "budget_exhausted"),
    ("stopped", "stopped"),
)
# A run id becomes a folder name: only what new_run_id makes (and shard ids).
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
RUN_ID_TIME = "%Y%m%dT%H%M%SZ"


class Report(BaseModel):
    """What `report.json` holds: the run summary, its entries (sorted by group) and rejects."""

    run_id: str
    started_at: datetime | None = None
    generated_at: datetime
    store: str
    summary: dict[str, Any]
    counts: dict[str, int]  # entries by status
    entries: list[ReportEntry]
    rejected: list[RejectedRow]
    # Assets the run found stored but that are not listed (catalog lacks them,
    # or the report was built after the run without knowing which they were).
    unlisted_existing: int = 0

    def groups(self) -> list[tuple[str, list[ReportEntry]]]:
        """Entries by partition, in the entries' (sorted) order."""
        groups: dict[str, list[ReportEntry]] = {}
        for entry in self.entries:
            groups.setdefault(entry.group, []).append(entry)
        return list(groups.items())


def report_folder(run_id: str) -> str:
    """`_reports/<run_id>`, relative to the store root; refuses ids that are no plain name."""
    if not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise UnsafePath(f"run id {run_id!r} is not a run id")
    return f"{REPORTS}/{run_id}"


def build_report(
    store: AssetStore, summary: Mapping[str, Any], extra_asset_ids: Iterable[str] = ()
) -> Report:
    """The entries of the run `summary["run_id"]`, grouped by partition, and its rejects.

    Entries are the run's catalog rows (generated, failed, left for budget,
    not sent), plus the latest rows of `extra_asset_ids`: assets the run
    skipped because the store had them already. Pass a mapping of asset_id to
    folder (the flow's `todo.skipped`) and an asset missing from the catalog
    is read from its sidecar instead of going unlisted.
    """
    run_id = str(summary["run_id"])
    report_folder(run_id)  # refuse an id that cannot be a folder, before any work
    extras = dict(extra_asset_ids) if isinstance(extra_asset_ids, Mapping) else None
    extra_ids = set(extras if extras is not None else extra_asset_ids)

    # The rows of the run and of the assets it found stored, and nothing else
    # of the catalog, as the run left them: the table as of the run's last
    # commit (a later run may have recorded the same assets again). A sharded
    # run's shards record under `<run_id>-s<N>`.
    run_ids = run_ids_of(summary)
    as_of = run_version(store, run_ids)
    table = read_matching(store, {"run_id": run_ids, "asset_id": extra_ids}, as_of)
    mine = pc.is_in(table["run_id"], pa.array(run_ids, pa.string()))
    run_rows = table.filter(pc.fill_null(mine, False)).to_pylist()
    run_rows = [r for r in run_rows if r["asset_id"] not in extra_ids]
    stored = pc.is_in(table["asset_id"], pa.array(sorted(extra_ids), pa.string()))
    stored_rows = table.filter(stored).to_pylist() if extra_ids else []

    entries = [entry_from_row(store, row) for row in run_rows]
    found = {row["asset_id"] for row in stored_rows}
    for asset_id in sorted(extra_ids - found):
        # Stored but not catalogued (a run killed before its catalog write):
        # the sidecar has all the catalog would.
        folder = (extras or {}).get(asset_id)
        if folder:
            try:
                raw = store.read_bytes(f"{folder}/{SIDECAR}")
                stored_rows.append(row_from_sidecar(store, Sidecar.model_validate_json(raw)))
            except (FileNotFoundError, ValueError):
                pass
    for row in stored_rows:
        entry = entry_from_row(store, row)
        entries.append(entry.model_copy(update={"status": SKIPPED, "cost_usd": 0.0}))
    entries.sort(key=lambda e: (e.group, e.row or 0, e.row_id or "", e.variant or 0, e.asset_id))

    counts = Counter(e.status for e in entries)
    listed_existing = counts[SKIPPED]
    return Report(
        run_id=run_id,
        started_at=_started_at(run_id, entries),
        generated_at=now_utc(),
        store=store.url,
        summary=dict(summary),
        counts=dict(counts),
        entries=entries,
        rejected=read_rejects(store, summary),
        unlisted_existing=max(0, int(summary.get("skipped_existing") or 0) - listed_existing),
    )


def write_report(
    store: AssetStore, summary: Mapping[str, Any], extra_asset_ids: Iterable[str] = ()
) -> str:
    """Write `_reports/<run_id>/report.json` and `index.html`; returns the index.html URI."""
    return save_report(store, build_report(store, summary, extra_asset_ids))


def save_report(store: AssetStore, report: Report) -> str:
    """Write `report` as report.json, then index.html; returns the index.html URI.

    report.json first: an index.html in the store means the report is whole.
    """
    folder = report_folder(report.run_id)
    store.write_bytes(f"{folder}/report.json", report.model_dump_json(indent=2).encode("utf-8"))
    return store.write_bytes(f"{folder}/index.html", render_html(report).encode("utf-8"))


def listed_existing_ids(store: AssetStore, run_id: str) -> list[str]:
    """The already-stored assets an earlier report.json of the run listed.

    A report rebuilt after the run knows them from nowhere else: the summary
    only counts them.
    """
    try:
        data = store.read_json(f"{report_folder(run_id)}/report.json")
    except FileNotFoundError:
        return []
    return [e["asset_id"] for e in data.get("entries", []) if e.get("status") == SKIPPED]


def render_html(report: Report) -> str:
    """The contact sheet for `report`, one self-contained HTML document."""
    s = report.summary
    budget = s.get("budget_usd")
    # A batch-mode run's images come with `assetgen collect`, after its
    # summary was written: its entries say what became of its jobs.
    collected = s.get("mode") == "batch"
    cost = sum(e.cost_usd for e in report.entries) if collected else float(s.get("cost_usd") or 0.0)
    status_counts = [
        (
            status,
            STATUS_LABELS[status],
            report.counts.get(status, 0)
            if collected and status != SKIPPED
            else _int(s.get(key), report.counts.get(status, 0)),
        )
        for status, key in STATUS_COUNTS
    ]
    return _template().render(
        report=report,
        s=s,
        groups=report.groups(),
        status_counts=status_counts,
        rejected_count=_int(s.get("rejected"), len(report.rejected)),
        cost=cost,
        budget=budget,
        estimate=s.get("estimate_usd"),
        # Share of the budget spent, for the bar; a number we computed, not user data.
        spent_pct=min(100.0, 100.0 * cost / budget) if budget else 0.0,
        default_box=DEFAULT_BOX,
    )


@cache
def _template() -> Any:
    env = html_environment(TEMPLATES)
    env.filters["usd"] = _usd
    env.filters["tally"] = tally
    env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M UTC") if d else ""
    return env.get_template(TEMPLATE)


def tally(entries: Iterable[ReportEntry]) -> str:
    """`3 images · 1 failed`: what a group of cards holds."""
    images = 0
    others: Counter[str] = Counter()
    for entry in entries:
        if entry.has_image:
            images += 1
        else:
            others[entry.label] += 1
    parts = [f"{images} image{'' if images == 1 else 's'}"] if images else []
    return " · ".join([*parts, *(f"{n} {label}" for label, n in others.items())])


def run_ids_of(summary: Mapping[str, Any]) -> list[str]:
    """The run ids a run's catalog rows carry: its own, and its shards' (`<run_id>-s<N>`)."""
    run_id = str(summary["run_id"])
    shards = [f"{run_id}-s{s['shard']}" for s in summary.get("shards") or [] if "shard" in s]
    return [run_id, *shards]


def _started_at(run_id: str, entries: list[ReportEntry]) -> datetime | None:
    try:  # new_run_id: `20261125T101500Z-3fa9c2`
        return datetime.strptime(run_id.split("-", 1)[0], RUN_ID_TIME).replace(tzinfo=UTC)
    except ValueError:
        times = [e.created_at for e in entries if e.created_at]
        return min(times) if times else None


def _usd(value: Any) -> str:
    return "no cap" if value is None else format_usd(float(value))


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
