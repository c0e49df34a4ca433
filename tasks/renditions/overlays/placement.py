"""Where a layer goes: the safe area, the layer's box by anchor and insets, RTL mirroring."""

from __future__ import annotations

from assetgen.tasks.renditions.overlays.layers import SafeArea, _Layer, px


def mirrored(anchor: str, rtl: bool) -> str:
    if not rtl:
        return anchor
    return anchor.replace("start", "\0").replace("end", "start").replace("\0", "end")


def anchor_parts(anchor: str) -> tuple[str, str]:
    if anchor == "center":
        return "center", "center"
    v, h = anchor.split("-")
    return v, h


def safe_rect(size: tuple[int, int], safe: SafeArea) -> tuple[int, int, int, int]:
    w, h = size
    return (px(safe.left, w), px(safe.top, h), w - px(safe.right, w), h - px(safe.bottom, h))


def layer_rect(
    layer: _Layer, size: tuple[int, int], safe: tuple[int, int, int, int], rtl: bool
) -> tuple[int, int, int, int]:
    """The layer's box inside the safe area, placed by its (mirrored) anchor and insets."""
    w, h = size
    sl, st, sr, sb = safe
    sw, sh = sr - sl, sb - st
    bw = min(px(layer.width, sw), sw)
    bh = min(px(layer.height, sh), sh)
    ix, iy = px(layer.inset_x, w), px(layer.inset_y, h)
    v, hz = anchor_parts(mirrored(layer.anchor, rtl))
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
