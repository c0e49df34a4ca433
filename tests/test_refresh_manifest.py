"""`assetgen refresh --manifest`: new overlay text over stored pictures, no API call.

A run through the real SDK against the Images API test server makes the
pictures; the refresh must send it nothing (it counts every request).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog.table import read_catalog
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import write_manifest
from tests.test_overlays import fonts

pytestmark = [pytest.mark.usefixtures("prefect_harness"), fonts]

# The price sits in the lower half, the headline in the upper: a new price may
# change pixels below PRICE_TOP only.
PRICE_TOP = 100
CONFIG = """\
store: {store}
provider: openai
renditions: [banner, plain]
presets:
  banner:
    width: 400
    height: 200
    fit: cover
    format: png
    locale_column: locale
    overlays:
      - {{type: text, name: headline, content: headline, anchor: top-start, width: 1.0,
         height: 0.45, min_size: 10, max_size: 40, colour: "#ffffff"}}
      - {{type: text, name: price, content: "{{{{ price }}}}", if_column: price,
         anchor: bottom-start, width: 0.6, height: 0.45, min_size: 10, max_size: 60,
         colour: "#ffd166"}}
  plain:
    long_edge: 128
    format: webp
"""
ROWS = [
    {"id": "mug", "prompt": "a blue mug", "locale": "en-US", "headline": "Mugs", "price": "$24.99"},
    {"id": "cup", "prompt": "a red cup", "locale": "de-DE", "headline": "Tassen", "price": "9 €"},
]
BASE = {"size": "1024x1024", "quality": "low"}


@pytest.fixture
def sdk(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    return fake


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def manifest(path: Path, rows: list[dict[str, Any]]) -> Path:
    write_manifest(str(path), [{**BASE, **r} for r in rows])
    return path


def files(store: Path) -> dict[str, bytes]:
    """Every file of every asset (sidecars apart), by path in the store."""
    return {
        str(p.relative_to(store)): p.read_bytes()
        for p in store.rglob("*")
        if p.is_file() and not p.relative_to(store).parts[0].startswith("_") and p.name != SIDECAR
    }


def sidecars(store: Path) -> dict[str, Sidecar]:
    found = AssetStore(str(store)).existing()
    return {
        (sc := Sidecar.model_validate_json((store / f / SIDECAR).read_bytes())).row_id: sc
        for f in found.values()
    }


def overlay(sc: Sidecar, rendition: str, layer: str) -> dict[str, Any]:
    r = next(r for r in sc.renditions if r.name == rendition)
    return next(o for o in r.overlays if o["layer"] == layer)


@pytest.fixture
def made(tmp_path: Path, sdk: FakeOpenAI) -> tuple[Path, Path]:
    """A run of ROWS into a fresh store: (config, store)."""
    store = tmp_path / "store"
    cfg = tmp_path / "job.yaml"
    cfg.write_text(CONFIG.format(store=store))
    result = invoke("run", manifest(tmp_path / "m.csv", ROWS), "-c", cfg, "--ipm", "6000", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["generated"] == 2 and summary["rendition_errors"] == []
    assert sdk.count() == 2
    return cfg, store


def test_a_new_price_is_drawn_with_zero_api_calls(
    made: tuple[Path, Path], sdk: FakeOpenAI, tmp_path: Path
) -> None:
    cfg, store = made
    before = files(store)
    sc_before = sidecars(store)
    assert overlay(sc_before["mug"], "banner", "price")["text"] == "$24.99"
    requests_before = sdk.count()

    new = [{**ROWS[0], "price": "$19.99"}, ROWS[1]]
    path = manifest(tmp_path / "m2.csv", new)
    result = invoke("refresh", "--manifest", path, "-c", cfg, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["presets"] == ["banner"]  # only the preset that draws overlays
    assert (summary["matched"], summary["refreshed"], summary["errors"]) == (2, 2, [])
    assert summary["unmatched"] == summary["needs_run"] == summary["rejected"] == 0
    assert sdk.count() == requests_before  # not one request

    after = files(store)
    assert after.keys() == before.keys()
    mug = sc_before["mug"]
    mug_folder = next(k for k in before if mug.asset_id in k).rsplit("/", 1)[0]
    changed = {k for k in before if before[k] != after[k]}
    assert changed == {f"{mug_folder}/banner.png"}  # original, plain, the cup: byte-identical

    old_im = Image.open(io.BytesIO(before[f"{mug_folder}/banner.png"])).convert("RGB")
    new_im = Image.open(io.BytesIO(after[f"{mug_folder}/banner.png"])).convert("RGB")
    diff = ImageChops.difference(old_im, new_im).getbbox()
    assert diff is not None and diff[1] >= PRICE_TOP  # where the price is, not the headline

    sc = sidecars(store)["mug"]
    assert sc.metadata["price"] == "$19.99"
    price = overlay(sc, "banner", "price")
    assert price["text"] == "$19.99" and price["size"] > 10
    assert price["params"]["content"] == "{{ price }}"
    assert overlay(sc, "banner", "headline")["text"] == "Mugs"
    assert [r.name for r in sc.renditions] == ["plain", "banner"]
    assert next(r for r in sc.renditions if r.name == "plain").overlays == []

    rows = {r["row_id"]: r for r in read_catalog(AssetStore(str(store))).to_pylist()}
    assert json.loads(rows["mug"]["metadata"])["price"] == "$19.99"
    drawn = json.loads(rows["mug"]["overlays"])
    assert list(drawn) == ["banner"]
    assert [o["text"] for o in drawn["banner"]] == ["Mugs", "$19.99"]
    assert json.loads(rows["cup"]["overlays"])["banner"][1]["text"] == "9 €"


def test_rows_that_cannot_be_refreshed_are_reported_and_the_rest_goes_on(
    made: tuple[Path, Path], sdk: FakeOpenAI, tmp_path: Path
) -> None:
    cfg, store = made
    before = files(store)
    requests_before = sdk.count()
    new = [
        {**ROWS[0], "headline": "Mugs, now cheaper"},
        {**ROWS[1], "prompt": "a green cup", "price": "7 €"},  # a new picture: `run`
        {**ROWS[0], "id": "ghost"},  # no stored asset
        {**ROWS[0], "id": "bad", "size": "1000x1000"},  # rejected by validation
    ]
    path = manifest(tmp_path / "m2.csv", new)
    result = invoke("refresh", "--manifest", path, "-c", cfg, "--json")
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert (summary["rows"], summary["matched"], summary["refreshed"]) == (3, 1, 1)
    assert summary["unmatched"] == 1 and "id ghost" in summary["unmatched_rows"][0]
    assert summary["needs_run"] == 1 and "assetgen run" in summary["needs_run_rows"][0]
    assert "row 2 (id cup)" in summary["needs_run_rows"][0]
    assert summary["rejected"] == 1
    assert summary["rejected_rows"][0].startswith("row 4 (id bad), column size:")
    rejects = (store / summary["rejects"].removeprefix(f"{store}/")).read_text()
    assert "bad" in rejects and "size" in rejects
    assert sdk.count() == requests_before

    sc = sidecars(store)
    assert overlay(sc["mug"], "banner", "headline")["text"] == "Mugs, now cheaper"
    # The cup keeps its picture, its columns and its banner: its row asks for a new image.
    assert sc["cup"].metadata["price"] == "9 €" and sc["cup"].prompt == "a red cup"
    after = files(store)
    cup = [k for k in before if sc["cup"].asset_id in k]
    assert cup and all(before[k] == after[k] for k in cup)

    text = invoke("refresh", "--manifest", path, "-c", cfg)
    assert text.exit_code == 1
    assert "1 match none" in text.stdout and "no stored asset: row 3 (id ghost)" in text.stdout


def test_manifest_refresh_needs_overlay_presets_or_a_preset(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg, store = made
    plain = tmp_path / "plain.yaml"
    plain.write_text(CONFIG.format(store=store).replace("[banner, plain]", "[plain]"))
    path = manifest(tmp_path / "m2.csv", ROWS)
    result = invoke("refresh", "--manifest", path, "-c", plain, "--json")
    assert result.exit_code == 2 and "--preset" in result.output
    both = invoke("refresh", "--manifest", path, "-c", cfg, "--where", "locale=ar")
    assert both.exit_code == 2 and "--where" in both.output
    # Named with --preset, any preset is re-rendered, with the rows' columns.
    named = invoke("refresh", "--manifest", path, "-c", plain, "-p", "plain", "--json")
    assert named.exit_code == 0, named.output
    assert json.loads(named.stdout)["refreshed"] == 2
