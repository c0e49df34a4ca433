"""Publish keys: a layout template filled from an asset's data, every key checked.

Keys are made of user data (row ids, partition values, metadata), so each
value is checked as one path segment and each key as a whole before anything
is copied. Unsafe values are refused, not encoded: a key is what a person
reads in the bucket, and the feed's URLs percent-encode it (`url_of`). Refused:
an empty value, `.` or `..`, a `/` or `\\` inside a value, control and
invisible format characters (bidi overrides, zero-width spaces, NUL...),
leading or trailing spaces, a segment over 255 bytes or a key over 1024
(S3's limit), and the names the publish keeps for itself (the feed, its
manifest).
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

FEED_CSV = "feed.csv"
FEED_JSONL = "feed.jsonl"
MANIFEST = ".assetgen-publish.json"
RESERVED = {FEED_CSV, FEED_JSONL}
RESERVED_PREFIX = ".assetgen"
# Variables every file has; partition keys, then metadata columns, come after them.
BUILTINS = ("partition", "row_id", "variant", "rendition", "ext", "asset_id")
PARTITION = "partition"
MAX_SEGMENT_BYTES = 255
MAX_KEY_BYTES = 1024
# Control, format (U+200B, U+202E, BOM...), surrogate, line and paragraph separators.
_ODD = {"Cc", "Cf", "Cs", "Zl", "Zp"}


class BadLayout(ValueError):
    """A layout template that cannot make safe keys for any asset."""


class BadKey(ValueError):
    """A key of one asset's file that is refused; the message names asset, key and reason."""

    def __init__(self, asset_id: str, key: str, reason: str) -> None:
        super().__init__(f"asset {asset_id}: key {key!r}: {reason}")
        self.asset_id, self.key, self.reason = asset_id, key, reason


@dataclass(frozen=True)
class Layout:
    """A parsed template: per segment, its literal text and variables in order."""

    text: str
    segments: tuple[tuple[tuple[str, str | None], ...], ...]  # ((literal, field|None), ...)

    @property
    def variables(self) -> list[str]:
        return [f for seg in self.segments for _, f in seg if f is not None]


def parse_layout(text: str) -> Layout:
    """Check the template's syntax and that it makes a safe key from safe values."""
    if not text or not text.strip():
        raise BadLayout("the layout is empty")
    segments = []
    for part in text.split("/"):
        try:
            parsed = list(string.Formatter().parse(part))
        except ValueError as e:
            raise BadLayout(f"layout {text!r}: {e}") from None
        items: list[tuple[str, str | None]] = []
        for literal, field, spec, conversion in parsed:
            if field is not None:
                if not field.strip():
                    raise BadLayout(f"layout {text!r}: an empty {{}} names no variable")
                if spec or conversion:
                    raise BadLayout(
                        f"layout {text!r}: {{{field}}} has a format or conversion; "
                        "variables are plain {name}"
                    )
            items.append((literal, field))
        fields = [f for _, f in items if f is not None]
        if PARTITION in fields and (len(items) != 1 or items[0][0]):
            raise BadLayout(
                f"layout {text!r}: {{partition}} is a path of its own (key=value/...): "
                "it must be a whole segment, between slashes"
            )
        segments.append(tuple(items))
    layout = Layout(text, tuple(segments))
    # Every variable a plain word: what is left must be a safe key on its own.
    trial = _render(layout, lambda name: "x" if name != PARTITION else "k=v")
    problem = key_problem(trial)
    if problem:
        raise BadLayout(f"layout {text!r}: {problem}")
    return layout


def _render(layout: Layout, value: Any) -> str:
    parts = []
    for segment in layout.segments:
        if len(segment) == 1 and segment[0] == ("", PARTITION):
            path = value(PARTITION)
            if path:  # no partition: the segment is left out, not left empty
                parts.append(path)
            continue
        parts.append("".join(lit + (value(f) if f is not None else "") for lit, f in segment))
    return "/".join(parts)


