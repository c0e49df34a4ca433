"""Cost estimates: published figures reproduced, worst case never below expected."""

from __future__ import annotations

import pytest

from assetgen.tasks.plan.pricing import ImageInputRule, PriceTable, estimate_job_cost, output_tokens


def _output_only(prices: PriceTable, size: str, quality: str):
    return estimate_job_cost(prices, "gpt-image-2", size, quality, prompt_chars=0)


@pytest.mark.parametrize(
    ("size", "quality", "usd"),
    [
        # DESIGN.md: about $0.006/$0.053/$0.211 and $0.005/$0.041/$0.165 per image.
        ("1024x1024", "low", 0.006),
        ("1024x1024", "medium", 0.053),
        ("1024x1024", "high", 0.211),
        ("1536x1024", "low", 0.005),
        ("1536x1024", "medium", 0.041),
        ("1024x1536", "high", 0.165),
    ],
)
def test_published_sizes_match_published_prices(prices, size, quality, usd) -> None:
    cost = _output_only(prices, size, quality)
    assert cost.expected == pytest.approx(usd, abs=0.0011)


@pytest.mark.parametrize("size", ["1024x1024", "1536x1024", "auto", "2048x2048", "3840x2160"])
@pytest.mark.parametrize("quality", ["low", "medium", "high", "auto"])
def test_low_le_expected_le_worst(prices, size, quality) -> None:
    cost = estimate_job_cost(prices, "gpt-image-2", size, quality, prompt_chars=400)
    assert 0 < cost.low <= cost.expected <= cost.worst


def test_auto_quality_spans_low_to_high(prices) -> None:
    auto = _output_only(prices, "1024x1024", "auto")
    assert auto.low == pytest.approx(_output_only(prices, "1024x1024", "low").low)
    assert auto.worst == pytest.approx(_output_only(prices, "1024x1024", "high").worst)


def test_auto_size_worst_is_the_largest_published(prices) -> None:
    tokens = output_tokens(prices.models["gpt-image-2"], "auto", "high")
    assert tokens.worst == 7024


def test_unpublished_size_scales_with_area_and_keeps_a_margin(prices) -> None:
    square = _output_only(prices, "1024x1024", "high")
    big = _output_only(prices, "2048x2048", "high")
    assert big.expected == pytest.approx(square.expected * 4, rel=0.01)
    # Four times the densest published size, times the 1.5 margin.
    assert big.worst >= 4 * 7024 * 30 / 1e6 * 1.5


def test_long_prompt_costs_more_in_the_worst_case(prices) -> None:
    short = estimate_job_cost(prices, "gpt-image-2", "1024x1024", "low", prompt_chars=10)
    long = estimate_job_cost(prices, "gpt-image-2", "1024x1024", "low", prompt_chars=32_000)
    # One token per character at $5 per million: 32,000 characters is $0.16.
    assert long.worst - short.worst == pytest.approx((32_000 - 10) * 5 / 1e6)


def test_reference_images_add_input_cost(prices) -> None:
    plain = estimate_job_cost(prices, "gpt-image-2", "1024x1024", "medium", 100)
    edit = estimate_job_cost(prices, "gpt-image-2", "1024x1024", "medium", 100, [(1024, 1024)])
    two = estimate_job_cost(
        prices, "gpt-image-2", "1024x1024", "medium", 100, [(1024, 1024), (2048, 1024)]
    )
    assert plain.expected < edit.expected < two.expected
    assert edit.worst - plain.worst > edit.expected - plain.expected


@pytest.mark.parametrize(
    ("w", "h", "tiles"),
    [(512, 512, 1), (1024, 1024, 4), (4096, 2048, 6), (300, 200, 1)],
)
def test_image_input_tiles(w: int, h: int, tiles: int) -> None:
    rule = ImageInputRule(
        fit_px=2048,
        short_side_px=768,
        tile_px=512,
        tokens_per_tile=170,
        base_tokens=85,
        fidelity_tokens=0,
    )
    assert rule.tokens(w, h) == 85 + 170 * tiles


def test_price_table_is_dated(prices) -> None:
    assert prices.read_on.year >= 2026
    assert prices.models["gpt-image-2"].per_million_tokens.image_output == 30.0


def test_a_mask_counts_in_the_worst_case_only(prices: PriceTable) -> None:
    refs = [(1024, 1024)]
    plain = estimate_job_cost(prices, "gpt-image-2", "1024x1024", "medium", 100, refs)
    masked = estimate_job_cost(
        prices, "gpt-image-2", "1024x1024", "medium", 100, refs, (1024, 1024)
    )
    assert (masked.low, masked.expected) == (plain.low, plain.expected)
    assert masked.worst > plain.worst
