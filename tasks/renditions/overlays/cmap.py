"""A font's character map read from its file: which code points it has a glyph for.

Pillow draws a box (.notdef) for a character the font lacks and says nothing,
so coverage is read from the cmap table itself (formats 4 and 12, in a
.ttf/.otf or one face of a .ttc collection), without another dependency.
"""

from __future__ import annotations

import functools
import struct

from assetgen.tasks.renditions.overlays.errors import OverlayError


def cmap_ranges(data: bytes, face: int, spec: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
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
