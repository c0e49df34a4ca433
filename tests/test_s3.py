"""Manifests, reference images and the rejects file on S3 (a moto server on 127.0.0.1)."""

from __future__ import annotations

import csv
import io

import fsspec
import pytest
from PIL import Image

from assetgen.tasks.manifest.read import ManifestError
from assetgen.tasks.manifest.rejects import rejects_file
from tests.helpers import plan_all, write_manifest

ROWS = [
    {"id": "a", "prompt": "a red lamp", "reference_images": ["refs/lamp.png"]},
    {"id": "b", "prompt": "a blue mug", "size": "1536x1024"},
    {"id": "c", "prompt": "a bad size", "size": "1000x1000"},
]


@pytest.fixture
def s3_ref(s3_bucket: str) -> str:
    buf = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 30, 30)).save(buf, format="PNG")
    with fsspec.open(f"{s3_bucket}/in/refs/lamp.png", "wb") as f:
        f.write(buf.getvalue())
    return s3_bucket


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_plan_manifest_on_s3(s3_ref: str, make_planner, fmt: str) -> None:
    url = write_manifest(f"{s3_ref}/in/manifest.{fmt}", ROWS)
    jobs, rejects = plan_all(make_planner(), url)
    assert [j.row_id for j in jobs] == ["a", "b"]
    # The relative reference resolved next to the manifest, in the bucket.
    assert jobs[0].references[0].uri == f"{s3_ref}/in/refs/lamp.png"
    assert (jobs[0].references[0].width, jobs[0].references[0].height) == (256, 256)
    assert [(r.row, r.column, r.code) for r in rejects] == [(3, "size", "bad_size")]


def test_missing_reference_on_s3_rejects_only_that_row(s3_bucket: str, make_planner) -> None:
    url = write_manifest(f"{s3_bucket}/m.csv", ROWS)
    jobs, rejects = plan_all(make_planner(), url)
    assert [j.row_id for j in jobs] == ["b"]
    assert {(r.id, r.column) for r in rejects} == {("a", "reference_images"), ("c", "size")}


def test_missing_manifest_on_s3(s3_bucket: str, make_planner) -> None:
    with pytest.raises(ManifestError, match="not found"):
        plan_all(make_planner(), f"{s3_bucket}/nope.csv")


def test_rejects_file_written_whole_to_s3(s3_bucket: str, make_planner) -> None:
    url = write_manifest(f"{s3_bucket}/m.csv", ROWS)
    _, rejects = plan_all(make_planner(), url)
    with rejects_file(f"{s3_bucket}/out/m.rejects.csv") as write:
        for r in rejects:
            write(r)
        # Nothing is visible until the block ends.
        assert not fsspec.filesystem("s3").exists(f"{s3_bucket}/out/m.rejects.csv")
    with fsspec.open(f"{s3_bucket}/out/m.rejects.csv", "r") as f:
        lines = list(csv.DictReader(f))
    assert {line["id"] for line in lines} == {"a", "c"}


def test_intermittent_s3_write_failures_are_retried_and_leave_nothing_partial(
    s3_bucket: str, make_planner, prices, tmp_path, monkeypatch
) -> None:
    from assetgen.tasks.catalog import table as catalog
    from assetgen.tasks.config.job import load_job_config
    from assetgen.tasks.generation.placeholder import PlaceholderProvider
    from assetgen.tasks.generation.run import generate
    from assetgen.tasks.store.assets import AssetStore, now_utc

    monkeypatch.setattr("assetgen.tasks.store.assets.WRITE_BACKOFF_S", 0.001)
    manifest = write_manifest(
        str(tmp_path / "m.csv"), [{"id": f"r{i}", "prompt": f"image {i}"} for i in range(6)]
    )
    jobs, _ = plan_all(make_planner(), manifest)
    store = AssetStore(f"{s3_bucket}/assets")
    real_pipe = store.fs.pipe_file
    tries: dict[str, int] = {}

    def flaky(path, data, **kw):
        tries[path] = tries.get(path, 0) + 1
        if tries[path] == 1:  # the first PUT of every object fails, nothing stored
            raise OSError("503 Slow Down")
        return real_pipe(path, data, **kw)

    monkeypatch.setattr(store.fs, "pipe_file", flaky)
    cfg = load_job_config(None, {"limits.ipm": 60_000, "renditions": ["thumb"]})
    report = generate(jobs, cfg, store, "r", now_utc(), prices, PlaceholderProvider(prices))
    assert {o.status for o in report.outcomes} == {"generated"}
    assert report.rendition_errors == []
    keys = [k for k in store.fs.find(f"{s3_bucket}/assets") if "/_" not in k]
    names = sorted(k.rsplit("/", 1)[-1] for k in keys)
    assert names == sorted(["asset.json", "original.png", "thumb.webp"] * 6)
    assert catalog.read_catalog(store).num_rows == 6
    assert min(tries.values()) >= 2  # every object failed once and was retried
