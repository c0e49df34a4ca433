"""Overlay layers on renditions: exact text, logos and badges drawn by Pillow, not by the model.

A preset's `overlays` are drawn after the resize and before the encode, from
the asset's manifest columns (`values`). Text is shaped by raqm (HarfBuzz +
FriBiDi): Arabic joined, Hebrew and Arabic right to left, with the language
set from the row's locale. Nothing is wrong silently: text that does not fit
at `min_size`, a character no font of the chain has (checked against each
font's character map, since Pillow draws a box for a missing glyph), raqm or
FriBiDi missing: each raises OverlayError naming the preset, the layer and
the text, and only that rendition fails.

No imports from presets.py: it imports this module.
"""

from __future__ import annotations

import functools
import io
import re
import struct
import unicodedata
from bisect import bisect_right
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import fsspec
import jinja2
from PIL import Image, ImageColor, ImageDraw, ImageFont, features
from pydantic import BaseModel, ConfigDict, Field, field_validator

FONT_DIRS = (Path("/usr/share/fonts/truetype/noto"), Path("/usr/share/fonts/opentype/noto"))
# NotoSansCJK-*.ttc faces, by locale.
CJK_FACE = {"ja": 0, "ko": 1, "zh-Hans": 2, "zh-Hant": 3, "zh-HK": 4}
RTL_LANGUAGES = {"ar", "he", "iw", "fa", "ur", "ps", "sd", "yi", "dv", "ug", "ckb"}
# Scripts written without spaces between words: a line may break between any two characters.
NO_SPACE_LANGUAGES = {"ja", "zh", "th", "lo", "km", "my"}
LRI, PDI = "\u2066", "\u2069"
# Never at the start of a CJK line (kinsoku, simplified): ideographic comma and full
# stop, full-width punctuation, closing brackets, middle dot, long vowel mark, percent.
CLOSING = "\u3001\u3002\uff0c\uff0e\uff01\uff1f\uff09\u300d\u300f\u3011\u3015\u30fb\u30fc\uff05%"
Anchor = Literal[
    "top-start",
    "top-center",
    "top-end",
    "center-start",
    "center",
    "center-end",
    "bottom-start",
    "bottom-center",
    "bottom-end",
]
ANCHORS: tuple[str, ...] = get_args(Anchor)
# A number <= 1 is a fraction of the rendition's width or height, above 1 pixels.
Length = Annotated[float, Field(ge=0)]


class OverlayError(Exception):
    """An overlay that cannot be drawn correctly; that rendition fails, nothing else."""


# ---------------------------------------------------------------- models


class _Layer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    anchor: Anchor = "top-start"
    inset_x: Length = 0  # from the safe area's edge on the anchor's side
    inset_y: Length = 0
    width: Length = 1.0  # the layer's box; 1.0: the whole safe area
    height: Length = 1.0
    if_column: str | None = Field(None, description="drawn only when this column is non-empty")

    def label(self, index: int) -> str:
        return self.name or f"#{index} ({self.type})"  # type: ignore[attr-defined]


def _check_colour(v: str | None) -> str | None:
    if v is not None:
        try:
            ImageColor.getrgb(v)
        except ValueError as e:
            raise ValueError(f"{v!r} is not a colour (e.g. '#ffffff')") from e
    return v


class TextLayer(_Layer):
    type: Literal["text"] = "text"
    content: str = Field(description="a column name, or a Jinja2 template over columns")
    min_size: int = Field(12, ge=4, le=1000)
    max_size: int = Field(96, ge=4, le=1000)
    max_lines: int = Field(1, ge=1, le=50)
    line_spacing: float = Field(1.15, gt=0.5, le=3)
    align: Literal["start", "center", "end"] = "start"
    colour: str = "#ffffff"
    outline: str | None = None  # stroke colour
    outline_width: float = Field(0.06, ge=0, le=0.5, description="fraction of the size")
    # locale ("ar", "zh-Hans", "default") -> font files ("path" or "path#face"), in order.
    fonts: dict[str, list[str]] = {}

    _c = field_validator("colour", "outline")(classmethod(lambda cls, v: _check_colour(v)))


