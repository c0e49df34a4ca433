"""The one error overlays raise: that rendition fails, the original and the others stand."""

from __future__ import annotations


class OverlayError(Exception):
    """An overlay that cannot be drawn correctly; that rendition fails, nothing else."""
