"""One visual, many locales: six rows with one prompt pay for one picture and get six banners.

The example job (examples/overlays/) runs through the real SDK against the
Images API test server, which counts every request.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog.table import read_catalog
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.plan.jobs import Planner
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar
from tests.conftest import EXAMPLES, FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import plan_all
from tests.test_overlays import fonts

MANIFEST = EXAMPLES / "overlays" / "manifest.csv"
CONFIG = EXAMPLES / "overlays" / "banner.yaml"
OPENAI = ["--provider", "openai", "--ipm", "6000", "--json"]


def invoke(*args: Any) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def manifest_rows() -> list[dict[str, str]]:
    return list(csv.DictReader(MANIFEST.open(encoding="utf-8")))


def test_the_example_has_one_prompt_for_six_locales() -> None:
    rows = manifest_rows()
    assert len({r["prompt"] for r in rows}) == 1
    assert [r["locale"] for r in rows] == ["en-US", "de-DE", "ar", "he", "ja", "zh-Hans"]


def test_plan_counts_one_paid_picture_and_five_free_rows() -> None:
    planned = invoke("plan", MANIFEST, "--config", CONFIG, "--json")
    assert planned.exit_code == 0, planned.output
    found = json.loads(planned.stdout)
    assert (found["jobs"], found["shared_jobs"], found["duplicate_jobs"]) == (1, 5, 0)
    shown = invoke("plan", MANIFEST, "--config", CONFIG)
    assert "jobs 1 images" in shown.stdout
    assert "+ 5 rows drawing their own overlays over those pictures (free)" in shown.stdout


def test_asset_ids_without_overlays_do_not_change(make_planner: Callable[..., Planner]) -> None:
    """Without overlay renditions the six rows are one asset, as before (five duplicates);
    with them the first row keeps that asset_id and the others get their own, at no cost."""
    plain, rejects = plan_all(make_planner(), str(MANIFEST))
    assert not rejects and len({j.asset_id for j in plain}) == 1
    assert all(j.shares is None for j in plain)

    overlays, rejects = plan_all(make_planner(load_job_config(str(CONFIG))), str(MANIFEST))
    assert not rejects
    picture = plain[0].asset_id
    assert overlays[0].asset_id == picture and overlays[0].shares is None
    assert overlays[0].cost_expected > 0
    rest = overlays[1:]
    assert {j.shares for j in rest} == {picture}
    assert len({j.asset_id for j in rest} | {picture}) == 6
    assert all(j.cost_worst == 0 for j in rest)
    # Stable: planned again, the same ids.
    again, _ = plan_all(make_planner(load_job_config(str(CONFIG))), str(MANIFEST))
    assert [j.asset_id for j in again] == [j.asset_id for j in overlays]


@pytest.fixture
def sdk(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    return fake


def by_row(store: Path) -> dict[str, tuple[str, Sidecar]]:
    """row id -> (folder, sidecar) of every asset in the store."""
    out = {}
    for folder in AssetStore(str(store)).existing().values():
        sc = Sidecar.model_validate_json((store / folder / SIDECAR).read_bytes())
        out[sc.row_id] = (folder, sc)
    return out


def texts(sc: Sidecar) -> dict[str, str]:
    banner = next(r for r in sc.renditions if r.name == "banner-overlay")
    return {o["layer"]: o["text"] for o in banner.overlays if o["type"] == "text"}


@fonts
@pytest.mark.usefixtures("prefect_harness")
def test_six_rows_pay_for_one_picture_and_get_six_banners(sdk: FakeOpenAI, tmp_path: Path) -> None:
    store = tmp_path / "store"
    result = invoke("run", MANIFEST, "-c", CONFIG, "--store", store, *OPENAI)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["jobs"] == 1 and summary["generated"] == 1 and summary["shared"] == 5
    assert summary["rendition_errors"] == [] and summary["shared_waiting"] == []
    assert sdk.count() == 1  # one request for six rows

    rows = manifest_rows()
    found = by_row(store)
    assert sorted(found) == sorted(r["id"] for r in rows)
    originals = {(store / f / sc.original).read_bytes() for f, sc in found.values()}
    assert len(originals) == 1  # one picture, copied beside each row's asset
    paid = [sc for _, sc in found.values() if sc.shares is None]
    assert len(paid) == 1 and paid[0].row_id == "banner-en" and paid[0].cost_usd > 0
    for row in rows:
        _, sc = found[row["id"]]
        assert texts(sc) == {"headline": row["headline"], "price": row["price"], "cta": row["cta"]}
        assert sc.metadata["locale"] == row["locale"]
        if sc.shares is not None:
            assert sc.shares == paid[0].asset_id and sc.cost_usd == 0 and sc.attempts == 0
    banners = {(store / f / "banner-overlay.jpg").read_bytes() for f, _ in found.values()}
    assert len(banners) == 6

    catalog = {r["row_id"]: r for r in read_catalog(AssetStore(str(store))).to_pylist()}
    assert sorted(catalog) == sorted(found)
    assert sum(r["cost_usd"] for r in catalog.values()) == pytest.approx(paid[0].cost_usd)
    assert {r["shares"] for r in catalog.values()} == {None, paid[0].asset_id}
    drawn = json.loads(catalog["banner-ja"]["overlays"])["banner-overlay"]
    assert next(o for o in drawn if o["layer"] == "price")["text"] == "¥3,480"

    again = invoke("run", MANIFEST, "-c", CONFIG, "--store", store, *OPENAI)
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["skipped_existing"] == 6 and second["shared"] == 0 and sdk.count() == 1

    # A new price for one locale: its banner only, still no request.
    before = {k: (store / f / "banner-overlay.jpg").read_bytes() for k, (f, _) in found.items()}
    new = [{**r, "price": "23,99 €"} if r["id"] == "banner-de" else r for r in rows]
    path = tmp_path / "new.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(new)
    refreshed = invoke("refresh", "--manifest", path, "-c", CONFIG, "--store", store, "--json")
    assert refreshed.exit_code == 0, refreshed.output
    assert json.loads(refreshed.stdout)["matched"] == 6 and sdk.count() == 1
    after = by_row(store)
    assert texts(after["banner-de"][1])["price"] == "23,99 €"
    changed = {
        k
        for k, (f, _) in after.items()
        if (store / f / "banner-overlay.jpg").read_bytes() != before[k]
    }
    assert changed == {"banner-de"}
    old = Image.open(io.BytesIO(before["banner-de"])).convert("RGB")
    new_im = Image.open(store / after["banner-de"][0] / "banner-overlay.jpg").convert("RGB")
    assert ImageChops.difference(old, new_im).getbbox() is not None
