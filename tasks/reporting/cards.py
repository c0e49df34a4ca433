"""The cards of a contact sheet: a catalog row (or a reject) as what one card shows."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import fsspec
from pydantic import BaseModel

from assetgen.tasks.store.assets import AssetStore, asset_folder
from assetgen.tasks.store.runs import RUNS

# Formats every current browser shows in an <img>.
BROWSER_FORMATS = {"webp", "jpeg", "jpg", "png", "avif"}

# A card shows its image about 220 CSS pixels wide: a thumbnail with a
# shorter edge than this would look blurred, so a bigger rendition wins.
THUMB_MIN_EDGE = 160

SKIPPED = "skipped_existing"  # the status dispatch gives a job whose asset was stored already

STATUS_LABELS = {
    "generated": "generated",
    SKIPPED: "already stored",
    "failed": "failed",
    "budget_exhausted": "left for budget",
    "stopped": "not sent",
}


class ReportEntry(BaseModel):
    """One card of the contact sheet: an asset of the run, or a job that made none."""

    asset_id: str
    group: str  # the partition as "key=value / key=value"; "" when the store has none
    partition: dict[str, str]
    row: int | None = None
    row_id: str | None = None
    variant: int | None = None
    prompt: str | None = None
    status: str
    error: str | None = None  # why a job made no image (failed, budget, refusal)
    cost_usd: float = 0.0  # what this run paid for it (nothing for assets stored earlier)
    size: str | None = None
    quality: str | None = None
    model: str | None = None
    output_format: str | None = None
    run_id: str | None = None  # the run that made the asset; an earlier one if already stored
    created_at: datetime | None = None
    # Paths relative to the report's folder (URL-encoded, ready for src/href).
    thumbnail: str | None = None
    thumbnail_width: int | None = None
    thumbnail_height: int | None = None
    full: str | None = None
    original_uri: str | None = None
    # The renditions' Content Credentials: signed, unsigned, or invalid (the
    # original's manifest did not validate).
    credentials: str = "unsigned"

    @property
    def label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status.replace("_", " "))

    @property
    def thumbnail_path(self) -> str | None:
        """The thumbnail's path relative to the store root."""
        return unquote(self.thumbnail.removeprefix("../../")) if self.thumbnail else None

    @property
    def has_image(self) -> bool:
        return self.thumbnail is not None and self.status in ("generated", SKIPPED)


class RejectedRow(BaseModel):
    """A manifest row the plan refused (one line of the run's rejects.csv)."""

    row: int | None = None
    id: str = ""
    column: str = ""
    code: str = ""
    reason: str = ""


def read_rejects(store: AssetStore, summary: Mapping[str, Any]) -> list[RejectedRow]:
    """The rows of the run's rejects.csv (manifest/rejects.py), or none if it has none."""
    run_id = str(summary["run_id"])
    url = summary.get("rejects_file") or store.uri(f"{RUNS}/{run_id}/rejects.csv")
    try:
        if url.startswith(store.url + "/"):  # in the store: its filesystem options apply
            data = store.read_bytes(url[len(store.url) + 1 :])
        else:
            with fsspec.open(url, "rb") as f:
                data = f.read()
    except FileNotFoundError:
        return []
    rows = []
    for line in csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace"))):
        number = line.get("row") or ""
        rows.append(
            RejectedRow(
                row=int(number) if number.isdigit() else None,
                id=line.get("id") or "",
                column=line.get("column") or "",
                code=line.get("code") or "",
                reason=line.get("reason") or "",
            )
        )
    return rows


def entry_from_row(store: AssetStore, row: dict[str, Any]) -> ReportEntry:
    partition = dict(row.get("partition") or [])
    asset_id = row["asset_id"]
    thumb = _thumbnail(row)
    thumbnail = width = height = None
    if thumb is not None:
        thumbnail = _href(store, thumb[0], partition, asset_id)
        width, height = thumb[1], thumb[2]
    full = (
        _href(store, row["original_uri"], partition, asset_id) if row.get("original_uri") else None
    )
    return ReportEntry(
        asset_id=asset_id,
        group=group_key(partition),
        partition=partition,
        row=row.get("row"),
        row_id=row.get("row_id"),
        variant=row.get("variant"),
        prompt=row.get("prompt"),
        status=row.get("status") or "unknown",
        error=row.get("error"),
        cost_usd=row.get("cost_usd") or 0.0,
        size=row.get("size"),
        quality=row.get("quality"),
        model=row.get("model"),
        output_format=row.get("output_format"),
        run_id=row.get("run_id"),
        created_at=row.get("created_at"),
        thumbnail=thumbnail,
        thumbnail_width=width,
        thumbnail_height=height,
        full=full,
        original_uri=row.get("original_uri"),
        credentials=_credentials(row),
    )


def _credentials(row: dict[str, Any]) -> str:
    if row.get("c2pa_state") == "Invalid":
        return "invalid"
    return "signed" if row.get("rendition_credentials") == "signed" else "unsigned"


def group_key(partition: Mapping[str, str]) -> str:
    """`category=chairs / sku=123`, in the order of partition_by."""
    return " / ".join(f"{k}={v}" for k, v in partition.items())


def thumbnail_index(row: dict[str, Any]) -> int | None:
    """The rendition a card shows: the smallest a browser shows that is still sharp at card
    size, failing that the biggest such rendition; None: the original it is."""
    shown = [
        (i, r)
        for i, r in enumerate(row.get("renditions") or [])
        if (r.get("format") or "").lower() in BROWSER_FORMATS and r.get("width") and r.get("height")
    ]
    sharp = [(i, r) for i, r in shown if min(r["width"], r["height"]) >= THUMB_MIN_EDGE]
    if sharp:
        return min(sharp, key=lambda ir: ir[1]["width"] * ir[1]["height"])[0]
    if shown:
        return max(shown, key=lambda ir: ir[1]["width"] * ir[1]["height"])[0]
    return None


def _thumbnail(row: dict[str, Any]) -> tuple[str, int | None, int | None] | None:
    """(uri, width, height) of the image a card shows, or None when the job made none.

    The smallest rendition a browser shows that is still sharp at card size;
    failing that the biggest such rendition; failing that the original.
    """
    if row.get("status") != "generated" or not row.get("original_uri"):
        return None
    index = thumbnail_index(row)
    if index is not None:
        pick = row["renditions"][index]
        return pick["uri"], pick["width"], pick["height"]
    size = _parse_size(row.get("size"))
    return row["original_uri"], *(size or (None, None))


def _href(store: AssetStore, uri: str, partition: dict[str, str], asset_id: str) -> str:
    """`uri` (an object in the store) as a URL relative to `_reports/<run_id>/`."""
    prefix = store.url + "/"
    relative = uri[len(prefix) :] if uri.startswith(prefix) else None
    if relative is None or ".." in relative.split("/") or relative.startswith("/"):
        # Recorded under another spelling of the store's URL (./assets vs
        # /abs/assets, file://): the asset's folder follows from its partition.
        relative = f"{asset_folder(partition, asset_id)}/{uri.rsplit('/', 1)[-1]}"
    # Folder names are percent-encoded already (`locale=en%20US`): encode the
    # `%` again, or the browser would decode it and look for `en US`.
    return "../../" + quote(relative, safe="/=")


def _parse_size(size: str | None) -> tuple[int, int] | None:
    width, sep, height = (size or "").partition("x")
    return (int(width), int(height)) if sep and width.isdigit() and height.isdigit() else None