class ImageLayer(_Layer):
    type: Literal["image"] = "image"
    uri: str


class BoxLayer(_Layer):
    type: Literal["box"] = "box"
    fill: str = "#000000"
    radius: Length = 0

    _c = field_validator("fill")(classmethod(lambda cls, v: _check_colour(v)))


Layer = Annotated[TextLayer | ImageLayer | BoxLayer, Field(discriminator="type")]


class SafeArea(BaseModel):
    """Insets of the area overlays stay inside (fractions <= 1, else pixels)."""

    model_config = ConfigDict(extra="forbid")

    top: Length = 0
    right: Length = 0
    bottom: Length = 0
    left: Length = 0


def _px(v: float, total: int) -> int:
    return round(v * total) if v <= 1 else round(v)


# ---------------------------------------------------------------- locale


def language_of(locale: str) -> str:
    return locale.replace("_", "-").split("-")[0].lower()


def is_rtl(locale: str) -> bool:
    return language_of(locale) in RTL_LANGUAGES


def _cjk_face(locale: str) -> int:
    parts = locale.replace("_", "-").split("-")
    lang = parts[0].lower()
    if lang == "zh":
        rest = {p.lower() for p in parts[1:]}
        if "hant" in rest or "tw" in rest or "mo" in rest:
            return CJK_FACE["zh-Hant"]
        if "hk" in rest:
            return CJK_FACE["zh-HK"]
        return CJK_FACE["zh-Hans"]
    return CJK_FACE.get(lang, CJK_FACE["ja"])


def _noto(name: str) -> str:
    for d in FONT_DIRS:
        if (d / name).exists():
            return str(d / name)
    return str(FONT_DIRS[0] / name)


def default_chain(locale: str) -> list[str]:
    """Noto fonts for a locale: the script's font, then Noto Sans, then CJK for the rest."""
    lang = language_of(locale)
    cjk = f"{_noto('NotoSansCJK-Regular.ttc')}#{_cjk_face(locale)}"
    script = {
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
    }.get(lang)
    if lang in ("ja", "zh", "ko"):
        return [cjk, _noto("NotoSans-Regular.ttf")]
    chain = [_noto(script)] if script else []
    return [*chain, _noto("NotoSans-Regular.ttf"), cjk]


def chain_for(layer: TextLayer, locale: str) -> list[str]:
    """The layer's fonts for the locale (exact, then language, then `default`), else Noto."""
    for key in (locale, language_of(locale), "default"):
        if key in layer.fonts:
            return layer.fonts[key]
    return default_chain(locale)


# ---------------------------------------------------------------- fonts


def _split_spec(spec: str) -> tuple[str, int]:
    path, _, face = spec.partition("#")
    return path, int(face) if face else 0


