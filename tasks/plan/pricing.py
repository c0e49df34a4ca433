"""Dated price table and the low / expected / worst-case cost of a job."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from pydantic import BaseModel, Field, PrivateAttr, ValidationError

from assetgen.tasks.config import CONFIG_DIR
from assetgen.tasks.config.base import (
    ConfigError,
    StrictModel,
    format_validation_error,
    load_yaml,
)
from assetgen.tasks.config.models import parse_size

QUALITY_ORDER = ("low", "medium", "high")
_SNAPSHOT_DATE = re.compile(r"-\d{4}-\d{2}-\d{2}$")


class TokenPrices(StrictModel):
    """USD per 1M tokens."""

    text_input: float = Field(ge=0)
    image_input: float = Field(ge=0)
    image_output: float = Field(ge=0)
    # Text the model writes besides the image; billed at image_output where
    # no price is published (the safe side).
    text_output: float | None = Field(None, ge=0)
    cached_text_input: float | None = Field(None, ge=0)
    cached_image_input: float | None = Field(None, ge=0)


class ImageInputRule(StrictModel):
    """Tokens for one input image: fit in a box, shrink the short side, count tiles."""

    fit_px: int = Field(gt=0)
    short_side_px: int = Field(gt=0)
    tile_px: int = Field(gt=0)
    tokens_per_tile: int = Field(ge=0)
    base_tokens: int = Field(ge=0)
    fidelity_tokens: int = Field(ge=0)

    def tokens(self, width: int, height: int) -> int:
        """Input tokens for an image of this size."""
        scale = min(1.0, self.fit_px / max(width, height))
        w, h = width * scale, height * scale
        scale = min(1.0, self.short_side_px / min(w, h))
        w, h = w * scale, h * scale
        tiles = math.ceil(w / self.tile_px) * math.ceil(h / self.tile_px)
        return self.base_tokens + self.tokens_per_tile * tiles + self.fidelity_tokens


class ModelPricing(StrictModel):
    per_million_tokens: TokenPrices
    batch_discount: float = Field(0.0, ge=0, lt=1, description="share off through the Batch API")
    output_tokens: dict[str, dict[str, int]]
    image_input: ImageInputRule


class Spread(StrictModel):
    low: float = Field(gt=0)
    expected: float = Field(gt=0)
    worst: float = Field(gt=0)


class EstimateRules(StrictModel):
    text_chars_per_token: Spread
    text_overhead_tokens: int = Field(ge=0)
    unknown_size_worst_margin: float = Field(ge=1)
    image_input_margin: dict[str, float]


class PriceTable(StrictModel):
    """The whole of configs/pricing.yaml."""

    read_on: date
    currency: str
    models: dict[str, ModelPricing]
    estimate: EstimateRules
    # Output tokens by (model, size, quality): a manifest repeats few of them.
    _output_cache: dict[tuple[str, str, str], Tokens] = PrivateAttr(default_factory=dict)

    def pricing(self, model: str) -> ModelPricing:
        """Prices of a model or of its dated snapshot (`gpt-image-2-2026-04-21`)."""
        found = self.models.get(model) or self.models.get(_SNAPSHOT_DATE.sub("", model))
        if found is None:
            raise KeyError(model)
        return found

    def knows(self, model: str) -> bool:
        try:
            self.pricing(model)
        except KeyError:
            return False
        return True

    def output_tokens(self, model: str, size: str, quality: str) -> Tokens:
        """Output tokens for one image, with the unpublished-size margin on the worst case."""
        key = (model, size, quality)
        if key not in self._output_cache:
            pricing = self.pricing(model)
            out = output_tokens(pricing, size, quality)
            if size != "auto" and size not in pricing.output_tokens:
                out = Tokens(
                    out.low, out.expected, out.worst * self.estimate.unknown_size_worst_margin
                )
            self._output_cache[key] = out
        return self._output_cache[key]


def format_usd(value: float) -> str:
    """`$12.50`, or four decimals under a dollar (`$0.0413`), where image prices live."""
    return f"${value:,.2f}" if value >= 1 else f"${value:,.4f}"


def load_price_table(path: str | Path = CONFIG_DIR / "pricing.yaml") -> PriceTable:
    """Read and validate the price table."""
    try:
        return PriceTable.model_validate(load_yaml(path))
    except ValidationError as e:
        raise ConfigError(format_validation_error(str(path), e)) from e


@dataclass(frozen=True)
class Cost:
    """A cost range in USD."""

    low: float = 0.0
    expected: float = 0.0
    worst: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.low + other.low, self.expected + other.expected, self.worst + other.worst)

    def __sub__(self, other: Cost) -> Cost:
        return Cost(self.low - other.low, self.expected - other.expected, self.worst - other.worst)

    def scaled(self, factor: float) -> Cost:
        return Cost(self.low * factor, self.expected * factor, self.worst * factor)


@dataclass(frozen=True)
class Tokens:
    low: float
    expected: float
    worst: float


def _per_pixel(tokens: dict[str, int], size: str) -> float:
    w, h = parse_size(size) or (1, 1)
    return max(tokens.values()) / (w * h)


def output_tokens(pricing: ModelPricing, size: str, quality: str) -> Tokens:
    """Output tokens for one image; spread where size or quality is `auto` or unpublished."""
    table = pricing.output_tokens
    qualities = QUALITY_ORDER if quality == "auto" else (quality,)
    expected_quality = "medium" if quality == "auto" else quality

    def at(size_key: str, q: str) -> float:
        return float(table[size_key][q])

    if size == "auto":
        sizes = list(table)
        return Tokens(
            low=min(at(s, q) for s in sizes for q in qualities),
            expected=max(at(s, expected_quality) for s in sizes),
            worst=max(at(s, q) for s in sizes for q in qualities),
        )
    if size in table:
        return Tokens(
            low=min(at(size, q) for q in qualities),
            expected=at(size, expected_quality),
            worst=max(at(size, q) for q in qualities),
        )
    # Unpublished size: scale by pixel area from the published sizes. The
    # nearest aspect ratio gives the expectation; the densest published size,
    # times the table's margin (applied by the caller), gives the worst case.
    dims = parse_size(size)
    if dims is None:
        raise ValueError(f"cannot price size {size!r}")
    w, h = dims
    pixels = w * h
    ratio = w / h

    def aspect_gap(s: str) -> float:
        sw, sh = parse_size(s) or (1, 1)
        return abs(math.log(ratio / (sw / sh)))

    nearest = min(table, key=aspect_gap)
    nw, nh = parse_size(nearest) or (1, 1)
    densest = max(table, key=lambda s: _per_pixel(table[s], s))
    dw, dh = parse_size(densest) or (1, 1)
    return Tokens(
        low=min(at(nearest, q) for q in qualities) * pixels / (nw * nh),
        expected=at(nearest, expected_quality) * pixels / (nw * nh),
        worst=max(at(densest, q) for q in qualities) * pixels / (dw * dh),
    )


def estimate_job_cost(
    prices: PriceTable,
    model: str,
    size: str,
    quality: str,
    prompt_chars: int,
    input_images: Sequence[tuple[int, int]] = (),
    mask: tuple[int, int] | None = None,
) -> Cost:
    """Low / expected / worst-case USD for one image request.

    Whether a mask is billed as an input image is not published: only the
    worst case counts it.
    """
    pricing = prices.pricing(model)
    rules = prices.estimate
    per = pricing.per_million_tokens
    out = prices.output_tokens(model, size, quality)
    cpt = rules.text_chars_per_token
    text = Tokens(
        low=prompt_chars / cpt.low + rules.text_overhead_tokens,
        expected=prompt_chars / cpt.expected + rules.text_overhead_tokens,
        worst=prompt_chars / cpt.worst + rules.text_overhead_tokens,
    )
    image_in = sum(pricing.image_input.tokens(w, h) for w, h in input_images)
    margin = rules.image_input_margin
    mask_in = pricing.image_input.tokens(*mask) if mask else 0
    img = Tokens(
        low=image_in * margin.get("low", 1.0),
        expected=image_in,
        worst=(image_in + mask_in) * margin.get("worst", 1.0),
    )

    def usd(t: float, i: float, o: float) -> float:
        return (t * per.text_input + i * per.image_input + o * per.image_output) / 1e6

    return Cost(
        low=usd(text.low, img.low, out.low),
        expected=usd(text.expected, img.expected, out.expected),
        worst=usd(text.worst, img.worst, out.worst),
    )


class Usage(BaseModel):
    """Billed tokens of one request, as the API reports them."""

    text_input_tokens: int = 0
    image_input_tokens: int = 0
    output_tokens: int = 0  # all of them: the image's and any text's
    text_output_tokens: int = 0  # of output_tokens, the text ones

    @property
    def image_output_tokens(self) -> int:
        return self.output_tokens - self.text_output_tokens


def usage_cost(prices: PriceTable, model: str, usage: Usage, *, batch: bool = False) -> float:
    """USD billed for the tokens a response reports (`batch`: at the Batch API price)."""
    pricing = prices.pricing(model)
    per = pricing.per_million_tokens
    text_out = per.image_output if per.text_output is None else per.text_output
    usd = (
        usage.text_input_tokens * per.text_input
        + usage.image_input_tokens * per.image_input
        + usage.image_output_tokens * per.image_output
        + usage.text_output_tokens * text_out
    ) / 1e6
    return usd * (1 - pricing.batch_discount) if batch else usd
