"""Line breaks and auto-fit: the largest size whose wrapped lines fit the layer's box.

Breaks after spaces in space-separated languages, between any two
characters in CJK and Thai (Latin words and numbers kept whole, closing
punctuation kept with what it closes).
"""

from __future__ import annotations

import re

from assetgen.tasks.renditions.overlays.bidi import LRI, PDI
from assetgen.tasks.renditions.overlays.fonts import load_font
from assetgen.tasks.renditions.overlays.layers import TextLayer
from assetgen.tasks.renditions.overlays.locales import NO_SPACE_LANGUAGES, language_of
from assetgen.tasks.renditions.overlays.shaping import Shaper

# Never at the start of a CJK line (kinsoku, simplified): ideographic comma and full
# stop, full-width punctuation, closing brackets, middle dot, long vowel mark, percent.
CLOSING = "\u3001\u3002\uff0c\uff0e\uff01\uff1f\uff09\u300d\u300f\u3011\u3015\u30fb\u30fc\uff05%"


def tokens(text: str, locale: str) -> list[str]:
    """Break opportunities: after spaces; between any two characters of CJK/Thai."""
    if language_of(locale) in NO_SPACE_LANGUAGES:
        out: list[str] = []
        for ch in text:
            # Latin words and numbers inside CJK text stay whole; closing
            # punctuation stays with what it closes.
            if out and (
                (
                    ch.isascii()
                    and ch.isalnum()
                    and out[-1][-1:].isascii()
                    and out[-1][-1:].isalnum()
                )
                or ch in CLOSING
                or (ch in LRI + PDI or out[-1][-1:] == LRI)
            ):
                out[-1] += ch
            else:
                out.append(ch)
        return out
    return re.findall(r"\S+\s*|\s+", text)


def wrap(shaper: Shaper, text: str, max_width: float) -> list[str] | None:
    """Greedy lines no wider than `max_width`; None when a single token is wider."""
    lines: list[str] = []
    current = ""
    for paragraph in text.split("\n"):
        current = ""
        for token in tokens(paragraph, shaper.locale):
            candidate = current + token
            if shaper.width(candidate) <= max_width:
                current = candidate
                continue
            if not current.strip():
                return None
            lines.append(current.strip())
            current = token.lstrip()
            if shaper.width(current) > max_width:
                return None
        lines.append(current.strip())
    return [line for line in lines if line] or [""]


REFERENCE_SIZE = 100  # token widths measured once at this size, scaled for the search


def fit_size(
    layer: TextLayer, text: str, chain: list[str], locale: str, box: tuple[int, int]
) -> tuple[int, list[str]] | None:
    """The largest size in [min_size, max_size] whose lines fit the box; None: none fits.

    The search runs on scaled widths (shaped once at REFERENCE_SIZE); the
    answer is then checked with widths shaped at its own size, and moved up
    or down while that disagrees: the size returned fits, one more does not.
    """
    lo, hi = layer.min_size, max(layer.min_size, layer.max_size)

    def fits(size: int, estimate: bool) -> list[str] | None:
        shaper = Shaper(chain, REFERENCE_SIZE if estimate else size, locale)
        scale = size / REFERENCE_SIZE if estimate else 1.0
        lines = wrap(shaper, text, box[0] / scale)
        if lines is None or len(lines) > layer.max_lines:
            return None
        ascent, descent = load_font(chain[0], size).getmetrics()
        height = ascent + descent + size * layer.line_spacing * (len(lines) - 1)
        return lines if height <= box[1] else None

    a, b = lo, hi
    if fits(a, True) is None:
        guess = a
    else:
        while a < b:
            mid = (a + b + 1) // 2
            if fits(mid, True) is not None:
                a = mid
            else:
                b = mid - 1
        guess = a
    size = guess
    lines = fits(size, False)
    if lines is not None:
        while size < hi and (more := fits(size + 1, False)) is not None:
            size, lines = size + 1, more
        return size, lines
    while size > lo:
        size -= 1
        lines = fits(size, False)
        if lines is not None:
            return size, lines
    return None
