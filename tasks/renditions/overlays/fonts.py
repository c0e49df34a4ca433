"""Font chains per locale (Noto by default), glyph coverage and loading; raqm/FriBiDi checks.

Pillow has no font fallback: a chain is an ordered list of font specs
("path" or "path#face" for a collection), and each piece of text is drawn in
the first font that has all its characters.
"""

from __future__ import annotations

import functools
import unicodedata
from bisect import bisect_right
from pathlib import Path

from PIL import ImageFont, features

from assetgen.tasks.renditions.overlays.cmap import cmap_ranges
from assetgen.tasks.renditions.overlays.errors import OverlayError
from assetgen.tasks.renditions.overlays.layers import TextLayer
from assetgen.tasks.renditions.overlays.locales import cjk_face, language_of

FONT_DIRS = (Path("/usr/share/fonts/truetype/noto"), Path("/usr/share/fonts/opentype/noto"))
# The script's own Noto font, by language; Noto Sans and Noto CJK cover the rest.
SCRIPT_FONT = {
    "ar": "NotoSansArabic-Regular.ttf",
    "fa": "NotoSansArabic-Regular.ttf",
    "ur": "NotoSansArabic-Regular.ttf",
    "he": "NotoSansHebrew-Regular.ttf",
    "iw": "NotoSansHebrew-Regular.ttf",
    "yi": "NotoSansHebrew-Regular.ttf",
    "th": "NotoSansThai-Regular.ttf",
    "hi": "NotoSansDevanagari-Regular.ttf",
    "mr": "NotoSansDevanagari-Regular.ttf",
    "ne": "NotoSansDevanagari-Regular.ttf",
}


def _noto(name: str) -> str:
    for d in FONT_DIRS:
        if (d / name).exists():
            return str(d / name)
    return str(FONT_DIRS[0] / name)


def default_chain(locale: str) -> list[str]:
    """Noto fonts for a locale: the script's font, then Noto Sans, then CJK for the rest."""
    lang = language_of(locale)
    cjk = f"{_noto('NotoSansCJK-Regular.ttc')}#{cjk_face(locale)}"
    if lang in ("ja", "zh", "ko"):
        return [cjk, _noto("NotoSans-Regular.ttf")]
    script = SCRIPT_FONT.get(lang)
    chain = [_noto(script)] if script else []
    return [*chain, _noto("NotoSans-Regular.ttf"), cjk]


def chain_for(layer: TextLayer, locale: str) -> list[str]:
    """The layer's fonts for the locale (exact, then language, then `default`), else Noto."""
    for key in (locale, language_of(locale), "default"):
        if key in layer.fonts:
            return layer.fonts[key]
    return default_chain(locale)


def split_spec(spec: str) -> tuple[str, int]:
    path, _, face = spec.partition("#")
    return path, int(face) if face else 0


def font_file_name(spec: str) -> str:
    """A font spec as its file name (and face): "NotoSansCJK-Regular.ttc#2"."""
    path, _, face = spec.partition("#")
    return Path(path).name + (f"#{face}" if face else "")


@functools.lru_cache(maxsize=64)
def coverage(spec: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The font's Unicode cmap as sorted (starts, ends) ranges (formats 4 and 12)."""
    path, face = split_spec(spec)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise OverlayError(f"font {spec}: cannot read: {e}") from None
    return cmap_ranges(data, face, spec)


def needs_glyph(ch: str) -> bool:
    # Format controls (bidi isolates, ZWJ/ZWNJ), variation selectors and
    # line separators are not drawn; HarfBuzz hides them.
    cat = unicodedata.category(ch)
    if cat in ("Cf", "Cc", "Zl", "Zp") or "\ufe00" <= ch <= "\ufe0f":
        return False
    return not ("\U000e0100" <= ch <= "\U000e01ef")


def has_char(spec: str, ch: str) -> bool:
    starts, ends = coverage(spec)
    i = bisect_right(starts, ord(ch)) - 1
    return i >= 0 and ord(ch) <= ends[i]


def missing(spec: str, text: str) -> list[str]:
    return sorted({c for c in text if needs_glyph(c) and not has_char(spec, c)})


def chain_missing(chain: list[str], text: str) -> list[str]:
    """Characters of `text` that no font of the chain has (in order of first use)."""
    return list(
        dict.fromkeys(c for c in text if needs_glyph(c) and not any(has_char(s, c) for s in chain))
    )


@functools.lru_cache(maxsize=512)
def load_font(spec: str, size: int) -> ImageFont.FreeTypeFont:
    path, face = split_spec(spec)
    try:
        return ImageFont.truetype(path, size, index=face, layout_engine=ImageFont.Layout.RAQM)
    except OSError as e:
        raise OverlayError(f"font {spec}: cannot load: {e}") from None


def check_shaping() -> None:
    """raqm with FriBiDi, or OverlayError: without them RTL text comes out wrong, silently."""
    if not features.check("raqm"):
        raise OverlayError("Pillow has no raqm layout: complex scripts cannot be shaped")
    if not features.version("fribidi"):
        raise OverlayError(
            "FriBiDi is missing (Debian: apt-get install libfribidi0): right-to-left text "
            "would come out unjoined and reversed"
        )
