"""apply_overlays: a preset's layers drawn in order on a rendition, from the row's columns."""

from __future__ import annotations

from typing import Any

import jinja2
from PIL import Image

from assetgen.tasks.renditions.overlays.bidi import isolate_ltr
from assetgen.tasks.renditions.overlays.content import blank, resolve_text
from assetgen.tasks.renditions.overlays.draw import draw_box, draw_image, draw_text
from assetgen.tasks.renditions.overlays.errors import OverlayError
from assetgen.tasks.renditions.overlays.fonts import font_file_name
from assetgen.tasks.renditions.overlays.layers import ImageLayer, SafeArea, TextLayer
from assetgen.tasks.renditions.overlays.locales import is_rtl
from assetgen.tasks.renditions.overlays.placement import layer_rect, safe_rect


def apply_overlays(
    image: Image.Image,
    preset_name: str,
    layers: list[Any],
    safe_area: SafeArea,
    values: dict[str, Any] | None,
    locale_column: str = "locale",
    row: str | None = None,
    *,
    drawn: list[dict[str, Any]] | None = None,
) -> Image.Image:
    """The image with `layers` drawn in order; OverlayError when one cannot be drawn right.

    `drawn`, when given, gets one JSON-able record per layer actually drawn
    (a conditional layer skipped, or a text that resolves to blank, adds none),
    for the sidecar, the catalog and C2PA: "layer" (name or label), "type",
    "anchor" (as configured; "rtl" says whether start/end were mirrored),
    "rect" (the layer's box [x0, y0, x1, y1] in pixels); text layers add
    "text" (the resolved text, without the bidi isolates added for RTL),
    "size" (fitted px), "lines" (as wrapped, without isolates) and "fonts"
    (file names, "#face" for a collection); image layers "uri", "sha256"
    (of the logo's bytes), "placed_size" [w, h] and "placed_rect"; box
    layers "fill". On OverlayError, records of the layers before it stay.
    """
    values = values or {}
    locale = str(values.get(locale_column) or "en-US").strip() or "en-US"
    rtl = is_rtl(locale)
    im = image.copy() if image.mode in ("RGB", "RGBA") else image.convert("RGB")
    safe = safe_rect(im.size, safe_area)
    who = f"row {row}, " if row else ""
    for i, layer in enumerate(layers):
        where = f"{who}preset {preset_name!r}, layer {layer.label(i)}"
        if layer.if_column is not None and blank(values.get(layer.if_column)):
            continue
        rect = layer_rect(layer, im.size, safe, rtl)
        record: dict[str, Any] = {
            "layer": layer.label(i),
            "type": layer.type,
            "anchor": layer.anchor,
            "rtl": rtl,
            "rect": list(rect),
        }
        if isinstance(layer, TextLayer):
            try:
                text = resolve_text(layer, values)
            except KeyError as e:
                raise OverlayError(f"{where}: {e.args[0]}") from None
            except jinja2.TemplateError as e:
                raise OverlayError(f"{where}: template {layer.content!r}: {e}") from None
            if not text.strip():
                continue
            shown = draw_text(im, layer, isolate_ltr(text) if rtl else text, rect, locale, where)
            shown["fonts"] = [font_file_name(s) for s in shown["fonts"]]
            record.update(text=text, **shown)
        elif isinstance(layer, ImageLayer):
            try:
                record.update(draw_image(im, layer, rect, rtl))
            except OverlayError as e:
                raise OverlayError(f"{where}: {e}") from None
        else:
            draw_box(im, layer, rect)
            record["fill"] = layer.fill
        if drawn is not None:
            drawn.append(record)
    return im
