"""Bidi isolates for right-to-left text: numbers, prices and LTR words kept in order.

The isolates (U+2066 LRI ... U+2069 PDI) are added here for shaping and
split on by the shaper; they are never part of the text a record shows.
"""

from __future__ import annotations

import unicodedata

LRI, PDI = "\u2066", "\u2069"


def strip_isolates(text: str) -> str:
    """The text without the bidi isolates this package adds (they are not the user's)."""
    return text.replace(LRI, "").replace(PDI, "")


def _is_number_char(ch: str) -> bool:
    return ch.isdigit() or unicodedata.category(ch) == "Sc" or ch in "%+-.,:/\u066b\u066c"


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
