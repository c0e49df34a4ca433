"""Overlay layers on renditions: exact text, logos and badges drawn by Pillow, not by the model.

A preset's `overlays` are drawn after the resize and before the encode, from
the asset's manifest columns (`values`). Text is shaped by raqm (HarfBuzz +
FriBiDi): Arabic joined, Hebrew and Arabic right to left, with the language
set from the row's locale. Nothing is wrong silently: text that does not fit
at `min_size`, a character no font of the chain has (checked against each
font's character map, since Pillow draws a box for a missing glyph), raqm or
FriBiDi missing: each raises OverlayError naming the preset, the layer and
the text, and only that rendition fails.

The modules, in the order the data flows: layers (the pydantic models),
content (the text from the columns), locales, bidi (isolates for RTL),
cmap and fonts (chains and coverage), shaping, fit (wrap, auto-fit),
placement (anchors, safe area, mirroring), layout (checked, fitted, placed
text; shared with the plan-time check), draw (one layer), apply
(apply_overlays). The names below are the package's public surface.

No imports from presets.py: it imports this package.
"""

from __future__ import annotations

from assetgen.tasks.renditions.overlays.apply import apply_overlays
from assetgen.tasks.renditions.overlays.bidi import (
    LRI,
    PDI,
    isolate_ltr,
    isolate_numbers,
    strip_isolates,
)
from assetgen.tasks.renditions.overlays.content import blank, resolve_text
from assetgen.tasks.renditions.overlays.errors import OverlayError
from assetgen.tasks.renditions.overlays.fit import REFERENCE_SIZE, fit_size, wrap
from assetgen.tasks.renditions.overlays.fonts import (
    FONT_DIRS,
    chain_for,
    chain_missing,
    check_shaping,
    coverage,
    default_chain,
    font_file_name,
    has_char,
    load_font,
    missing,
)
from assetgen.tasks.renditions.overlays.layers import (
    ANCHORS,
    Anchor,
    BoxLayer,
    ImageLayer,
    Layer,
    Length,
    SafeArea,
    TextLayer,
)
from assetgen.tasks.renditions.overlays.layout import TextLayout, check_glyphs, layout_text
from assetgen.tasks.renditions.overlays.locales import (
    CJK_FACE,
    NO_SPACE_LANGUAGES,
    RTL_LANGUAGES,
    is_rtl,
    language_of,
)
from assetgen.tasks.renditions.overlays.placement import layer_rect, mirrored, safe_rect
from assetgen.tasks.renditions.overlays.shaping import MissingGlyph, Shaper

__all__ = [
    "ANCHORS",
    "CJK_FACE",
    "FONT_DIRS",
    "LRI",
    "NO_SPACE_LANGUAGES",
    "PDI",
    "REFERENCE_SIZE",
    "RTL_LANGUAGES",
    "Anchor",
    "BoxLayer",
    "ImageLayer",
    "Layer",
    "Length",
    "MissingGlyph",
    "OverlayError",
    "SafeArea",
    "Shaper",
    "TextLayer",
    "TextLayout",
    "apply_overlays",
    "blank",
    "chain_for",
    "chain_missing",
    "check_glyphs",
    "check_shaping",
    "coverage",
    "default_chain",
    "fit_size",
    "font_file_name",
    "has_char",
    "is_rtl",
    "isolate_ltr",
    "isolate_numbers",
    "language_of",
    "layer_rect",
    "layout_text",
    "load_font",
    "mirrored",
    "missing",
    "resolve_text",
    "safe_rect",
    "strip_isolates",
    "wrap",
]
