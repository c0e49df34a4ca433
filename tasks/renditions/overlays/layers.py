"""The layer models a preset's `overlays` hold (text, image, box) and the safe area.

Validated at the edge (presets, job configs) so a typo in an anchor or a
colour fails when the config is read, not in the middle of a run.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from PIL import ImageColor
from pydantic import BaseModel, ConfigDict, Field, field_validator

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
ShadowOffset = Annotated[float, Field(ge=-0.5, le=0.5)]


def px(v: float, total: int) -> int:
    """A Length in pixels: a fraction (<= 1) of `total`, else pixels."""
    return round(v * total) if v <= 1 else round(v)


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
    # A drop shadow under the text (and its outline); colour may carry alpha ("#00000099").
    shadow: str | None = None
    # (x, y) in fractions of the size, so the shadow scales with the fitted text; not
    # mirrored for RTL: it follows the light, not the reading direction.
    shadow_offset: tuple[ShadowOffset, ShadowOffset] = (0.04, 0.04)
    shadow_blur: float = Field(0.04, ge=0, le=0.5, description="Gaussian radius, fraction of size")
    # locale ("ar", "zh-Hans", "default") -> font files ("path" or "path#face"), in order.
    fonts: dict[str, list[str]] = {}

    _c = field_validator("colour", "outline", "shadow")(
        classmethod(lambda cls, v: _check_colour(v))
    )


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
