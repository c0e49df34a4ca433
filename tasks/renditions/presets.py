"""Rendition presets: the shape and encoding of each rendition, read from YAML.

No imports from tasks.config.job: it imports this module.
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from PIL import ImageColor, features
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from assetgen.tasks.config import CONFIG_DIR
from assetgen.tasks.renditions.overlays import Layer, SafeArea

PRESETS_DIR = CONFIG_DIR / "presets"

MAX_SIDE = 16384

# Preset names become file names in the store.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def avif_supported() -> bool:
    """True when this Pillow can encode AVIF."""
    return bool(features.check("avif"))


class Preset(BaseModel):
    """One rendition shape and encoding.

    A box (`width` and `height`) with a `fit`, or a `long_edge`:
      contain  the whole image inside the box, the box's aspect ratio is not kept
      cover    fill the box, cropping around `focal` (fractions of width, height)
      pad      the whole image centred on a box-shaped canvas of `background`
      long_edge  scale so the longer side is this long (fit is ignored)
    Without `upscale` nothing is enlarged: a box larger than the original
    shrinks to the original's scale and keeps its aspect ratio (a 2048 square
    pad of a 1536x1024 original is 1536x1536), and `Rendered.note` says so.

    `background` (any Pillow colour, `#rrggbbaa` too) fills the padding and
    is what transparency is flattened onto for jpeg. In pad, the image is
    composited over it; give a transparent colour (`#ffffff00`) to keep
    transparency in png, webp or avif. Other fits keep transparency in those
    formats.
    """

    model_config = ConfigDict(extra="forbid")

    width: int | None = Field(None, ge=1, le=MAX_SIDE)
    height: int | None = Field(None, ge=1, le=MAX_SIDE)
    long_edge: int | None = Field(None, ge=1, le=MAX_SIDE)
    fit: Literal["contain", "cover", "pad"] = "contain"
    focal: tuple[float, float] = (0.5, 0.5)
    background: str = "#ffffff"
    format: Literal["webp", "jpeg", "png", "avif"] = "webp"
    quality: int = Field(85, ge=1, le=100, description="jpeg/webp/avif; png is lossless")
    max_bytes: int | None = Field(None, ge=1, description="lower the quality until the file fits")
    metadata: Literal["provenance", "none"] = "provenance"
    upscale: bool = False
    # Drawn after the resize, before the encode, from the asset's manifest
    # columns (overlays.py); inside `safe_area`, start/end mirrored for RTL.
    overlays: list[Layer] = []
    safe_area: SafeArea = SafeArea()
    locale_column: str = Field("locale", description="the manifest column giving the locale")

    @field_validator("focal")
    @classmethod
    def _focal_inside(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= c <= 1.0 for c in v):
            raise ValueError("focal is (x, y) as fractions of width and height, each 0..1")
        return v

    @field_validator("background")
    @classmethod
    def _colour(cls, v: str) -> str:
        try:
            ImageColor.getrgb(v)
        except ValueError as e:
            raise ValueError(f"background {v!r} is not a colour (e.g. '#ffffff')") from e
        return v

    @field_validator("format")
    @classmethod
    def _format_available(cls, v: str) -> str:
        if v == "avif" and not avif_supported():
            raise ValueError("format avif: this Pillow was built without AVIF support")
        return v

    @model_validator(mode="after")
    def _one_shape(self) -> Preset:
        has_box = self.width is not None or self.height is not None
        if self.long_edge is not None and has_box:
            raise ValueError("give either width and height (a box) or long_edge, not both")
        if self.long_edge is None and (self.width is None or self.height is None):
            raise ValueError("give width and height (a box) or long_edge")
        return self

    def background_rgba(self) -> tuple[int, int, int, int]:
        rgb = ImageColor.getrgb(self.background)
        return (*rgb[:3], rgb[3] if len(rgb) == 4 else 255)  # type: ignore[misc]


def load_presets(*paths: str | Path) -> dict[str, Preset]:
    """Presets from YAML files (`presets: {name: {...}}`); default: configs/presets/*.yaml.

    A directory stands for its *.yaml files. A name defined in two files is
    an error naming both; so is an unsafe name, since names become file names.
    """
    files: list[Path] = []
    for p in paths or (PRESETS_DIR,):
        p = Path(p)
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    presets: dict[str, Preset] = {}
    origin: dict[str, Path] = {}
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ValueError(f"{file}: cannot read presets: {e}") from e
        if not isinstance(data, dict) or set(data) - {"presets"}:
            raise ValueError(f"{file}: expected a mapping with the single key 'presets'")
        entries = data.get("presets") or {}
        if not isinstance(entries, dict):
            raise ValueError(f"{file}: 'presets' must map names to presets")
        for name, spec in entries.items():
            name = str(name)
            if name in origin:
                raise ValueError(f"preset {name!r} is defined in both {origin[name]} and {file}")
            check_name(name, where=str(file))
            try:
                spec = relative_to_config(spec, file)
                presets[name] = Preset.model_validate(spec or {})
            except ValueError as e:
                raise ValueError(f"{file}: preset {name!r}: {e}") from e
            origin[name] = file
    return presets


def check_name(name: str, where: str = "") -> None:
    """Preset names become file names: letters, digits, '.', '_', '-'; no leading dot."""
    if not NAME_RE.match(name):
        prefix = f"{where}: " if where else ""
        raise ValueError(
            f"{prefix}preset name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 64, not starting with '.', '_' or '-')"
        )


def _is_relative(uri: str) -> bool:
    # A URL ("s3://", "https://", "memory://"), an absolute path and "~/..." stay as given.
    return "://" not in uri and not os.path.isabs(uri) and not uri.startswith("~")


def config_folder(config: str | Path) -> str:
    """The folder of a config file, as a base for its relative uris: an absolute local
    path (a worker's working directory may differ), or the URL's parent for fsspec URLs."""
    text = str(config)
    if "://" in text:
        return text.rsplit("/", 1)[0]
    return str(Path(text).resolve().parent)


def join_uri(base: str, uri: str) -> str:
    """`uri` relative to `base` (a folder path or URL); left alone when not relative."""
    if not _is_relative(uri):
        return uri
    if "://" in base:
        return posixpath.join(base, uri)
    return str(Path(base) / uri)


def relative_to_config(spec: Any, config: str | Path) -> Any:
    """A preset's raw spec with its image layers' relative `uri` joined to the folder of
    the config file it was written in, so a job config and its logo travel together
    and work from any working directory. Anything malformed is left for validation."""
    if not isinstance(spec, dict) or not isinstance(spec.get("overlays"), list):
        return spec
    base = config_folder(config)
    overlays = [
        {**layer, "uri": join_uri(base, layer["uri"])}
        if isinstance(layer, dict)
        and layer.get("type") == "image"
        and isinstance(layer.get("uri"), str)
        else layer
        for layer in spec["overlays"]
    ]
    return {**spec, "overlays": overlays}


def presets_relative_to_config(data: dict[str, Any], config: str | Path) -> dict[str, Any]:
    """A job config's raw mapping with relative_to_config applied to each of its presets."""
    presets = data.get("presets")
    if not isinstance(presets, dict):
        return data
    return {
        **data,
        "presets": {name: relative_to_config(spec, config) for name, spec in presets.items()},
    }
