"""The feed: a line per file in the destination, as CSV and as JSON Lines, written whole.

It lists exactly the files the manifest lists (a withdrawn one, no longer
approved, keeps its line, with the reason in `withdrawn`, until --prune
removes the file), sorted by key, so an unchanged destination gives the
same bytes and is not written again.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from assetgen.tasks.publish.keys import url_of
from assetgen.tasks.publish.record import Published
from assetgen.tasks.store.assets import partition_path

COLUMNS = (
    "row_id",
    "partition",
    "rendition",
    "url",
    "width",
    "height",
    "bytes",
    "sha256",
    "asset_id",
    "revision",
    "alt_text",
    "published_at",
    "variant",
    "key",
    "content_type",
    "replaces",
    "withdrawn",
)


def feed_lines(files: dict[str, Published], base_url: str) -> list[dict[str, Any]]:
    return [
        {
            "row_id": f.row_id,
            "partition": f.partition,
            "rendition": f.rendition,
            "url": url_of(base_url, key),
            "width": f.width,
            "height": f.height,
            "bytes": f.bytes,
            "sha256": f.sha256,
            "asset_id": f.asset_id,
            "revision": f.revision,
            "alt_text": f.alt_text,
            "published_at": f.published_at,
            "variant": f.variant,
            "key": key,
            "content_type": f.content_type,
            "replaces": f.replaces,
            "withdrawn": f.withdrawn,
        }
        for key, f in sorted(files.items())
    ]


def render_csv(lines: list[dict[str, Any]]) -> bytes:
    """CSV with a header; the partition as its path (`key=value/...`, percent-encoded)."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for line in lines:
        row = {k: "" if v is None else v for k, v in line.items()}
        row["partition"] = partition_path(line["partition"])
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


def render_jsonl(lines: list[dict[str, Any]]) -> bytes:
    """One JSON object per line; the partition as an object."""
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")
