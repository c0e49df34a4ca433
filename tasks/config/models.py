"""What each image model accepts, read from configs/models.yaml."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from assetgen.tasks.config import CONFIG_DIR
from assetgen.tasks.config.base import (
    ConfigError,
    StrictModel,
    format_validation_error,
    load_yaml,
)

_SIZE_RE = re.compile(r"^(\d{1,5})x(\d{1,5})$")
# An image in a JSON edit body is a data URL of at most 20,971,520 characters
# (ImageRefParam.image_url, openapi.json of 2026-08-21): base64 of this many
# bytes, with room for the `data:image/...;base64,` prefix.
JSON_IMAGE_MAX_BYTES = (20_971_520 - 64) // 4 * 3


class FlexibleSizes(StrictModel):
    """Bounds for models that take any WIDTHxHEIGHT."""

    multiple_of: int
    max_edge: int
    max_aspect_ratio: float
    min_pixels: int
    max_pixels: int
    experimental_above_pixels: int | None = None


class SizeRules(StrictModel):
    standard: list[str]
    flexible: FlexibleSizes | None = None
    # What the JSON form of /v1/images/edits takes (batch lines, and online
    # edits that set `moderation`): the description enumerates these only.
    json_edit: list[str] = ["auto", "1024x1024", "1536x1024", "1024x1536"]


class ModelCaps(StrictModel):
    """One model's accepted parameters and limits."""

    snapshots: list[str] = []
    deprecated: bool = False
    shut_down: date | None = None  # the API no longer serves it: rows are rejected
    generations: bool = True  # False: edits only (rows need reference images)
    moderation: list[str] = []  # values of `moderation` it takes; empty: none
    sizes: SizeRules
    qualities: list[str]
    output_formats: list[str]
    backgrounds: list[str]
    transparent_background: bool
    max_n: int
    max_prompt_chars: int
    max_reference_images: int
    max_reference_bytes: int
    max_mask_bytes: int
    input_fidelity: bool


def load_model_table(path: str | Path = CONFIG_DIR / "models.yaml") -> dict[str, ModelCaps]:
    """Model name (and each snapshot name) to its capabilities."""
    raw = load_yaml(path).get("models") or {}
    table: dict[str, ModelCaps] = {}
    for name, spec in raw.items():
        try:
            caps = ModelCaps.model_validate(spec)
        except ValidationError as e:
            raise ConfigError(format_validation_error(f"{path} models.{name}", e)) from e
        for alias in [name, *caps.snapshots]:
            table[alias] = caps
    if not table:
        raise ConfigError(f"{path}: no models defined")
    return table


def parse_size(size: str) -> tuple[int, int] | None:
    """`'1536x1024'` to `(1536, 1024)`; None for `auto` or anything else."""
    m = _SIZE_RE.match(size)
    return (int(m[1]), int(m[2])) if m else None


def size_problem(size: str, caps: ModelCaps) -> str | None:
    """Why `size` is not accepted by the model, or None when it is."""
    if size in caps.sizes.standard:
        return None
    flex = caps.sizes.flexible
    allowed = ", ".join(caps.sizes.standard)
    if flex is None:
        return f"size {size!r} not supported by this model; use one of {allowed}"
    dims = parse_size(size)
    if dims is None:
        return f"size {size!r} is not WIDTHxHEIGHT (e.g. 1536x1024) nor one of {allowed}"
    w, h = dims
    long, short = max(w, h), min(w, h)
    if w % flex.multiple_of or h % flex.multiple_of:
        return f"size {size}: width and height must be multiples of {flex.multiple_of}"
    if long > flex.max_edge:
        return f"size {size}: longest edge {long} is over {flex.max_edge}"
    if short == 0 or long / short > flex.max_aspect_ratio:
        return f"size {size}: aspect ratio over {flex.max_aspect_ratio:g}:1"
    pixels = w * h
    if not flex.min_pixels <= pixels <= flex.max_pixels:
        return (
            f"size {size}: {pixels:,} pixels, must be between "
            f"{flex.min_pixels:,} and {flex.max_pixels:,}"
        )
    return None
