"""An image layer's relative uri is relative to the config file that holds it, not the cwd."""

from __future__ import annotations

import io
from pathlib import Path

import fsspec
import pytest
import yaml
from PIL import Image

from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.renditions.presets import join_uri, load_presets
from assetgen.tasks.renditions.render import render_all

RED = (255, 0, 0)


def logo_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (10, 10), (*RED, 255)).save(buf, "PNG")
    return buf.getvalue()


def banner(uri: str) -> dict:
    layer = {"type": "image", "name": "logo", "uri": uri, "width": 20, "height": 20}
    return {"width": 100, "height": 50, "fit": "cover", "format": "png", "overlays": [layer]}


def job_yaml(uri: str) -> str:
    return yaml.safe_dump({"renditions": ["banner"], "presets": {"banner": banner(uri)}})


def original() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (200, 100), (0, 0, 255)).save(buf, "PNG")
    return buf.getvalue()


def drawn_at_top_left(presets: dict) -> tuple[int, int, int]:
    (r,) = render_all(original(), {"banner": presets["banner"]}, {"locale": "en-US"}, "row-1")
    assert r.error is None, r.error
    return Image.open(io.BytesIO(r.data)).convert("RGB").getpixel((5, 5))


def test_job_config_logo_is_found_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = tmp_path / "campaign"
    job.mkdir()
    (job / "logo.png").write_bytes(logo_bytes())
    (job / "banner.yaml").write_text(job_yaml("logo.png"), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where a relative "logo.png" does not exist
    cfg = load_job_config("../campaign/banner.yaml")
    assert cfg.presets["banner"].overlays[0].uri == str(job / "logo.png")
    assert drawn_at_top_left(cfg.presets) == RED


def test_preset_file_logo_is_relative_to_the_preset_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "brand").mkdir()
    (tmp_path / "brand" / "mark.png").write_bytes(logo_bytes())
    presets_file = tmp_path / "presets.yaml"
    presets_file.write_text(
        yaml.safe_dump({"presets": {"banner": banner("brand/mark.png")}}), encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path / "brand")
    presets = load_presets(presets_file)
    assert presets["banner"].overlays[0].uri == str(tmp_path / "brand" / "mark.png")
    assert drawn_at_top_left(presets) == RED


def test_absolute_paths_and_urls_are_unchanged(tmp_path: Path) -> None:
    absolute = str(tmp_path / "logo.png")
    assert join_uri("/jobs", absolute) == absolute
    assert join_uri("/jobs", "s3://brand/logo.png") == "s3://brand/logo.png"
    assert join_uri("/jobs", "~/logo.png") == "~/logo.png"
    (tmp_path / "job.yaml").write_text(job_yaml("memory://brand/logo.png"), encoding="utf-8")
    cfg = load_job_config(tmp_path / "job.yaml")
    assert cfg.presets["banner"].overlays[0].uri == "memory://brand/logo.png"


def test_config_at_a_url_finds_its_logo_next_to_it() -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/campaign-url/assets/logo.png", logo_bytes())
    fs.pipe("/campaign-url/job.yaml", job_yaml("assets/logo.png").encode())
    try:
        cfg = load_job_config("memory://campaign-url/job.yaml")
        uri = cfg.presets["banner"].overlays[0].uri
        assert uri == "memory://campaign-url/assets/logo.png"
        assert drawn_at_top_left(cfg.presets) == RED
    finally:
        fs.rm("/campaign-url", recursive=True)
