"""Plan-time overlay checks: problems found before anything is spent, rows not rejected."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from assetgen.flows.cli.app import app
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.plan.overlay_check import OverlayCheck, check_manifest
from assetgen.tasks.renditions import overlays
from assetgen.tasks.renditions.presets import Preset

from .test_overlays import fonts

NOTO = "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf"
HEADLINE = {
    "type": "text",
    "name": "headline",
    "content": "headline",
    "width": 0.5,
    "height": 0.3,
    "min_size": 20,
    "max_size": 60,
    "max_lines": 2,
}
PRICE = {
    "type": "text",
    "name": "price",
    "content": "{{ price }} now",
    "if_column": "price",
    "anchor": "bottom-start",
    "width": 0.5,
    "height": 0.2,
    "min_size": 12,
}


def banner(*layers: dict[str, Any]) -> Preset:
    return Preset(width=600, height=300, fit="cover", format="png", overlays=list(layers))


def check(*rows: dict[str, Any], preset: Preset | None = None, size: str = "1024x1024"):
    c = OverlayCheck({"banner": preset or banner(HEADLINE, PRICE)})
    for n, values in enumerate(rows, start=1):
        c.check_row(n, f"r{n}", values, size)
    return c


@fonts
def test_good_rows_have_no_problems() -> None:
    c = check(
        {"headline": "Handmade mugs", "price": "$24.99", "locale": "en-US"},
        {"headline": "أكواب مصنوعة يدويًا", "price": "89 ر.س", "locale": "ar"},
        {"headline": "手作りマグカップ", "price": "", "locale": "ja"},
    )
    assert c.total == 0 and c.problems == []


@fonts
def test_missing_glyph_names_row_preset_layer_and_text() -> None:
    only_latin = {**HEADLINE, "fonts": {"default": [NOTO]}}
    c = check(
        {"headline": "Fine", "locale": "en-US"},
        {"headline": "Mug 日本", "locale": "en-US"},
        preset=banner(only_latin),
    )
    (p,) = c.problems
    assert (p.row, p.id, p.preset, p.layer, p.text, p.kind) == (
        2,
        "r2",
        "banner",
        "headline",
        "Mug 日本",
        "glyphs",
    )
    assert p.message.startswith("row r2, preset 'banner', layer headline: text 'Mug 日本'")
    assert "U+65E5" in p.message


@fonts
def test_no_fit_is_found_when_the_size_is_known_only() -> None:
    long = {"headline": "A headline far too long for this box " * 4, "locale": "en-US"}
    (p,) = check(long).problems
    assert p.kind == "fit" and "does not fit" in p.message and "layer headline" in p.message
    # "auto": the rendition's size is known once the image is made; glyphs are still checked
    assert check(long, size="auto").total == 0


def test_unknown_column_and_broken_template() -> None:
    broken = {**PRICE, "content": "{{ price | nope }}"}
    c = check(
        {"locale": "en-US", "price": "9"},  # no headline column
        preset=banner(HEADLINE, broken),
    )
    kinds = {p.layer: p for p in c.problems}
    assert (
        kinds["headline"].kind == "column" and "no column 'headline'" in kinds["headline"].message
    )
    assert "columns: locale, price" in kinds["headline"].message
    assert kinds["price"].kind == "template" and "row r1, preset 'banner'" in kinds["price"].message


def test_missing_font_file_is_reported_once_not_per_row(tmp_path: Path) -> None:
    gone = str(tmp_path / "Gone-Regular.ttf")
    layer = {**HEADLINE, "fonts": {"default": [gone]}}
    rows = [{"headline": f"Sale {i}", "locale": "en-US"} for i in range(5)]
    c = check(*rows, preset=banner(layer))
    (p,) = c.problems
    assert p.kind == "fonts" and gone in p.message and p.row == 1


def test_missing_raqm_is_reported_once_per_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(overlays.fonts.features, "check", lambda name: False)
    rows = [{"headline": "שלום", "price": "5", "locale": "he"}] * 3
    c = check(*rows)
    shaping = [p for p in c.problems if p.kind == "shaping"]
    assert [p.layer for p in shaping] == ["headline", "price"]
    assert "raqm" in shaping[0].message and "row r1, preset 'banner'" in shaping[0].message


def test_unreadable_logo(tmp_path: Path) -> None:
    logo = {"type": "image", "name": "logo", "uri": str(tmp_path / "none.png")}
    (p,) = check({"locale": "en-US"}, {"locale": "de-DE"}, preset=banner(logo)).problems
    assert p.kind == "image" and "layer logo" in p.message and "cannot read" in p.message


# ---------------------------------------------------------------- plan and run


def job(tmp_path: Path) -> tuple[Path, Path]:
    """A job config rendering `banner`, and a manifest of three rows: fine, a missing
    glyph (only Latin fonts for the headline), too long."""
    layer = {**HEADLINE, "fonts": {"default": [NOTO]}}
    preset = banner(layer, PRICE).model_dump(mode="json")
    config = tmp_path / "job.yaml"
    config.write_text(
        yaml.safe_dump(
            {"renditions": ["banner"], "presets": {"banner": preset}, "provider": "placeholder"}
        ),
        encoding="utf-8",
    )
    manifest = tmp_path / "m.csv"
    rows = [
        ("ok", "Handmade mugs", "$24.99"),
        ("glyph", "Mug 日本", ""),
        ("long", "Much too long a headline for the box " * 5, "$1"),
    ]
    with manifest.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "prompt", "size", "quality", "locale", "headline", "price"])
        for rid, headline, price in rows:
            w.writerow(
                [rid, f"mugs on a shelf, {rid}", "1024x1024", "low", "en-US", headline, price]
            )
    return config, manifest


@fonts
def test_check_manifest_reads_rows_as_planning_does(tmp_path: Path) -> None:
    config, manifest = job(tmp_path)
    c = check_manifest(load_job_config(config), str(manifest))
    assert [(p.id, p.kind) for p in c.problems] == [("glyph", "glyphs"), ("long", "fit")]


@fonts
def test_plan_reports_overlay_problems_and_rejects_nothing(tmp_path: Path) -> None:
    config, manifest = job(tmp_path)
    args = ["plan", str(manifest), "-c", str(config), "--rejects", str(tmp_path / "r.csv")]
    r = CliRunner().invoke(app, [*args, "--json"], env={"COLUMNS": "1000"})
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["valid"] == 3 and out["rejected"] == 0  # the pictures are still made
    problems = out["overlay_problems"]
    assert problems["count"] == 2
    assert [(p["id"], p["layer"], p["kind"]) for p in problems["listed"]] == [
        ("glyph", "headline", "glyphs"),
        ("long", "headline", "fit"),
    ]
    text = CliRunner().invoke(app, args, env={"COLUMNS": "1000"})
    assert "2 overlay problem(s)" in text.stdout
    assert "row glyph, preset 'banner', layer headline: text 'Mug 日本'" in text.stdout


@fonts
@pytest.mark.usefixtures("prefect_harness")
def test_run_warns_before_spending_and_the_renditions_fail_as_planned(tmp_path: Path) -> None:
    config, manifest = job(tmp_path)
    store = tmp_path / "store"
    args = ["run", str(manifest), "-c", str(config), "--store", str(store), "--ipm", "60000"]
    r = CliRunner().invoke(app, [*args, "--json"], env={"COLUMNS": "1000"})
    assert r.exit_code in (0, 1), r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["generated"] == 3  # every picture made
    planned = [p["message"] for p in out["overlay_problems"]["listed"]]
    assert len(planned) == 2
    # what the check predicted is what the renditions failed with
    for message in planned:
        assert any(message in e for e in out["rendition_errors"]), (message, out)
    text = CliRunner().invoke(app, [*args, "--store", str(tmp_path / "store2")])
    assert "warning: 2 overlay(s) would fail their rendition" in text.stderr
    assert "row long, preset 'banner', layer headline" in text.stderr
