"""The review app's HTML: catalog rows as cards, rendered by Jinja2 with autoescape on.

Every value shown (prompt, note, partition, reviewer, metadata) comes from
user data and goes through `{{ }}`, so it is text, never markup; nothing is
marked safe. The templates hold no script or style: the page's behaviour is
static/review.js and its look static/review.css, which the CSP allows, and
nothing inline, which it does not.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment

from assetgen.tasks.plan.pricing import format_usd
from assetgen.tasks.reporting.cards import group_key, thumbnail_index
from assetgen.tasks.reporting.html import html_environment
from assetgen.tasks.review.media import Reference

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
STATIC_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
DEFAULT_BOX = 256  # width and height attributes of an image whose size is unknown


@dataclass(frozen=True)
class Image:
    """An <img> of a card: where the app serves it and its size (for layout before load)."""

    src: str
    width: int
    height: int
    label: str = ""


@dataclass(frozen=True)
class Card:
    """One asset as the grid shows it."""

    asset_id: str
    group: str
    row_id: str
    variant: int
    prompt: str
    size: str
    quality: str
    cost: str
    run_id: str
    state: str
    note: str
    reviewed_by: str
    reviewed_at: str
    image: Image
    references: list[Image] = field(default_factory=list)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _size(value: str | None) -> tuple[int, int]:
    width, sep, height = (value or "").partition("x")
    if sep and width.isdigit() and height.isdigit():
        return int(width), int(height)
    return DEFAULT_BOX, DEFAULT_BOX


def card(row: dict[str, Any], references: list[Reference]) -> Card:
    """The card of a catalog row: its thumbnail (else the original) and its references."""
    asset_id = row["asset_id"]
    thumb = thumbnail_index(row)
    if thumb is None:
        width, height = _size(row.get("size"))
        image = Image(f"/a/{asset_id}/original", width, height)
    else:
        r = row["renditions"][thumb]
        image = Image(f"/a/{asset_id}/rendition/{thumb}", r["width"], r["height"])
    return Card(
        asset_id=asset_id,
        group=group_key(dict(row.get("partition") or [])),
        row_id=row.get("row_id") or "",
        variant=row.get("variant") or 0,
        prompt=row.get("prompt") or "",
        size=row.get("size") or "",
        quality=row.get("quality") or "",
        cost=format_usd(float(row.get("cost_usd") or 0.0)),
        run_id=row.get("run_id") or "",
        state=row.get("review_state") or "pending",
        note=row.get("review_note") or "",
        reviewed_by=row.get("reviewed_by") or "",
        reviewed_at=_when(row.get("reviewed_at")),
        image=image,
        references=[reference_image(asset_id, r) for r in references],
    )


def reference_image(asset_id: str, ref: Reference) -> Image:
    return Image(
        f"/a/{asset_id}/reference/{ref.index}",
        ref.width or DEFAULT_BOX,
        ref.height or DEFAULT_BOX,
        "reference" if ref.index == 0 else f"reference {ref.index + 1}",
    )


def original_image(row: dict[str, Any]) -> Image:
    """The original at full size, for the detail view (its label: size, format, bytes)."""
    width, height = _size(row.get("size"))
    label = " · ".join(
        x for x in (row.get("size"), row.get("output_format"), _kb(row.get("original_bytes"))) if x
    )
    return Image(f"/a/{row['asset_id']}/original", width, height, label)


def renditions(row: dict[str, Any]) -> list[Image]:
    """Every rendition of a row, for the detail view (its label: name, size, format)."""
    asset_id = row["asset_id"]
    return [
        Image(
            f"/a/{asset_id}/rendition/{i}",
            r.get("width") or DEFAULT_BOX,
            r.get("height") or DEFAULT_BOX,
            f"{r.get('name')} · {r.get('width')}x{r.get('height')} {r.get('format')}"
            f" · {_kb(r.get('bytes'))}",
        )
        for i, r in enumerate(row.get("renditions") or [])
    ]


def _kb(size: int | None) -> str:
    return "" if size is None else f"{size / 1024:,.0f} KB" if size >= 1024 else f"{size} B"


def metadata(row: dict[str, Any]) -> list[tuple[str, str]]:
    """The manifest's extra columns of a row, as (key, text) pairs."""
    try:
        found = json.loads(row.get("metadata") or "{}")
    except ValueError:
        return []
    if not isinstance(found, dict):
        return []
    return [(str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in found.items()]


def grouped(cards: list[Card]) -> list[tuple[str, list[Card]]]:
    """Cards by partition group, in the order they come (the page is sorted by group)."""
    groups: dict[str, list[Card]] = {}
    for c in cards:
        groups.setdefault(c.group, []).append(c)
    return list(groups.items())


@cache
def static_files() -> dict[str, tuple[bytes, str, str]]:
    """name -> (bytes, content type, short hash) of every static file, read once.

    Served from this dict, so a request path never reaches the filesystem.
    """
    found = {}
    for path in sorted(STATIC.iterdir()):
        kind = STATIC_TYPES.get(path.suffix)
        if kind and path.is_file():
            data = path.read_bytes()
            found[path.name] = (data, kind, hashlib.sha256(data).hexdigest()[:12])
    return found


def static_url(name: str) -> str:
    """`/static/review.js?v=<hash>`: cacheable for good, a new URL when the file changes."""
    return f"/static/{name}?v={static_files()[name][2]}"


@cache
def environment() -> Environment:
    env = html_environment(TEMPLATES)
    env.globals["static"] = static_url
    env.filters["qs"] = lambda params: urlencode(params)
    env.filters["number"] = lambda n: f"{n:,}"
    env.filters["when"] = _when
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)
