"""Row validation: every rule rejects with the row, the column and a reason that says why.

Most tests plan a manifest of two rows, a good one and the one under test, so
each reject is checked to carry row number 2 and not to spill over the good row.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.config.models import ModelCaps
from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.manifest.rows import RowContext
from assetgen.tasks.plan.jobs import Job, Planner
from assetgen.tasks.plan.pricing import PriceTable
from tests.helpers import plan_all, write_manifest

GOOD = {"id": "ok", "prompt": "A blue ceramic mug on a wooden desk"}
STANDARD = "auto, 1024x1024, 1536x1024, 1024x1536"
KNOWN_MODELS = ("gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "gpt-image-2-2026-04-21")


def plan_rows(
    planner: Planner, folder: Path, rows: list[dict[str, Any]], fmt: str = "jsonl"
) -> tuple[list[Job], list[Reject]]:
    return plan_all(planner, write_manifest(str(folder / f"m.{fmt}"), rows))


def bad_row(planner: Planner, folder: Path, fmt: str = "jsonl", **cols: Any) -> list[Reject]:
    """Rejects of row 2 (`cols`), planned after a good row 1 that must still pass."""
    row = {"id": "r2", "prompt": "A red lamp", **cols}
    jobs, rejects = plan_rows(planner, folder, [GOOD, row], fmt)
    assert [(j.row, j.row_id) for j in jobs] == [(1, "ok")]
    assert rejects, "row 2 was accepted"
    assert all(r.row == 2 for r in rejects), rejects
    return rejects


def good_row(planner: Planner, folder: Path, fmt: str = "jsonl", **cols: Any) -> Job:
    """The first job of one row (`cols`) that must pass."""
    row = {"id": "r1", "prompt": "A red lamp", **cols}
    jobs, rejects = plan_rows(planner, folder, [row], fmt)
    assert rejects == []
    assert jobs and jobs[0].row == 1
    return jobs[0]


def only(rejects: list[Reject], column: str, code: str, *words: str) -> Reject:
    """The single reject, checked for row 2, its column, code and key words."""
    assert [(r.row, r.column, r.code) for r in rejects] == [(2, column, code)], rejects
    for word in words:
        assert word in rejects[0].reason, (word, rejects[0].reason)
    return rejects[0]


def planner_with(
    models: dict[str, ModelCaps],
    prices: PriceTable,
    model: str = "gpt-image-2",
    **caps: Any,
) -> Planner:
    """A default-config planner whose `model` has some capabilities changed."""
    table = {**models, model: models[model].model_copy(update=caps)}
    return Planner(RowContext.build(load_job_config(None, {}), table), prices)


def save(path: Path, size: tuple[int, int] = (64, 48), mode: str = "RGB", **kw: Any) -> str:
    """A small image at `path`; returns its name relative to the manifest folder."""
    color = (30, 60, 90, 255)[: len(mode)] if mode in ("RGB", "RGBA") else 0
    Image.new(mode, size, color).save(path, **kw)
    return path.name


# --- size: gpt-image-2 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("auto", "auto"),
        ("AUTO", "auto"),
        ("1024x1024", "1024x1024"),
        ("1536x1024", "1536x1024"),
        ("1024x1536", "1024x1536"),
        ("1024X1536", "1024x1536"),
        (" 1536x1024 ", "1536x1024"),
        ("1040x1040", "1040x1040"),  # any multiple of 16
        ("3840x1280", "3840x1280"),  # long edge 3840, ratio exactly 3:1
        ("1280x3840", "1280x3840"),
        ("1024x640", "1024x640"),  # exactly 655,360 pixels
        ("3840x2160", "3840x2160"),  # exactly 8,294,400 pixels
        ("2048x688", "2048x688"),
    ],
)
def test_gpt_image_2_accepts_size(
    given: str, normalised: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    job = good_row(make_planner(), tmp_path, size=given)
    assert job.size == normalised


@pytest.mark.parametrize(
    ("size", "words"),
    [
        ("1000x1000", ["1000x1000", "multiples of 16"]),
        ("1024x1000", ["multiples of 16"]),
        ("1032x1024", ["multiples of 16"]),
        ("3856x1296", ["longest edge 3856", "over 3840"]),
        ("1296x3856", ["longest edge 3856", "over 3840"]),
        ("3840x1264", ["aspect ratio", "3:1"]),
        ("1264x3840", ["aspect ratio", "3:1"]),
        ("0x1024", ["aspect ratio"]),
        ("1024x624", ["638,976 pixels", "655,360", "8,294,400"]),
        ("3840x2176", ["8,355,840 pixels", "655,360", "8,294,400"]),
        ("1024*1024", ["'1024*1024'", "not WIDTHxHEIGHT", STANDARD]),
        ("1024 x 1024", ["not WIDTHxHEIGHT"]),
        ("1024x", ["not WIDTHxHEIGHT"]),
        ("-1024x1024", ["not WIDTHxHEIGHT"]),
        ("1024x1024x2", ["not WIDTHxHEIGHT"]),
        ("large", ["'large'", "not WIDTHxHEIGHT"]),
    ],
)
def test_gpt_image_2_rejects_size(
    size: str, words: list[str], tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    only(bad_row(make_planner(), tmp_path, size=size), "size", "bad_size", *words)


def test_size_from_csv_and_default(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    rows = [{"id": "a", "prompt": "x", "size": "1536X1024"}, {"id": "b", "prompt": "y"}]
    jobs, rejects = plan_rows(make_planner(defaults__size="1024x1536"), tmp_path, rows, "csv")
    assert rejects == []
    assert [j.size for j in jobs] == ["1536x1024", "1024x1536"]


def test_size_with_leading_zeros_is_not_kept_as_written(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    jobs, rejects = plan_rows(
        make_planner(), tmp_path, [{"id": "a", "prompt": "x", "size": "01024x01024"}]
    )
    assert [j.size for j in jobs] == ["1024x1024"] or [r.column for r in rejects] == ["size"]


# --- size: older models --------------------------------------------------------------------


@pytest.mark.parametrize("model", ["gpt-image-1.5", "gpt-image-1-mini"])
@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("auto", "auto"),
        ("1024x1024", "1024x1024"),
        ("1536x1024", "1536x1024"),
        ("1024x1536", "1024x1536"),
        ("1536X1024", "1536x1024"),
    ],
)
def test_older_models_accept_the_fixed_sizes(
    model: str, given: str, normalised: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    job = good_row(make_planner(), tmp_path, model=model, size=given)
    assert (job.model, job.size) == (model, normalised)


@pytest.mark.parametrize("model", ["gpt-image-1.5", "gpt-image-1-mini"])
@pytest.mark.parametrize("size", ["2048x2048", "1024x640", "3840x1280", "1040x1040", "1024*1024"])
def test_older_models_reject_flexible_sizes(
    model: str, size: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rejects = bad_row(make_planner(), tmp_path, model=model, size=size)
    only(rejects, "size", "bad_size", f"'{size}'", "not supported by this model", STANDARD)


# --- quality, output_format, background ----------------------------------------------------


@pytest.mark.parametrize(
    ("column", "given", "normalised"),
    [
        ("quality", "low", "low"),
        ("quality", "MEDIUM", "medium"),
        ("quality", " High ", "high"),
        ("quality", "auto", "auto"),
        ("output_format", "png", "png"),
        ("output_format", "PNG", "png"),
        ("output_format", "jpeg", "jpeg"),
        ("output_format", "jpg", "jpeg"),
        ("output_format", "JPG", "jpeg"),
        ("output_format", "WebP", "webp"),
        ("background", "auto", "auto"),
        ("background", "OPAQUE", "opaque"),
        ("background", "Transparent", "transparent"),
    ],
)
def test_allowed_values_are_normalised(
    column: str,
    given: str,
    normalised: str,
    tmp_path: Path,
    make_planner: Callable[..., Planner],
) -> None:
    job = good_row(make_planner(), tmp_path, "csv", **{column: given})
    assert getattr(job, column) == normalised


@pytest.mark.parametrize(
    ("column", "value", "allowed"),
    [
        ("quality", "ultra", "low, medium, high, auto"),
        ("quality", "hd", "low, medium, high, auto"),
        ("output_format", "gif", "png, jpeg, webp"),
        ("output_format", "tiff", "png, jpeg, webp"),
        ("background", "white", "transparent, opaque, auto"),
    ],
)
def test_values_outside_the_model_list_are_rejected(
    column: str, value: str, allowed: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rejects = bad_row(make_planner(), tmp_path, **{column: value})
    only(rejects, column, "not_allowed", f"{column} '{value}'", f"not one of {allowed}")


def test_allowed_lists_come_from_the_model_table(
    tmp_path: Path, models: dict[str, ModelCaps], prices: PriceTable
) -> None:
    planner = planner_with(models, prices, qualities=["low", "medium"])
    only(bad_row(planner, tmp_path, quality="high"), "quality", "not_allowed", "low, medium")


def test_defaults_are_checked_like_row_values(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    jobs, rejects = plan_rows(make_planner(defaults__quality="ultra"), tmp_path, [GOOD])
    assert jobs == []
    assert [(r.row, r.column, r.code) for r in rejects] == [(1, "quality", "not_allowed")]


# --- output_compression --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "value", "expected"),
    [("jpeg", 0, 0), ("jpg", 100, 100), ("webp", 80, 80), ("webp", "75", 75)],
)
def test_output_compression_for_jpeg_and_webp(
    fmt: str,
    value: Any,
    expected: int,
    tmp_path: Path,
    make_planner: Callable[..., Planner],
) -> None:
    job = good_row(make_planner(), tmp_path, output_format=fmt, output_compression=value)
    assert job.output_compression == expected


def test_output_compression_from_csv_text(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    job = good_row(make_planner(), tmp_path, "csv", output_format="jpeg", output_compression="60")
    assert job.output_compression == 60


def test_output_compression_empty_cell_is_none(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    job = good_row(make_planner(), tmp_path, "csv", output_format="jpeg", output_compression="")
    assert job.output_compression is None


@pytest.mark.parametrize("value", [101, -1, 1000])
def test_output_compression_out_of_range(
    value: int, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rejects = bad_row(make_planner(), tmp_path, output_format="jpeg", output_compression=value)
    only(rejects, "output_compression", "out_of_range", f"{value}", "between 0 and 100")


def test_output_compression_not_a_number(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rejects = bad_row(make_planner(), tmp_path, output_format="jpeg", output_compression="high")
    assert [(r.row, r.column) for r in rejects] == [(2, "output_compression")]
    assert "integer" in rejects[0].reason


@pytest.mark.parametrize("fmt", ["png", "PNG", None])  # None: the default format, png
def test_output_compression_only_for_jpeg_or_webp(
    fmt: str | None, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    cols: dict[str, Any] = {"output_compression": 50}
    if fmt:
        cols["output_format"] = fmt
    rejects = bad_row(make_planner(), tmp_path, **cols)
    only(rejects, "output_compression", "needs_jpeg_or_webp", "jpeg or webp", "not png")


# --- transparent background ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["png", "webp", "WEBP"])
def test_transparent_background_with_png_or_webp(
    fmt: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    job = good_row(make_planner(), tmp_path, background="transparent", output_format=fmt)
    assert (job.background, job.output_format) == ("transparent", fmt.lower())


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "JPEG"])
def test_transparent_background_needs_png_or_webp(
    fmt: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rejects = bad_row(make_planner(), tmp_path, background="transparent", output_format=fmt)
    only(rejects, "background", "needs_png_or_webp", "png or webp", "not jpeg")


def test_transparent_background_with_default_jpeg_format(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(defaults__output_format="jpeg")
    only(bad_row(planner, tmp_path, background="transparent"), "background", "needs_png_or_webp")


def test_transparent_background_where_the_model_does_not_offer_it(
    tmp_path: Path, models: dict[str, ModelCaps], prices: PriceTable
) -> None:
    planner = planner_with(models, prices, transparent_background=False)
    rejects = bad_row(planner, tmp_path, background="transparent", output_format="png")
    only(rejects, "background", "unsupported", "transparent", "not supported by this model")
    # Other backgrounds are still fine on that model.
    assert good_row(planner, tmp_path, background="opaque").background == "opaque"


# --- n -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "count"), [(1, 1), (10, 10), ("3", 3)])
def test_n_makes_one_job_per_variant(
    value: Any, count: int, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    jobs, rejects = plan_rows(make_planner(), tmp_path, [{**GOOD, "n": value}])
    assert rejects == []
    assert [j.variant for j in jobs] == list(range(count))


@pytest.mark.parametrize("value", [0, 11, -1, 100])
def test_n_out_of_range(value: int, tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    only(bad_row(make_planner(), tmp_path, n=value), "n", "out_of_range", f"n {value}", "1 and 10")


def test_n_not_a_number(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    rejects = bad_row(make_planner(), tmp_path, "csv", n="two")
    assert [(r.row, r.column) for r in rejects] == [(2, "n")]
    assert "integer" in rejects[0].reason


def test_n_limit_comes_from_the_model_table(
    tmp_path: Path, models: dict[str, ModelCaps], prices: PriceTable
) -> None:
    planner = planner_with(models, prices, max_n=4)
    only(bad_row(planner, tmp_path, n=5), "n", "out_of_range", "1 and 4")
    assert good_row(planner, tmp_path, n=4).variant == 0


# --- prompt --------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_empty_prompt(prompt: str, tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    only(bad_row(make_planner(), tmp_path, prompt=prompt), "prompt", "missing", "prompt is empty")


def test_missing_prompt_column(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    jobs, rejects = plan_rows(make_planner(), tmp_path, [{"id": "a"}])
    assert jobs == []
    assert [(r.row, r.id, r.column, r.code) for r in rejects] == [(1, "a", "prompt", "missing")]


def test_prompt_at_the_model_limit(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    assert len(good_row(make_planner(), tmp_path, prompt="a" * 32_000).prompt) == 32_000


def test_prompt_over_the_model_limit(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    rejects = bad_row(make_planner(), tmp_path, "csv", prompt="a" * 32_001)
    only(rejects, "prompt", "too_long", "32,001 characters", "at most 32,000")


def test_prompt_limit_comes_from_the_model_table(
    tmp_path: Path, models: dict[str, ModelCaps], prices: PriceTable
) -> None:
    limit = len(GOOD["prompt"])
    planner = planner_with(models, prices, max_prompt_chars=limit)
    rejects = bad_row(planner, tmp_path, prompt="x" * (limit + 1))
    only(rejects, "prompt", "too_long", f"at most {limit}")


# --- model ---------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["dall-e-3", "GPT-IMAGE-2", "gpt-image-3"])
def test_unknown_model_lists_the_known_ones(
    model: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rejects = bad_row(make_planner(), tmp_path, model=model)
    only(rejects, "model", "unknown_model", f"unknown model '{model}'", *KNOWN_MODELS)


def test_unknown_default_model(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    jobs, rejects = plan_rows(make_planner(defaults__model="dall-e-2"), tmp_path, [GOOD])
    assert jobs == []
    assert [(r.row, r.column, r.code) for r in rejects] == [(1, "model", "unknown_model")]


def test_model_column_overrides_the_default(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    assert good_row(make_planner(), tmp_path, model="gpt-image-1-mini").model == "gpt-image-1-mini"


# --- no price ------------------------------------------------------------------------------


def test_model_without_a_price_is_rejected(
    tmp_path: Path, make_planner: Callable[..., Planner], prices: PriceTable
) -> None:
    unpriced = prices.model_copy(
        update={"models": {k: v for k, v in prices.models.items() if k != "gpt-image-1-mini"}},
        deep=True,
    )
    planner = Planner(make_planner().ctx, unpriced)
    rejects = bad_row(planner, tmp_path, model="gpt-image-1-mini")
    reject = only(rejects, "model", "no_price", "no price", "'gpt-image-1-mini'")
    assert reject.id == "r2"


def test_snapshot_name_is_priced_like_its_model(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    job = good_row(make_planner(), tmp_path, model="gpt-image-2-2026-04-21")
    base = good_row(make_planner(), tmp_path, model="gpt-image-2")
    assert job.model == "gpt-image-2-2026-04-21"
    assert job.cost == base.cost


# --- id ------------------------------------------------------------------------------------


@pytest.mark.parametrize("row_id", ["", "   "])
def test_empty_id(row_id: str, tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    reject = only(bad_row(make_planner(), tmp_path, "csv", id=row_id), "id", "missing", "empty")
    assert reject.id is None


def test_id_is_trimmed(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    assert good_row(make_planner(), tmp_path, "csv", id=" sku-1 ").row_id == "sku-1"


def test_id_too_long(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    only(bad_row(make_planner(), tmp_path, id="x" * 257), "id", "too_long", "256 characters")
    assert good_row(make_planner(), tmp_path, id="x" * 256).row_id == "x" * 256


@pytest.mark.parametrize("row_id", ["a\x00b", "a\tb", "a\nb", "a\x7fb", "a\x85b", "\x1b[31mred"])
def test_id_with_control_characters(
    row_id: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    only(bad_row(make_planner(), tmp_path, id=row_id), "id", "control_chars", "control characters")


def test_duplicate_id_rejects_the_later_row_naming_the_first(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rows = [
        {"id": "a", "prompt": "one"},
        {"id": "b", "prompt": "two"},
        {"id": "a", "prompt": "three"},
        {"id": " b ", "prompt": "four"},
    ]
    jobs, rejects = plan_rows(make_planner(), tmp_path, rows, "csv")
    assert [(j.row, j.row_id, j.prompt) for j in jobs] == [(1, "a", "one"), (2, "b", "two")]
    assert [(r.row, r.id, r.column, r.code) for r in rejects] == [
        (3, "a", "id", "duplicate_id"),
        (4, "b", "id", "duplicate_id"),
    ]
    assert "first used at row 1" in rejects[0].reason
    assert "first used at row 2" in rejects[1].reason


def test_duplicate_of_a_rejected_row_is_still_a_duplicate(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rows = [{"id": "a", "prompt": "one", "n": 0}, {"id": "a", "prompt": "two", "size": "big"}]
    jobs, rejects = plan_rows(make_planner(), tmp_path, rows)
    assert jobs == []
    assert [(r.row, r.column, r.code) for r in rejects] == [
        (1, "n", "out_of_range"),
        (2, "id", "duplicate_id"),
        (2, "size", "bad_size"),
    ]
    assert "first used at row 1" in rejects[1].reason


# --- reference images ----------------------------------------------------------------------


def test_reference_images_pass_with_their_sizes(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    refs = [
        save(tmp_path / "a.png", (64, 48)),
        save(tmp_path / "b.jpg", (32, 16)),
        save(tmp_path / "c.webp", (20, 20)),
    ]
    job = good_row(make_planner(), tmp_path, reference_images=refs)
    assert [(Path(r.uri).name, r.width, r.height) for r in job.references] == [
        ("a.png", 64, 48),
        ("b.jpg", 32, 16),
        ("c.webp", 20, 20),
    ]
    assert all(len(r.sha256) == 64 for r in job.references)


def test_missing_reference_image(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    save(tmp_path / "a.png")
    rejects = bad_row(make_planner(), tmp_path, reference_images=["a.png", "nope.png"])
    only(rejects, "reference_images", "unreadable_reference", "nope.png", "not found")


def test_reference_that_is_not_an_image(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    (tmp_path / "notes.png").write_text("this is not a picture")
    rejects = bad_row(make_planner(), tmp_path, reference_images=["notes.png"])
    only(rejects, "reference_images", "unreadable_reference", "notes.png", "not a readable image")


def test_reference_that_is_a_directory(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    (tmp_path / "folder.png").mkdir()
    rejects = bad_row(make_planner(), tmp_path, reference_images=["folder.png"])
    only(rejects, "reference_images", "unreadable_reference", "folder.png")


def test_gif_reference_is_rejected(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    save(tmp_path / "anim.gif", mode="P")
    rejects = bad_row(make_planner(), tmp_path, reference_images=["anim.gif"])
    only(rejects, "reference_images", "unreadable_reference", "anim.gif", "GIF", "png, jpeg")


def test_camera_jpeg_with_mpo_header_is_accepted(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    Image.new("RGB", (64, 48), (1, 2, 3)).save(
        tmp_path / "photo.jpg",
        format="MPO",
        save_all=True,
        append_images=[Image.new("RGB", (64, 48))],
    )
    job = good_row(make_planner(), tmp_path, reference_images=["photo.jpg"])
    assert [(r.width, r.height) for r in job.references] == [(64, 48)]


def test_each_bad_reference_is_its_own_reject(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    (tmp_path / "notes.png").write_text("text")
    rejects = bad_row(make_planner(), tmp_path, reference_images=["x.png", "notes.png"])
    assert [(r.column, r.code) for r in rejects] == [
        ("reference_images", "unreadable_reference")
    ] * 2
    assert "x.png" in rejects[0].reason and "notes.png" in rejects[1].reason


def test_sixteen_references_pass(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    name = save(tmp_path / "a.png")
    job = good_row(make_planner(), tmp_path, reference_images=[name] * 16)
    assert len(job.references) == 16


def test_more_than_sixteen_references(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    name = save(tmp_path / "a.png")
    rejects = bad_row(make_planner(), tmp_path, reference_images=[name] * 17)
    only(rejects, "reference_images", "too_many", "17 reference images", "at most 16")


def test_more_than_sixteen_references_in_csv(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    # Counted before any file is opened: none of these exist.
    cell = ";".join(f"r{i}.png" for i in range(20))
    rejects = bad_row(make_planner(), tmp_path, "csv", reference_images=cell)
    only(rejects, "reference_images", "too_many", "20 reference images")


def test_reference_list_that_is_not_valid_json(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rejects = bad_row(make_planner(), tmp_path, "csv", reference_images='["a.png", ')
    only(rejects, "reference_images", "bad_list", "JSON list")


def test_reference_over_the_byte_limit(
    tmp_path: Path, models: dict[str, ModelCaps], prices: PriceTable
) -> None:
    name = save(tmp_path / "a.png")
    size = (tmp_path / name).stat().st_size
    planner = planner_with(models, prices, max_reference_bytes=size - 1)
    rejects = bad_row(planner, tmp_path, reference_images=[name])
    only(rejects, "reference_images", "too_large", name, f"{size:,} bytes", f"{size - 1:,}")
    assert good_row(planner_with(models, prices, max_reference_bytes=size), tmp_path).row == 1


# --- mask ----------------------------------------------------------------------------------


def test_mask_with_alpha_and_the_first_reference_size(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    ref = save(tmp_path / "a.png", (64, 48))
    other = save(tmp_path / "b.png", (32, 32))
    mask = save(tmp_path / "mask.png", (64, 48), "RGBA")
    job = good_row(make_planner(), tmp_path, reference_images=[ref, other], mask=mask)
    assert job.mask is not None
    assert (Path(job.mask.uri).name, job.mask.width, job.mask.height) == ("mask.png", 64, 48)
    assert [Path(r.uri).name for r in job.references] == ["a.png", "b.png"]


@pytest.mark.parametrize(
    ("mode", "kw"), [("LA", {}), ("P", {"transparency": 0})], ids=["LA", "P-with-tRNS"]
)
def test_other_png_alpha_modes_count_as_alpha(
    mode: str, kw: dict[str, Any], tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    ref = save(tmp_path / "a.png")
    mask = save(tmp_path / "mask.png", mode=mode, **kw)
    assert good_row(make_planner(), tmp_path, reference_images=[ref], mask=mask).mask is not None


def test_mask_needs_a_reference_image(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    mask = save(tmp_path / "mask.png", mode="RGBA")
    rejects = bad_row(make_planner(), tmp_path, mask=mask)
    only(rejects, "mask", "needs_reference", "at least one reference image")


@pytest.mark.parametrize(
    ("name", "mode"),
    [("mask.png", "RGB"), ("mask.jpg", "RGB"), ("mask.webp", "RGBA")],
    ids=["png-without-alpha", "jpeg", "webp-with-alpha"],
)
def test_mask_must_be_png_with_alpha(
    name: str, mode: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    ref = save(tmp_path / "a.png")
    mask = save(tmp_path / name, mode=mode)
    rejects = bad_row(make_planner(), tmp_path, reference_images=[ref], mask=mask)
    only(rejects, "mask", "bad_mask", name, "PNG with an alpha channel")


def test_mask_must_match_the_first_reference_size(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    first = save(tmp_path / "a.png", (64, 48))
    second = save(tmp_path / "b.png", (32, 32))
    mask = save(tmp_path / "mask.png", (32, 32), "RGBA")  # the size of the second one
    rejects = bad_row(make_planner(), tmp_path, reference_images=[first, second], mask=mask)
    only(rejects, "mask", "size_mismatch", "mask is 32x32", "first reference image is 64x48")


def test_missing_mask_file(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    ref = save(tmp_path / "a.png")
    rejects = bad_row(make_planner(), tmp_path, reference_images=[ref], mask="nope.png")
    only(rejects, "mask", "unreadable_reference", "nope.png", "not found")


def test_mask_over_the_size_limit(tmp_path: Path, make_planner: Callable[..., Planner]) -> None:
    # Noise does not compress: a 1024x1024 RGBA PNG of it is just over 4 MB.
    ref = save(tmp_path / "a.png", (1024, 1024))
    noise = Image.frombytes("RGBA", (1024, 1024), os.urandom(1024 * 1024 * 4))
    noise.save(tmp_path / "mask.png", compress_level=0)
    size = (tmp_path / "mask.png").stat().st_size
    assert size > 4_194_304
    rejects = bad_row(make_planner(), tmp_path, reference_images=[ref], mask="mask.png")
    only(rejects, "mask", "too_large", f"{size:,} bytes", "4,194,304")


def test_mask_limit_comes_from_the_model_table(
    tmp_path: Path, models: dict[str, ModelCaps], prices: PriceTable
) -> None:
    ref = save(tmp_path / "a.png")
    buf = io.BytesIO()
    Image.new("RGBA", (64, 48)).save(buf, format="PNG")
    (tmp_path / "mask.png").write_bytes(buf.getvalue())
    planner = planner_with(models, prices, max_mask_bytes=len(buf.getvalue()) - 1)
    rejects = bad_row(planner, tmp_path, reference_images=[ref], mask="mask.png")
    only(rejects, "mask", "too_large", "mask.png")


def test_too_many_references_with_a_mask_gives_one_reject(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    ref = save(tmp_path / "a.png")
    mask = save(tmp_path / "mask.png", mode="RGBA")
    rejects = bad_row(make_planner(), tmp_path, reference_images=[ref] * 17, mask=mask)
    only(rejects, "reference_images", "too_many")


# --- partition values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("", ["is empty"]),
        ("   ", ["is empty"]),
        (None, ["is empty"]),
        ("..", ["'..'", "leave its folder"]),
        (".", ["'.'", "leave its folder"]),
        ("a/b", ["path separator"]),
        ("/", ["path separator"]),
        ("../etc", ["path separator"]),
        ("a\\b", ["path separator"]),
        ("a\x00b", ["control characters"]),
        ("a\tb", ["control characters"]),
        ("spring\n", ["control characters"]),
        ("a\x1b[31m", ["control characters"]),
        ("a\x7f", ["control characters"]),
        ("a\x9f", ["control characters"]),
        ("x" * 129, ["longer than 128 characters"]),
        (" spring", ["leading or trailing spaces"]),
        ("spring ", ["leading or trailing spaces"]),
    ],
)
def test_bad_partition_values(
    value: Any, words: list[str], tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(partition_by=["campaign"])
    cols = {} if value is None else {"campaign": value}
    rows = [{**GOOD, "campaign": "ok"}, {"id": "r2", "prompt": "A red lamp", **cols}]
    jobs, rejects = plan_rows(planner, tmp_path, rows)
    assert [j.row for j in jobs] == [1]
    only(rejects, "campaign", "bad_partition", "partition value", *words)


@pytest.mark.parametrize(
    ("value", "stored"),
    [("spring", "spring"), ("été 2027", "été 2027"), ("...", "..."), ("x" * 128, "x" * 128)],
)
def test_good_partition_values(
    value: str, stored: str, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    job = good_row(make_planner(partition_by=["campaign"]), tmp_path, campaign=value)
    assert job.partition == {"campaign": stored}
    assert "campaign" not in job.metadata


def test_numeric_partition_value_becomes_text(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    job = good_row(make_planner(partition_by=["year"]), tmp_path, year=2027)
    assert job.partition == {"year": "2027"}


def test_each_bad_partition_column_is_reported(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(partition_by=["campaign", "locale"])
    rows = [
        {**GOOD, "campaign": "ok", "locale": "de"},
        {"id": "r2", "prompt": "x", "campaign": "..", "locale": "en/US"},
    ]
    jobs, rejects = plan_rows(planner, tmp_path, rows)
    assert [j.partition for j in jobs] == [{"campaign": "ok", "locale": "de"}]
    assert [(r.row, r.column, r.code) for r in rejects] == [
        (2, "campaign", "bad_partition"),
        (2, "locale", "bad_partition"),
    ]


def test_no_partition_check_without_partition_by(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    job = good_row(make_planner(), tmp_path, campaign="..")
    assert job.partition == {}
    assert job.metadata["campaign"] == ".."


# --- several problems in one row -----------------------------------------------------------


def test_several_problems_give_several_rejects(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    planner = make_planner(partition_by=["campaign"])
    rows = [
        {**GOOD, "campaign": "ok"},
        {
            "id": "r2",
            "prompt": "",
            "size": "1000x1000",
            "quality": "ultra",
            "output_format": "gif",
            "n": 0,
            "campaign": "..",
        },
        {"id": "r3", "prompt": "fine", "campaign": "ok"},
    ]
    jobs, rejects = plan_rows(planner, tmp_path, rows)
    assert [j.row for j in jobs] == [1, 3]
    assert all((r.row, r.id) == (2, "r2") for r in rejects)
    assert sorted((r.column, r.code) for r in rejects) == [
        ("campaign", "bad_partition"),
        ("n", "out_of_range"),
        ("output_format", "not_allowed"),
        ("prompt", "missing"),
        ("quality", "not_allowed"),
        ("size", "bad_size"),
    ]


def test_compression_and_transparency_both_reported(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rejects = bad_row(
        make_planner(),
        tmp_path,
        output_format="png",
        output_compression=150,
        background="transparent",
        quality="best",
    )
    assert sorted((r.column, r.code) for r in rejects) == [
        ("output_compression", "out_of_range"),
        ("quality", "not_allowed"),
    ]
