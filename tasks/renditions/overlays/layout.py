"""Text laid out in a layer's box: checked (shaping, glyphs, fit), fitted, placed piece by piece.

Shared by drawing and by the plan-time check (tasks/plan/overlay_check.py),
so `assetgen plan` reports exactly the errors a rendition would fail with.
"""

from __future__ import annotations

from dataclasses import dataclass

from assetgen.tasks.renditions.overlays.errors import OverlayError
from assetgen.tasks.renditions.overlays.fit import fit_size
from assetgen.tasks.renditions.overlays.fonts import (
    chain_for,
    check_shaping,
    coverage,
    load_font,
    needs_glyph,
)
from assetgen.tasks.renditions.overlays.layers import TextLayer
from assetgen.tasks.renditions.overlays.placement import anchor_parts, mirrored
from assetgen.tasks.renditions.overlays.shaping import MissingGlyph, Shaper, segment_length


@dataclass(frozen=True)
class Piece:
    """One run of a line in one font, at its pen position (left end of the baseline)."""

    x: float
    baseline: float
    text: str
    direction: str
    font: str


@dataclass(frozen=True)
class TextLayout:
    size: int
    lines: list[str]
    pieces: list[Piece]
    language: str


def check_glyphs(text: str, chain: list[str], locale: str, where: str) -> None:
    """OverlayError when a character of `text` has no font in the chain (Pillow would
    draw a box), or when RTL text needs two fonts in one run."""
    shaper = Shaper(chain, 0, locale)
    try:
        for spec in chain:
            coverage(spec)
        shaper.segments(text.replace("\n", " "))
    except MissingGlyph as e:
        raise _glyph_error(text, chain, shaper, str(e), where) from None


def _glyph_error(text: str, chain: list[str], shaper: Shaper, ch: str, where: str) -> OverlayError:
    chars = [c for c in text if needs_glyph(c) and shaper.font_for(c) is None]
    if not chars and not ch:
        return OverlayError(
            f"{where}: text {text!r} mixes scripts no single font of the chain has "
            f"(fonts: {', '.join(chain)})"
        )
    shown = ", ".join(f"{c!r} U+{ord(c):04X}" for c in dict.fromkeys(chars or [ch]))
    return OverlayError(
        f"{where}: text {text!r} has characters no font of the chain has: {shown} "
        f"(fonts: {', '.join(chain)})"
    )


def layout_text(
    layer: TextLayer, text: str, rect: tuple[int, int, int, int], locale: str, where: str
) -> TextLayout:
    """The text (isolates already added for RTL) fitted into `rect` and placed, or
    OverlayError naming `where` (row, preset, layer) and the text."""
    check_shaping()
    chain = chain_for(layer, locale)
    check_glyphs(text, chain, locale, where)
    try:
        fitted = fit_size(layer, text, chain, locale, (rect[2] - rect[0], rect[3] - rect[1]))
    except MissingGlyph as e:
        raise _glyph_error(text, chain, Shaper(chain, 0, locale), str(e), where) from None
    if fitted is None:
        raise OverlayError(
            f"{where}: text {text!r} does not fit {rect[2] - rect[0]}x{rect[3] - rect[1]} px "
            f"in {layer.max_lines} line(s) at min_size {layer.min_size}"
        )
    size, lines = fitted
    shaper = Shaper(chain, size, locale)
    step = size * layer.line_spacing
    total = shaper.line_height() + step * (len(lines) - 1)
    v, _ = anchor_parts(layer.anchor)
    x0, y0, x1, y1 = rect
    top = y0 if v == "top" else (y1 - total if v == "bottom" else y0 + (y1 - y0 - total) / 2)
    align = mirrored(layer.align, shaper.rtl)
    # One baseline for every font of the line: the first font's ascent.
    ascent = load_font(chain[0], size).getmetrics()[0]
    pieces: list[Piece] = []
    for n, line in enumerate(lines):
        segs = shaper.segments(line)
        widths = [segment_length(s, size, t, d, shaper.language) for t, d, s in segs]
        line_w = sum(widths)
        if align == "start":
            x = x0
        elif align == "end":
            x = x1 - line_w
        else:
            x = x0 + (x1 - x0 - line_w) / 2
        baseline = top + n * step + ascent
        for (t, d, s), w in zip(segs, widths, strict=True):
            pieces.append(Piece(x, baseline, t, d, s))
            x += w
    return TextLayout(size, lines, pieces, shaper.language)
