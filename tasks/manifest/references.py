"""Open reference images and masks: can they be read, what are they, what is their hash."""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import fsspec
from PIL import Image, UnidentifiedImageError

# Formats the edits endpoint takes, as Pillow names them.
# MPO is how Pillow names a camera JPEG with a multi-picture header.
ACCEPTED_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "WEBP": "webp"}
# Read at most this much of one file: larger than any model allows, so a
# bigger file is reported as too large without being read whole.
READ_LIMIT = 64 * 1024 * 1024
# The API scales references down anyway; past this a file is more likely a
# decompression bomb than a product photo.
MAX_PIXELS = 64_000_000


@dataclass(frozen=True, slots=True)
class ImageRef:
    """What planning needs to know of one reference image or mask."""

    uri: str
    sha256: str
    format: str
    width: int
    height: int
    has_alpha: bool
    size_bytes: int


def resolve_uri(uri: str, base: str) -> str:
    """A URI as given, or a relative path resolved against the manifest's folder."""
    if "://" in uri or uri.startswith("/"):
        return uri
    if "://" in base:
        protocol, _, path = base.partition("://")
        return f"{protocol}://{posixpath.normpath(posixpath.join(path, uri))}"
    return posixpath.normpath(posixpath.join(base or ".", uri))


def within(uri: str, roots: list[str]) -> bool:
    """True when `uri` (already resolved) lies inside one of `roots` (folders or URL prefixes)."""
    for root in roots:
        if "://" not in uri and "://" not in root:
            uri_n, root_n = os.path.abspath(uri), os.path.abspath(root)
        else:
            uri_n, root_n = _normal_url(uri), _normal_url(root)
        if uri_n == root_n or uri_n.startswith(root_n.rstrip("/") + "/"):
            return True
    return False


def _normal_url(url: str) -> str:
    protocol, sep, path = url.partition("://")
    if not sep:
        return "file://" + os.path.abspath(url)
    if protocol == "file":
        return "file://" + os.path.abspath(path)
    return f"{protocol}://{posixpath.normpath(path)}"


def parent_of(url: str) -> str:
    """The folder part of a path or URL."""
    return url.rsplit("/", 1)[0] if "/" in url else "."


def probe(uri: str) -> ImageRef | str:
    """Read one image; an ImageRef, or the reason it cannot be used."""
    try:
        with fsspec.open(uri, "rb") as f:
            data = f.read(READ_LIMIT + 1)
    except FileNotFoundError:
        return "not found"
    except IsADirectoryError:
        return "is a directory"
    except Exception as e:  # any backend error means the same to the user: unreadable
        return f"cannot be read: {type(e).__name__}: {e}"
    if len(data) > READ_LIMIT:
        return f"is larger than {READ_LIMIT // (1024 * 1024)} MB"
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt, (width, height), mode, info = im.format, im.size, im.mode, im.info
    except Image.DecompressionBombError:
        return "has too many pixels (a decompression bomb?)"
    except (UnidentifiedImageError, OSError, ValueError):
        return "is not a readable image"
    if width * height > MAX_PIXELS:
        return f"is {width}x{height}, more than {MAX_PIXELS // 1_000_000} megapixels"
    if fmt not in ACCEPTED_FORMATS:
        return f"is {fmt}, not png, jpeg or webp"
    return ImageRef(
        uri=uri,
        sha256=hashlib.sha256(data).hexdigest(),
        format=ACCEPTED_FORMATS[fmt],
        width=width,
        height=height,
        has_alpha=mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in info,
        size_bytes=len(data),
    )


class ReferenceCache:
    """Probe each distinct URI once, many at a time."""

    def __init__(self, workers: int = 8) -> None:
        self._workers = workers
        self._known: dict[str, ImageRef | str] = {}

    def fetch(self, uris: Iterable[str]) -> None:
        """Probe every URI not seen before, in parallel."""
        todo = list(dict.fromkeys(u for u in uris if u not in self._known))
        if not todo:
            return
        if len(todo) == 1:
            self._known[todo[0]] = probe(todo[0])
            return
        with ThreadPoolExecutor(min(self._workers, len(todo))) as pool:
            for uri, result in zip(todo, pool.map(probe, todo), strict=True):
                self._known[uri] = result

    def get(self, uri: str) -> ImageRef | str:
        """The probe result for a URI (fetching it if needed)."""
        if uri not in self._known:
            self.fetch([uri])
        return self._known[uri]
