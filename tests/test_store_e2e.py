"""One whole run on a local store and on S3 (moto): store layout, renditions, catalog, refresh."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.renditions.provenance import read_provenance
from assetgen.tasks.store.assets import AssetStore
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI

pytestmark = pytest.mark.usefixtures("prefect_harness")

CONFIG = """
partition_by: [campaign, locale]
renditions: [thumb, og]
defaults: {quality: low}
"""


@pytest.fixture(params=["local", "s3"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_bucket") + "/assets"


def cli(*args: str) -> Result:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "1000"})
    return result


def catalog_rows(store_url: str, *extra: str) -> list[dict[str, Any]]:
    result = cli("catalog", "list", "--store", store_url, "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_run_renditions_catalog_and_refresh(
    store_url: str, fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    Image.new("RGB", (800, 600), "teal").save(tmp_path / "mug.png")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "id,prompt,campaign,locale,reference_images,size\n"
        "a,a red chair,spring,en-US,,1024x1024\n"
        "b,a tall lamp,spring,de-DE,,1024x1536\n"
        "c,the mug on a desk,fall,en-US,mug.png,1536x1024\n"
        "d,escape,../../etc,en-US,,\n"
        "e,escape,spring,a/b,,\n"
    )
    config = tmp_path / "job.yaml"
    config.write_text(CONFIG)
    run = cli(
        "run",
        str(manifest),
        "-c",
        str(config),
        "--store",
        store_url,
        "--provider",
        "openai",
        "--ipm",
        "6000",
        "--json",
    )
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    assert (summary["generated"], summary["rejected"]) == (3, 2)
    assert summary["rendition_errors"] == []
    assert len(fake.requests) == 3

    store = AssetStore(store_url)
    fs = store.fs
    folders = store.existing()
    assert sorted(f.rsplit("/", 1)[0] for f in folders.values()) == [
        "campaign=fall/locale=en-US",
        "campaign=spring/locale=de-DE",
        "campaign=spring/locale=en-US",
    ]
    # Nothing was written outside the store root.
    root = store.path("")
    parent = root.rstrip("/").rsplit("/", 1)[0]
    assert [
        p.rstrip("/")
        for p in fs.ls(parent, detail=False)
        if not p.endswith((".csv", ".png", ".yaml"))
    ] == [root.rstrip("/")]
    for folder in folders.values():
        sidecar = json.loads(store.read_bytes(f"{folder}/asset.json"))
        assert {r["name"] for r in sidecar["renditions"]} == {"thumb", "og"}
        og = next(r for r in sidecar["renditions"] if r["name"] == "og")
        data = store.read_bytes(f"{folder}/{og['file']}")
        assert read_provenance(data)
        with fsspec.open(store.uri(f"{folder}/{og['file']}"), "rb") as f, Image.open(f) as img:
            assert img.size == (1200, 630)  # og upscales: link cards want this exact size

    rows = catalog_rows(store_url)
    assert len(rows) == 3 and {r["status"] for r in rows} == {"generated"}
    assert all(len(r["renditions"]) == 2 for r in rows)
    assert {r["row_id"] for r in catalog_rows(store_url, "--where", "campaign=spring")} == {
        "a",
        "b",
    }
    out = tmp_path / "catalog.parquet"
    exported = cli("catalog", "export", "--store", store_url, "-o", str(out))
    assert exported.exit_code == 0, exported.output
    assert pq.read_table(out).num_rows == 3

    # A new preset for the spring campaign: renditions only, nothing sent.
    refreshed = cli(
        "refresh",
        "--store",
        store_url,
        "--preset",
        "listing",
        "--where",
        "campaign=spring",
        "--json",
    )
    assert refreshed.exit_code == 0, refreshed.output
    assert json.loads(refreshed.stdout)["refreshed"] == 2
    assert len(fake.requests) == 3
    by_id = {r["row_id"]: r for r in catalog_rows(store_url)}
    assert {x["name"] for x in by_id["a"]["renditions"]} == {"thumb", "og", "listing"}
    assert {x["name"] for x in by_id["c"]["renditions"]} == {"thumb", "og"}

    assert "3 assets" in cli("catalog", "rebuild", "--store", store_url).stdout
    assert len(catalog_rows(store_url)) == 3
    compacted = cli("catalog", "compact", "--store", store_url)
    assert compacted.exit_code == 0 and "3 assets" in compacted.stdout
    rows = catalog_rows(store_url)
    assert len(rows) == 3
    assert {x["name"] for x in {r["row_id"]: r for r in rows}["a"]["renditions"]} == {
        "thumb",
        "og",
        "listing",
    }