def value_problem(text: str) -> str | None:
    """Why `text` cannot be one segment of a key, or None."""
    if text == "":
        return "is empty"
    if text in (".", ".."):
        return f"is {text!r}, which would leave its folder"
    if "/" in text or "\\" in text:
        return "has a slash or backslash, which would make a path of it"
    odd = next((c for c in text if unicodedata.category(c) in _ODD), None)
    if odd is not None:
        return f"has the control or invisible character U+{ord(odd):04X}"
    if text != text.strip():
        return "begins or ends with a space"
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
        return f"is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def key_problem(key: str) -> str | None:
    """Why `key` cannot be a file's key inside the destination, or None."""
    if not key:
        return "is empty"
    if key.startswith("/"):
        return "is absolute (starts with '/')"
    if "\\" in key:
        return "has a backslash"
    for segment in key.split("/"):
        if segment == "":
            return "has an empty segment ('//' or a trailing '/')"
        problem = value_problem(segment)
        if problem:
            return f"segment {segment!r} {problem}"
        if segment.startswith(RESERVED_PREFIX):
            return f"segment {segment!r}: names beginning {RESERVED_PREFIX!r} are the publish's own"
    if key in RESERVED:
        return f"is the feed's own name ({key})"
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return f"is longer than {MAX_KEY_BYTES} bytes"
    return None


def _text(value: Any) -> str | None:
    """A variable's value as text; None for a value that is none or not a single one."""
    if value is None or isinstance(value, list | dict):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def make_key(
    layout: Layout,
    asset_id: str,
    builtins: Mapping[str, Any],
    partition: Mapping[str, str],
    metadata: Mapping[str, Any],
) -> str:
    """The key of one file: builtins first, then partition keys, then metadata columns."""

    def value(name: str) -> str:
        if name == PARTITION:
            pieces = []
            for k, v in partition.items():
                for what, text in (("key", k), ("value", v)):
                    problem = value_problem(str(text))
                    if problem:
                        raise BadKey(asset_id, layout.text, f"partition {what} {text!r} {problem}")
                pieces.append(f"{k}={v}")
            return "/".join(pieces)
        if name in builtins:
            found, source = builtins[name], name
        elif name in partition:
            found, source = partition[name], f"partition key {name!r}"
        elif name in metadata:
            found, source = metadata[name], f"metadata column {name!r}"
        else:
            raise BadKey(
                asset_id,
                layout.text,
                f"{{{name}}} is no variable of this asset (known: "
                f"{', '.join([*BUILTINS, *partition, *metadata])})",
            )
        text = _text(found)
        if text is None:
            raise BadKey(asset_id, layout.text, f"{source} has no single value ({found!r})")
        problem = value_problem(text)
        if problem:
            raise BadKey(asset_id, layout.text, f"{source} {text!r} {problem}")
        return text

    key = _render(layout, value)
    problem = key_problem(key)
    if problem:
        raise BadKey(asset_id, key, problem)
    return key


def collisions(files: Iterable[tuple[str, str, str]]) -> list[str]:
    """Problems among (key, asset_id, rendition) triples: two files on one key (also keys
    that differ only in Unicode normalization), or a key that is another's folder."""
    problems = []
    seen: dict[str, tuple[str, str, str]] = {}
    for key, asset_id, rendition in files:
        norm = unicodedata.normalize("NFC", key)
        if norm in seen:
            other_key, other_asset, other_rendition = seen[norm]
            same = "" if other_key == key else f" (as {other_key!r}, the same text)"
            problems.append(
                f"key {key!r}: {rendition} of asset {asset_id} and {other_rendition} of asset "
                f"{other_asset} would both land on it{same}"
            )
        else:
            seen[norm] = (key, asset_id, rendition)
    folders = {}
    for norm, (key, asset_id, _) in seen.items():
        parts = norm.split("/")
        for n in range(1, len(parts)):
            folders.setdefault("/".join(parts[:n]), (key, asset_id))
    for norm, (key, asset_id, _) in seen.items():
        if norm in folders:
            child, child_asset = folders[norm]
            problems.append(
                f"key {key!r} of asset {asset_id} is also the folder of {child!r} "
                f"(asset {child_asset})"
            )
    return problems


# Left as they are in a URL's path: slashes, and what hive-style names use. `+` is encoded:
# S3's web endpoints read a `+` in a path as a space.
URL_SAFE = "/=:@,"


def url_of(base: str, key: str) -> str:
    """`base` + the key percent-encoded (UTF-8), its slashes and `=` kept."""
    return f"{base.rstrip('/')}/{quote(key, safe=URL_SAFE)}"
