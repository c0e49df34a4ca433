"""Shaped text at one size: each piece of a line in the first font of the chain that has it.

raqm shapes (HarfBuzz + FriBiDi); a line is cut at its LTR isolates in RTL
text so that a number or a Latin brand can take another font than the
Arabic or Hebrew around it, and the pieces are laid out in visual order.
"""

from __future__ import annotations

import functools
import re
import unicodedata

from assetgen.tasks.renditions.overlays.bidi import LRI, PDI
from assetgen.tasks.renditions.overlays.fonts import has_char, load_font, missing, needs_glyph
from assetgen.tasks.renditions.overlays.locales import is_rtl

# (text, direction, font spec), one piece of a line.
Segment = tuple[str, str, str]


class MissingGlyph(Exception):
    """A character no font of the chain has ("" for RTL text mixing fonts); the caller
    turns it into an OverlayError naming the row, preset, layer and text."""


class Shaper:
    """Lines of one text at one size: font chosen per run, widths measured shaped."""

    def __init__(self, chain: list[str], size: int, locale: str) -> None:
        self.chain = chain
        self.size = size
        self.locale = locale
        self.rtl = is_rtl(locale)
        self.language = locale.replace("_", "-")

    def font_for(self, run: str) -> str | None:
        for spec in self.chain:
            if not missing(spec, run):
                return spec
        return None

    def segments(self, line: str) -> list[Segment]:
        # The fonts do not depend on the size: one answer for every size tried.
        return _segments(tuple(self.chain), self.locale, line)

    def _segments(self, line: str) -> list[Segment]:
        """(text, direction, font spec) in visual order, left to right.

        Pillow has no font fallback: a line is split at its LTR isolates
        (numbers, prices) in RTL text, and each piece gets the first font
        of the chain that has all its characters.
        """
        if self.rtl:
            # A line break inside an isolate leaves it open at the end of
            # one line and closed at the start of the next: both are LTR.
            pattern = f"({LRI}[^{PDI}]*(?:{PDI}|$)|^[^{LRI}]*{PDI})"
            pieces = [p for p in re.split(pattern, line) if p]
            out = []
            for p in pieces:
                ltr = p.startswith(LRI) or p.endswith(PDI)
                text = p.strip(LRI + PDI) if ltr else p
                if not text.strip():
                    continue
                out.append((text, "ltr" if ltr else "rtl"))
            out.reverse()
        else:
            out = [(line, "ltr")]
        result = []
        for text, direction in out:
            spec = self.font_for(text)
            if spec is None:
                result.extend(self._by_font(text, direction))
            else:
                result.append((text, direction, spec))
        return result

    def _by_font(self, text: str, direction: str) -> list[Segment]:
        runs: list[list[str]] = []
        for ch in text:
            spec = next((s for s in self.chain if not needs_glyph(ch) or has_char(s, ch)), None)
            if spec is None:
                raise MissingGlyph(ch)
            if runs and (runs[-1][1] == spec or not needs_glyph(ch) or ch.isspace()):
                runs[-1][0] += ch
            else:
                runs.append([ch, spec])
        if direction == "rtl":
            if any(_strong_ltr(r[0]) for r in runs):
                raise MissingGlyph("")  # mixed fonts in RTL text: not without a bidi pass
            runs.reverse()
        return [(t, direction, s) for t, s in runs]

    def width(self, line: str) -> float:
        return sum(
            segment_length(spec, self.size, t, d, self.language)
            for t, d, spec in self.segments(line.strip())
        )

    def line_height(self) -> float:
        ascent, descent = load_font(self.chain[0], self.size).getmetrics()
        return ascent + descent


@functools.lru_cache(maxsize=4096)
def _segments(chain: tuple[str, ...], locale: str, line: str) -> list[Segment]:
    return Shaper(list(chain), 0, locale)._segments(line)


@functools.lru_cache(maxsize=8192)
def segment_length(spec: str, size: int, text: str, direction: str, language: str) -> float:
    return load_font(spec, size).getlength(text, direction=direction, language=language)


def _strong_ltr(text: str) -> bool:
    return any(unicodedata.bidirectional(c) == "L" for c in text)