@functools.lru_cache(maxsize=64)
def coverage(spec: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The font's Unicode cmap as sorted (starts, ends) ranges (formats 4 and 12)."""
    path, face = _split_spec(spec)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise OverlayError(f"font {spec}: cannot read: {e}") from None
    return _cmap_ranges(data, face, spec)


def _cmap_ranges(data: bytes, face: int, spec: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    u16 = functools.partial(struct.unpack_from, ">H", data)
    u32 = functools.partial(struct.unpack_from, ">I", data)
    base = 0
    if data[:4] == b"ttcf":
        (count,) = u32(8)
        if face >= count:
            raise OverlayError(f"font {spec}: the collection has {count} faces")
        (base,) = u32(12 + 4 * face)
    (tables,) = u16(base + 4)
    cmap = None
    for i in range(tables):
        rec = base + 12 + 16 * i
        if data[rec : rec + 4] == b"cmap":
            (cmap,) = u32(rec + 8)
    if cmap is None:
        raise OverlayError(f"font {spec}: no cmap table")
    (n,) = u16(cmap + 2)
    best: tuple[int, int] | None = None  # (rank, offset)
    for i in range(n):
        platform, encoding, offset = struct.unpack_from(">HHI", data, cmap + 4 + 8 * i)
        (fmt,) = u16(cmap + offset)
        rank = {(3, 10, 12): 0, (0, 4, 12): 0, (0, 6, 12): 0, (3, 1, 4): 1, (0, 3, 4): 1}.get(
            (platform, encoding, fmt)
        )
        if rank is None and platform == 0 and fmt in (4, 12):
            rank = 2
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, cmap + offset)
    if best is None:
        raise OverlayError(f"font {spec}: no Unicode cmap")
    sub = best[1]
    starts: list[int] = []
    ends: list[int] = []
    (fmt,) = u16(sub)
    if fmt == 12:
        (groups,) = u32(sub + 12)
        for g in range(groups):
            s, e, _ = struct.unpack_from(">III", data, sub + 16 + 12 * g)
            starts.append(s)
            ends.append(e)
    else:  # format 4
        (segx2,) = u16(sub + 6)
        seg = segx2 // 2
        ends_at, starts_at = sub + 14, sub + 16 + segx2
        deltas_at, ranges_at = starts_at + segx2, starts_at + 2 * segx2
        for i in range(seg):
            (end,) = u16(ends_at + 2 * i)
            (start,) = u16(starts_at + 2 * i)
            (delta,) = struct.unpack_from(">h", data, deltas_at + 2 * i)
            (range_offset,) = u16(ranges_at + 2 * i)
            if start == 0xFFFF:
                continue
            if range_offset == 0:
                # glyph = code + delta; a code whose glyph is 0 (.notdef) is missing.
                zero = (-delta) & 0xFFFF
                if start <= zero <= end:
                    if zero > start:
                        starts.append(start)
                        ends.append(zero - 1)
                    if zero < end:
                        starts.append(zero + 1)
                        ends.append(end)
                else:
                    starts.append(start)
                    ends.append(end)
                continue
            for c in range(start, end + 1):
                at = ranges_at + 2 * i + range_offset + 2 * (c - start)
                (glyph,) = u16(at)
                if glyph:
                    starts.append(c)
                    ends.append(c)
    order = sorted(range(len(starts)), key=starts.__getitem__)
    return tuple(starts[i] for i in order), tuple(ends[i] for i in order)


def _needs_glyph(ch: str) -> bool:
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
    return sorted({c for c in text if _needs_glyph(c) and not has_char(spec, c)})


@functools.lru_cache(maxsize=512)
def load_font(spec: str, size: int) -> ImageFont.FreeTypeFont:
    path, face = _split_spec(spec)
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


# ---------------------------------------------------------------- text


_TEMPLATES = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or str(v).strip() == ""


def _is_number_char(ch: str) -> bool:
    return ch.isdigit() or unicodedata.category(ch) == "Sc" or ch in "%+-.,:/\u066b\u066c"


_NUMBER = re.compile(r"[^\W_]*\d[\d\s.,:/%+\-\u066b\u066c\u00a0]*")


def isolate_numbers(text: str) -> str:
    """Numbers and prices inside RTL text, in LTR isolates (U+2066 ... U+2069).

    A number keeps its separators and grouping spaces ("1 299,50") and a sign
    written against it ("$24.99", "89₪"). Arabic-Indic digits are left alone.
    """
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if (ch.isascii() and ch.isdigit()) or (
            unicodedata.category(ch) == "Sc" and _digit_near(text, i)
        ):
            j = i
            while j < n and (
                _is_number_char(text[j]) or (text[j] in " \u00a0" and _continues(text, j))
            ):
                j += 1
            while j > i and text[j - 1] in " \u00a0":
                j -= 1
            out.append(LRI + text[i:j] + PDI)
            i = j
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def isolate_ltr(text: str) -> str:
    """LTR words (a brand name) and numbers inside RTL text, each run in an LTR isolate.

    The same order the bidi algorithm gives them, but as separate pieces:
    Pillow has no font fallback, so each piece can get its own font.
    """
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if unicodedata.bidirectional(text[i]) == "L":
            j = last = i
            while j < n:
                b = unicodedata.bidirectional(text[j])
                if b in ("L", "EN"):
                    last = j
                elif b not in ("WS", "CS", "ES", "ET") and text[j] not in "'&":
                    break
                j += 1
            out.append(LRI + text[i : last + 1] + PDI)
            i = last + 1
        else:
            j = i
            while j < n and unicodedata.bidirectional(text[j]) != "L":
                j += 1
            out.append(isolate_numbers(text[i:j]))
            i = j
    return "".join(out)


def _digit_near(text: str, i: int) -> bool:
    nxt = text[i + 1 : i + 2]
    return nxt.isascii() and nxt.isdigit()


def _continues(text: str, j: int) -> bool:
    """A space inside a number ("1 299"). A sign after a space stays outside the isolate:
    in RTL text "89 ₪" is read with the sign after (left of) the number."""
    nxt = text[j + 1] if j + 1 < len(text) else ""
    return nxt.isascii() and nxt.isdigit()


def resolve_text(layer: TextLayer, values: dict[str, Any]) -> str:
    """The layer's text: a column's value, or its Jinja2 template rendered over the columns."""
    content = layer.content
    if _COLUMN.match(content):
        if content not in values:
            raise KeyError(f"no column {content!r}")
        v = values[content]
        return "" if _blank(v) else str(v)
    try:
        return _template(content).render(**values)
    except jinja2.UndefinedError as e:
        raise KeyError(str(e)) from None


@functools.lru_cache(maxsize=256)
def _template(source: str) -> jinja2.Template:
    return _TEMPLATES.from_string(source)


def _tokens(text: str, locale: str) -> list[str]:
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


class _Shaper:
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

    def segments(self, line: str) -> list[tuple[str, str, str]]:
        # The fonts do not depend on the size: one answer for every size tried.
        return _segments(tuple(self.chain), self.locale, line)

    def _segments(self, line: str) -> list[tuple[str, str, str]]:
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

    def _by_font(self, text: str, direction: str) -> list[tuple[str, str, str]]:
        runs: list[list[str]] = []
        for ch in text:
            spec = next((s for s in self.chain if not _needs_glyph(ch) or has_char(s, ch)), None)
            if spec is None:
                raise _Missing(ch)
            if runs and (runs[-1][1] == spec or not _needs_glyph(ch) or ch.isspace()):
                runs[-1][0] += ch
            else:
                runs.append([ch, spec])
        if direction == "rtl":
            if any(_strong_ltr(r[0]) for r in runs):
                raise _Missing("")  # mixed fonts in RTL text: not without a bidi pass
            runs.reverse()
        return [(t, direction, s) for t, s in runs]

    def width(self, line: str) -> float:
        return sum(
            _length(spec, self.size, t, d, self.language)
            for t, d, spec in self.segments(line.strip())
        )

    def line_height(self) -> float:
        ascent, descent = load_font(self.chain_font(), self.size).getmetrics()
        return ascent + descent

    def chain_font(self) -> str:
        return self.chain[0]


@functools.lru_cache(maxsize=4096)
def _segments(chain: tuple[str, ...], locale: str, line: str) -> list[tuple[str, str, str]]:
    return _Shaper(list(chain), 0, locale)._segments(line)


@functools.lru_cache(maxsize=8192)
def _length(spec: str, size: int, text: str, direction: str, language: str) -> float:
    return load_font(spec, size).getlength(text, direction=direction, language=language)


def _strong_ltr(text: str) -> bool:
    return any(unicodedata.bidirectional(c) == "L" for c in text)


class _Missing(Exception):
    pass


def wrap(shaper: _Shaper, text: str, max_width: float) -> list[str] | None:
    """Greedy lines no wider than `max_width`; None when a single token is wider."""
    lines: list[str] = []
    current = ""
    for paragraph in text.split("\n"):
        current = ""
        for token in _tokens(paragraph, shaper.locale):
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
        shaper = _Shaper(chain, REFERENCE_SIZE if estimate else size, locale)
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


# ---------------------------------------------------------------- placement


def mirrored(anchor: str, rtl: bool) -> str:
    if not rtl:
        return anchor
    return anchor.replace("start", "\0").replace("end", "start").replace("\0", "end")


def _anchor_parts(anchor: str) -> tuple[str, str]:
    if anchor == "center":
        return "center", "center"
    v, h = anchor.split("-")
    return v, h


def safe_rect(size: tuple[int, int], safe: SafeArea) -> tuple[int, int, int, int]:
    w, h = size
    return (_px(safe.left, w), _px(safe.top, h), w - _px(safe.right, w), h - _px(safe.bottom, h))


def layer_rect(
    layer: _Layer, size: tuple[int, int], safe: tuple[int, int, int, int], rtl: bool
) -> tuple[int, int, int, int]:
    """The layer's box inside the safe area, placed by its (mirrored) anchor and insets."""
    w, h = size
    sl, st, sr, sb = safe
    sw, sh = sr - sl, sb - st
    bw = min(_px(layer.width, sw), sw)
    bh = min(_px(layer.height, sh), sh)
    ix, iy = _px(layer.inset_x, w), _px(layer.inset_y, h)
    v, hz = _anchor_parts(mirrored(layer.anchor, rtl))
    if hz == "start":
        x = sl + ix
    elif hz == "end":
        x = sr - ix - bw
    else:
        x = sl + (sw - bw) // 2
    if v == "top":
        y = st + iy
    elif v == "bottom":
        y = sb - iy - bh
    else:
        y = st + (sh - bh) // 2
    x = min(max(x, sl), sr - bw)
    y = min(max(y, st), sb - bh)
    return x, y, x + bw, y + bh


# ---------------------------------------------------------------- drawing


def _rgba(colour: str) -> tuple[int, int, int, int]:
    c = ImageColor.getrgb(colour)
    return (*c[:3], c[3] if len(c) == 4 else 255)  # type: ignore[return-value]


def _draw_text(
    im: Image.Image,
    layer: TextLayer,
    text: str,
    rect: tuple[int, int, int, int],
    locale: str,
    where: str,
) -> None:
    check_shaping()
    chain = chain_for(layer, locale)
    shaper = _Shaper(chain, layer.min_size, locale)
    try:
        for spec in chain:
            coverage(spec)
        shaper.segments(text.replace("\n", " "))
        fitted = fit_size(layer, text, chain, locale, (rect[2] - rect[0], rect[3] - rect[1]))
    except _Missing as e:
        chars = [c for c in text if _needs_glyph(c) and shaper.font_for(c) is None]
        if not chars and not str(e):
            raise OverlayError(
                f"{where}: text {text!r} mixes scripts no single font of the chain has "
                f"(fonts: {', '.join(chain)})"
            ) from None
        shown = ", ".join(f"{c!r} U+{ord(c):04X}" for c in dict.fromkeys(chars or [str(e)]))
        raise OverlayError(
            f"{where}: text {text!r} has characters no font of the chain has: {shown} "
            f"(fonts: {', '.join(chain)})"
        ) from None
    if fitted is None:
        raise OverlayError(
            f"{where}: text {text!r} does not fit {rect[2] - rect[0]}x{rect[3] - rect[1]} px "
            f"in {layer.max_lines} line(s) at min_size {layer.min_size}"
        )
    size, lines = fitted
    shaper = _Shaper(chain, size, locale)
    rtl = shaper.rtl
    step = size * layer.line_spacing
    total = shaper.line_height() + step * (len(lines) - 1)
    v, _ = _anchor_parts(layer.anchor)
    x0, y0, x1, y1 = rect
    top = y0 if v == "top" else (y1 - total if v == "bottom" else y0 + (y1 - y0 - total) / 2)
    align = mirrored(layer.align, rtl)
    fill = _rgba(layer.colour)
    stroke = round(size * layer.outline_width) if layer.outline else 0
    stroke_fill = _rgba(layer.outline) if layer.outline else None
    draw = ImageDraw.Draw(im)
    for n, line in enumerate(lines):
        segs = shaper.segments(line)
        widths = [_length(s, size, t, d, shaper.language) for t, d, s in segs]
        line_w = sum(widths)
        if align == "start":
            x = x0
        elif align == "end":
            x = x1 - line_w
        else:
            x = x0 + (x1 - x0 - line_w) / 2
        # One baseline for every font of the line: the first font's ascent.
        baseline = top + n * step + load_font(chain[0], size).getmetrics()[0]
        for (t, d, s), w in zip(segs, widths, strict=True):
            draw.text(
                (x, baseline),
                t,
                font=load_font(s, size),
                fill=fill,
                anchor="ls",
                direction=d,
                language=shaper.language,
                stroke_width=stroke,
                stroke_fill=stroke_fill,
            )
            x += w


@functools.lru_cache(maxsize=32)
def _logo(uri: str) -> Image.Image:
    try:
        with fsspec.open(uri, "rb") as f:
            data = f.read()
        im = Image.open(io.BytesIO(data))
        im.load()
    except (OSError, ValueError) as e:
        raise OverlayError(f"image {uri}: cannot read: {e}") from None
    return im.convert("RGBA")


@functools.lru_cache(maxsize=128)
def _fitted_logo(uri: str, box: tuple[int, int]) -> Image.Image:
    im = _logo(uri)
    s = min(box[0] / im.width, box[1] / im.height)
    size = (max(1, round(im.width * s)), max(1, round(im.height * s)))
    return im if size == im.size else im.resize(size, Image.Resampling.LANCZOS)


def _composite(im: Image.Image, tile: Image.Image, pos: tuple[int, int]) -> None:
    """`tile` (RGBA) over `im` at `pos`: RGB images are only touched under the tile."""
    if im.mode == "RGBA":
        im.alpha_composite(tile, pos)
    else:
        im.paste(tile, pos, tile)


def _draw_image(
    im: Image.Image, layer: ImageLayer, rect: tuple[int, int, int, int], rtl: bool
) -> None:
    x0, y0, x1, y1 = rect
    logo = _fitted_logo(layer.uri, (x1 - x0, y1 - y0))
    v, h = _anchor_parts(mirrored(layer.anchor, rtl))
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
    _composite(im, logo, (x, y))


def _draw_box(im: Image.Image, layer: BoxLayer, rect: tuple[int, int, int, int]) -> None:
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h <= 0:
        return
    fill = _rgba(layer.fill)
    radius = _px(layer.radius, min(w, h)) if layer.radius <= 1 else round(layer.radius)
    tile = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    ImageDraw.Draw(tile).rounded_rectangle((0, 0, w - 1, h - 1), radius=radius, fill=fill)
    _composite(im, tile, (x0, y0))


def apply_overlays(
    image: Image.Image,
    preset_name: str,
    layers: list[Any],
    safe_area: SafeArea,
    values: dict[str, Any] | None,
    locale_column: str = "locale",
    row: str | None = None,
) -> Image.Image:
    """The image with `layers` drawn in order; OverlayError when one cannot be drawn right."""
    values = values or {}
    locale = str(values.get(locale_column) or "en-US").strip() or "en-US"
    rtl = is_rtl(locale)
    im = image.copy() if image.mode in ("RGB", "RGBA") else image.convert("RGB")
    safe = safe_rect(im.size, safe_area)
    who = f"row {row}, " if row else ""
    for i, layer in enumerate(layers):
        where = f"{who}preset {preset_name!r}, layer {layer.label(i)}"
        if layer.if_column is not None and _blank(values.get(layer.if_column)):
            continue
        rect = layer_rect(layer, im.size, safe, rtl)
        if isinstance(layer, TextLayer):
            try:
                text = resolve_text(layer, values)
            except KeyError as e:
                raise OverlayError(f"{where}: {e.args[0]}") from None
            except jinja2.TemplateError as e:
                raise OverlayError(f"{where}: template {layer.content!r}: {e}") from None
            if rtl:
                text = isolate_ltr(text)
            if text.strip():
                _draw_text(im, layer, text, rect, locale, where)
        elif isinstance(layer, ImageLayer):
            try:
                _draw_image(im, layer, rect, rtl)
            except OverlayError as e:
                raise OverlayError(f"{where}: {e}") from None
        else:
            _draw_box(im, layer, rect)
    return im
