"""Drawing one layer onto the rendition: shaped text, a logo with its alpha, a box.

Each drawer returns what it drew (for the `drawn` records of apply_overlays).
"""

from __future__ import annotations

import functools
import hashlib
import io
from math import ceil
from typing import Any

import fsspec
from PIL import Image, ImageColor, ImageDraw, ImageFilter

from assetgen.tasks.renditions.overlays.bidi import strip_isolates
from assetgen.tasks.renditions.overlays.errors import OverlayError
from assetgen.tasks.renditions.overlays.fonts import load_font
from assetgen.tasks.renditions.overlays.layers import BoxLayer, ImageLayer, TextLayer, px
from assetgen.tasks.renditions.overlays.layout import TextLayout, layout_text
from assetgen.tasks.renditions.overlays.placement import anchor_parts, mirrored


def _rgba(colour: str) -> tuple[int, int, int, int]:
    c = ImageColor.getrgb(colour)
    return (*c[:3], c[3] if len(c) == 4 else 255)  # type: ignore[return-value]


def draw_text(
    im: Image.Image,
    layer: TextLayer,
    text: str,
    rect: tuple[int, int, int, int],
    locale: str,
    where: str,
) -> dict[str, Any]:
    """Draw the text; return what was drawn: the fitted size, the lines, the fonts used."""
    laid = layout_text(layer, text, rect, locale, where)
    size = laid.size
    stroke = round(size * layer.outline_width) if layer.outline else 0
    if layer.shadow:
        _draw_shadow(im, layer, laid, rect, stroke)
    draw = ImageDraw.Draw(im)
    fill = _rgba(layer.colour)
    stroke_fill = _rgba(layer.outline) if layer.outline else None
    for g in laid.pieces:
        draw.text(
            (g.x, g.baseline),
            g.text,
            font=load_font(g.font, size),
            fill=fill,
            anchor="ls",
            direction=g.direction,
            language=laid.language,
            stroke_width=stroke,
            stroke_fill=stroke_fill,
        )
    return {
        "size": size,
        "lines": [strip_isolates(line) for line in laid.lines],
        "fonts": list(dict.fromkeys(g.font for g in laid.pieces)),
    }


def _draw_shadow(
    im: Image.Image,
    layer: TextLayer,
    laid: TextLayout,
    rect: tuple[int, int, int, int],
    stroke: int,
) -> None:
    """The text's silhouette, offset and blurred, in the shadow colour, under the text.

    Drawn on a tile around the layer's box only (a blur of the whole banner
    would cost more than the rest of the overlay); the tile's margin holds
    the offset, the stroke and three blur radii, where a Gaussian has faded.
    """
    size = laid.size
    dx, dy = (round(o * size) for o in layer.shadow_offset)
    blur = layer.shadow_blur * size
    margin = abs(dx) + abs(dy) + stroke + ceil(3 * blur) + size // 4
    left, top = rect[0] - margin, rect[1] - margin
    mask = Image.new("L", (rect[2] - rect[0] + 2 * margin, rect[3] - rect[1] + 2 * margin), 0)
    draw = ImageDraw.Draw(mask)
    for g in laid.pieces:
        draw.text(
            (g.x - left + dx, g.baseline - top + dy),
            g.text,
            font=load_font(g.font, size),
            fill=255,
            anchor="ls",
            direction=g.direction,
            language=laid.language,
            stroke_width=stroke,
            stroke_fill=255,
        )
    if blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(blur))
    colour = _rgba(layer.shadow)  # type: ignore[arg-type]
    # The colour's own alpha scales the silhouette's: "#00000080" is a half shadow.
    alpha = mask if colour[3] == 255 else mask.point(lambda v: v * colour[3] // 255)
    tile = Image.new("RGBA", mask.size, colour)
    tile.putalpha(alpha)
    composite(im, tile, (left, top))


@functools.lru_cache(maxsize=32)
def logo_file(uri: str) -> tuple[bytes, str]:
    """The logo's bytes as read and their MIME type: C2PA signing places these very bytes
    as the rendition's ingredient (cached, so they are the bytes that were drawn)."""
    try:
        with fsspec.open(uri, "rb") as f:
            data = f.read()
        with Image.open(io.BytesIO(data)) as im:
            mime = Image.MIME.get(im.format or "", "application/octet-stream")
    except (OSError, ValueError) as e:
        raise OverlayError(f"image {uri}: cannot read: {e}") from None
    return data, mime


@functools.lru_cache(maxsize=32)
def logo_image(uri: str) -> tuple[Image.Image, str]:
    """The logo (RGBA) and the sha256 of its bytes, which provenance records."""
    data = logo_file(uri)[0]
    try:
        im = Image.open(io.BytesIO(data))
        im.load()
    except (OSError, ValueError) as e:
        raise OverlayError(f"image {uri}: cannot read: {e}") from None
    return im.convert("RGBA"), hashlib.sha256(data).hexdigest()


@functools.lru_cache(maxsize=128)
def fitted_logo(uri: str, box: tuple[int, int]) -> Image.Image:
    im = logo_image(uri)[0]
    s = min(box[0] / im.width, box[1] / im.height)
    size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
    return im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)


def composite(im: Image.Image, tile: Image.Image, pos: tuple[int, int]) -> None:
    """`tile` (RGBA) over `im` at `pos`: RGB images are only touched under the tile.

    The part of the tile outside the image is cut off first: alpha_composite
    refuses a negative position.
    """
    x, y = pos
    if x < 0 or y < 0 or x + tile.width > im.width or y + tile.height > im.height:
        box = (
            max(0, -x),
            max(0, -y),
            min(tile.width, im.width - x),
            min(tile.height, im.height - y),
        )
        if box[0] >= box[2] or box[1] >= box[3]:
            return
        tile = tile.crop(box)
        x, y = x + box[0], y + box[1]
    if im.mode == "RGBA":
        im.alpha_composite(tile, (x, y))
    else:
        im.paste(tile, (x, y), tile)


def draw_image(
    im: Image.Image, layer: ImageLayer, rect: tuple[int, int, int, int], rtl: bool
) -> dict[str, Any]:
    """Draw the logo, fitted inside `rect`; return its uri, sha256 and where it landed."""
    x0, y0, x1, y1 = rect
    logo = fitted_logo(layer.uri, (x1 - x0, y1 - y0))
    v, h = anchor_parts(mirrored(layer.anchor, rtl))
    x = (
        x0
        if h == "start"
        else (x1 - logo.width if h == "end" else x0 + (x1 - x0 - logo.width) // 2)
    )
    y = (
        y0
        if v == "top"
        else (y1 - logo.height if v == "bottom" else y0 + (y1 - y0 - logo.height) // 2)
    )
    composite(im, logo, (x, y))
    return {
        "uri": layer.uri,
        "sha256": logo_image(layer.uri)[1],
        "placed_size": [logo.width, logo.height],
        "placed_rect": [x, y, x + logo.width, y + logo.height],
    }


def draw_box(im: Image.Image, layer: BoxLayer, rect: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0:
        return
    fill = _rgba(layer.fill)
    radius = px(layer.radius, min(w, h)) if layer.radius <= 1 else round(layer.radius)
    tile = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    ImageDraw.Draw(tile).rounded_rectangle((0, 0, w - 1, h - 1), radius=radius, fill=fill)
    composite(im, tile, (x0, y0))
