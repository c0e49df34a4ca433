"""The run report: report.json and the HTML contact sheet, and `assetgen report`."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.catalog.location import CATALOG
from assetgen.tasks.reporting import contact_sheet as rep
from assetgen.tasks.reporting.cards import group_key
from assetgen.tasks.store.assets import AssetStore, UnsafePath, asset_folder
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import write_manifest

SCRIPT = "<script>alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror=alert(1)>'
ROWS: list[dict[str, Any]] = [
    {"id": "chair", "prompt": "a red chair", "campaign": "spring"},
    {"id": "lamp", "prompt": f"a lamp {SCRIPT}", "campaign": "spring"},
    {"id": "vase", "prompt": f"a vase {ATTRIBUTE}", "campaign": "fall", "n": 2},
    {"id": "refused", "prompt": "something [[moderation]]", "campaign": "fall"},
    {"id": "bad-size", "prompt": "a table", "campaign": "fall", "size": "1000x1000"},
]
NEW_ROW = {"id": "stool", "prompt": "a stool", "campaign": "winter"}


@dataclass
class Runs:
    store: AssetStore
    root: Path
    first: dict[str, Any]  # chair, lamp, vase x2 generated; refused failed; bad-size rejected
    second: dict[str, Any]  # the same plus a stool: four already stored, refused again
    stored_before_second: set[str]


def run_cli(server: FakeOpenAI, manifest: str, store: Path, config: Path) -> dict[str, Any]:
    """`assetgen run` with the OpenAI provider against the test server; its summary."""
    args = ["run", manifest, "-c", str(config), "--store", str(store), "--json"]
    args += ["--provider", "openai", "--ipm", "60000"]
    env = {"OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": server.base_url, "COLUMNS": "1000"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 1, result.output  # the refused row fails
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def runs(
    prefect_harness: None, openai_server: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Runs:
    openai_server.reset()
    openai_server.api_key = FAKE_KEY
    tmp = tmp_path_factory.mktemp("report")
    config = tmp / "job.yaml"
    config.write_text("partition_by: [campaign]\nrenditions: [thumb, listing]\n")
    root = tmp / "store"
    first = run_cli(openai_server, write_manifest(str(tmp / "a.csv"), ROWS), root, config)
    store = AssetStore(str(root))
    before = set(store.existing())
    manifest = write_manifest(str(tmp / "b.csv"), [*ROWS, NEW_ROW])
    second = run_cli(openai_server, manifest, root, config)
    return Runs(store, root, first, second, before)


def entries_by_row(report: rep.Report) -> dict[tuple[str | None, int | None], rep.ReportEntry]:
    return {(e.row_id, e.variant): e for e in report.entries}


def test_entries_cover_generated_failed_and_rejected_rows_grouped_by_partition(
    runs: Runs,
) -> None:
    report = rep.build_report(runs.store, runs.first)
    assert report.run_id == runs.first["run_id"]
    assert report.counts == {"generated": 4, "failed": 1}
    assert [key for key, _ in report.groups()] == ["campaign=fall", "campaign=spring"]
    for key, entries in report.groups():
        assert all(group_key(e.partition) == key for e in entries)
    fall = dict(report.groups())["campaign=fall"]
    assert [(e.row_id, e.variant) for e in fall] == [("vase", 0), ("vase", 1), ("refused", 0)]

    by_row = entries_by_row(report)
    refused = by_row[("refused", 0)]
    assert refused.status == "failed" and refused.thumbnail is None
    assert "moderation_blocked" in (refused.error or "")
    assert by_row[("chair", 0)].cost_usd > 0 and by_row[("chair", 0)].model == "gpt-image-2"

    (rejected,) = report.rejected
    assert (rejected.row, rejected.id, rejected.column) == (5, "bad-size", "size")
    assert "multiples of 16" in rejected.reason


def test_thumbnails_are_the_smallest_rendition_relative_to_the_report_folder(runs: Runs) -> None:
    report = rep.build_report(runs.store, runs.first)
    folder = runs.root / rep.report_folder(report.run_id)
    generated = [e for e in report.entries if e.status == "generated"]
    assert len(generated) == 4
    for entry in generated:
        assert entry.thumbnail and entry.thumbnail.startswith("../../")
        assert entry.thumbnail.endswith("/thumb.webp")  # 256 px, not the 800 px listing
        assert (entry.thumbnail_width, entry.thumbnail_height) == (256, 256)
        for link in (entry.thumbnail, entry.full):
            assert link is not None
            target = (folder / unquote(link)).resolve()
            assert target.is_file(), link
            assert target.is_relative_to(runs.root.resolve())
        assert entry.full and entry.full.endswith("/original.png")


def test_write_report_writes_json_and_html_whole(runs: Runs) -> None:
    uri = rep.write_report(runs.store, runs.first)
    folder = runs.root / rep.report_folder(runs.first["run_id"])
    assert uri == runs.store.uri(f"{rep.report_folder(runs.first['run_id'])}/index.html")
    data = json.loads((folder / "report.json").read_text())
    assert data["summary"] == runs.first
    assert {e["status"] for e in data["entries"]} == {"generated", "failed"}
    assert {e["group"] for e in data["entries"]} == {"campaign=fall", "campaign=spring"}
    assert data["rejected"][0]["column"] == "size"

    html = (folder / "index.html").read_text()
    # One <img> per generated image; the failed card shows its reason instead.
    assert len(re.findall(r"<img\b", html)) == 4
    assert "moderation_blocked" in html
    assert "bad-size" in html and "multiples of 16" in html
    assert 'http-equiv="Content-Security-Policy"' in html
    assert 'loading="lazy"' not in html
    assert re.search(r"<img [^>]*width=\"256\" height=\"256\"", html)


def test_manifest_text_is_escaped_never_markup(runs: Runs) -> None:
    rep.write_report(runs.store, runs.first)
    html = (runs.root / rep.report_folder(runs.first["run_id"]) / "index.html").read_text()
    assert "<script" not in html.lower()
    assert SCRIPT not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    # Not even inside an attribute: the quote that would end title="..." is escaped too.
    assert 'title="a vase "' not in html


def test_already_stored_assets_are_listed_with_what_this_run_did(runs: Runs) -> None:
    second = runs.second
    assert second["skipped_existing"] == 4 and second["generated"] == 1
    report = rep.build_report(runs.store, second, runs.stored_before_second)
    by_row = entries_by_row(report)
    assert report.counts == {"skipped_existing": 4, "generated": 1, "failed": 1}
    assert report.unlisted_existing == 0
    chair = by_row[("chair", 0)]
    assert chair.status == "skipped_existing" and chair.cost_usd == 0
    assert chair.run_id == runs.first["run_id"]  # the run that made it
    assert chair.thumbnail and chair.thumbnail.endswith("/thumb.webp")
    assert by_row[("stool", 0)].status == "generated"
    assert by_row[("refused", 0)].status == "failed"
    assert [key for key, _ in report.groups()] == [
        "campaign=fall",
        "campaign=spring",
        "campaign=winter",
    ]
    html = rep.render_html(report)
    assert "already stored" in html and len(re.findall(r"<img\b", html)) == 5


def test_without_the_skipped_ids_the_sheet_says_how_many_it_does_not_list(runs: Runs) -> None:
    report = rep.build_report(runs.store, runs.second)
    assert report.unlisted_existing == 4
    assert "4 assets the run found already stored are not listed" in rep.render_html(report)


def test_a_skipped_asset_missing_from_the_catalog_comes_from_its_sidecar(
    runs: Runs, tmp_path: Path
) -> None:
    # The same assets in a store with no catalog: a mapping gives their folders.
    store = AssetStore(str(tmp_path / "copy"))
    runs.store.fs.copy(str(runs.root), str(tmp_path / "copy"), recursive=True)
    store.fs.rm(store.path(CATALOG), recursive=True)
    folders = {k: v for k, v in store.existing().items() if k in runs.stored_before_second}
    report = rep.build_report(store, runs.second, folders)
    assert report.counts == {"skipped_existing": 4}
    assert all(e.thumbnail for e in report.entries)


def test_unsafe_run_ids_are_refused() -> None:
    for bad in ("../x", "a/b", "", ".hidden", "a..b"):
        with pytest.raises(UnsafePath):
            rep.report_folder(bad)
    assert rep.report_folder("20261125T101500Z-3fa9c2-s1") == "_reports/20261125T101500Z-3fa9c2-s1"


# Catalog rows written directly: statuses, partitions and URLs a run rarely makes.


def rendition(store: AssetStore, folder: str, name: str, fmt: str, edge: int) -> dict[str, Any]:
    ext = {"jpeg": "jpg"}.get(fmt, fmt)
    return {
        "name": name,
        "uri": store.uri(f"{folder}/{name}.{ext}"),
        "width": edge,
        "height": edge,
        "format": fmt,
        "bytes": 100,
    }


def catalog_row(store: AssetStore, asset_id: str, **over: Any) -> dict[str, Any]:
    partition = over.pop("partition", {"locale": "en US", "shop": "a#b"})
    folder = asset_folder(partition, asset_id)
    now = datetime(2026, 11, 25, 10, 15, tzinfo=UTC)
    return {
        "asset_id": asset_id,
        "row_id": f"r-{asset_id}",
        "row": 1,
        "variant": 0,
        "partition": partition,
        "status": "generated",
        "model": "gpt-image-2",
        "prompt": "p",
        "size": "1024x1024",
        "quality": "low",
        "cost_usd": 0.01,
        "run_id": "20261125T101500Z-abcdef",
        "created_at": now,
        "recorded_at": now,
        "original_uri": store.uri(f"{folder}/original.png"),
        "renditions": [
            rendition(store, folder, "icon", "webp", 64),  # too small for a card
            rendition(store, folder, "print", "tiff", 300),  # no browser shows it
            rendition(store, folder, "listing", "webp", 800),
            rendition(store, folder, "thumb", "jpeg", 256),
        ],
        "metadata": "{}",
    } | over


def test_statuses_partitions_and_urls_from_catalog_rows(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path / "s"))
    run_id = "20261125T101500Z-abcdef"
    other_spelling = AssetStore(f"file://{tmp_path / 's'}")
    rows = [
        catalog_row(store, "a1"),
        catalog_row(store, "a2", status="budget_exhausted", error="budget: $0.01 left"),
        catalog_row(store, "a3", status="stopped", error="run stopped: 401", original_uri=None),
        catalog_row(store, "a4", renditions=[]),  # the original is the thumbnail
        catalog_row(other_spelling, "a5", partition={}),  # recorded as file://...
        catalog_row(store, "b1", run_id="20261125T101500Z-abcdef-s1"),  # a shard of the run
        catalog_row(store, "x1", run_id="another-run"),
    ]
    cat.commit(store, rows, run_id)
    summary = {"run_id": run_id, "shards": [{"shard": 1}], "skipped_existing": 0}
    report = rep.build_report(store, summary)
    by_id = {e.asset_id: e for e in report.entries}
    assert set(by_id) == {"a1", "a2", "a3", "a4", "a5", "b1"}
    assert report.started_at == datetime(2026, 11, 25, 10, 15, tzinfo=UTC)
    assert [k for k, _ in report.groups()] == ["", "locale=en US / shop=a#b"]

    # Sharp enough for a card (not the 64 px icon), shown by browsers (not tiff).
    assert by_id["a1"].thumbnail == "../../locale=en%2520US/shop=a%2523b/a1/thumb.jpg"
    assert by_id["a4"].thumbnail == "../../locale=en%2520US/shop=a%2523b/a4/original.png"
    assert (by_id["a4"].thumbnail_width, by_id["a4"].thumbnail_height) == (1024, 1024)
    assert by_id["a5"].thumbnail == "../../a5/thumb.jpg"
    for asset_id in ("a2", "a3"):
        assert by_id[asset_id].thumbnail is None
    html = rep.render_html(report)
    assert "left for budget" in html and "budget: $0.01 left" in html
    assert "not sent" in html and "run stopped: 401" in html
    assert "(no partition)" in html
    assert len(re.findall(r"<img\b", html)) == 4


# `assetgen report`


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, ["report", *args], env={"COLUMNS": "1000"})


def test_cli_builds_the_sheet_when_missing_then_prints_where_it_is(
    runs: Runs, tmp_path: Path
) -> None:
    store = tmp_path / "copy"
    runs.store.fs.copy(str(runs.root), str(store), recursive=True)
    run_id = runs.second["run_id"]
    index = store / "_reports" / run_id / "index.html"
    # As before the flow wrote reports: a run with a summary and no report.
    shutil.rmtree(store / "_reports", ignore_errors=True)

    built = invoke(run_id, "--store", str(store), "--json")
    assert built.exit_code == 0, built.output
    result = json.loads(built.stdout)
    assert result["built"] is True and result["index_html"] == str(index)
    assert index.is_file()
    assert result["counts"] == {"generated": 1, "failed": 1}

    written = index.stat().st_mtime_ns
    again = invoke(run_id, "--store", str(store))
    assert again.exit_code == 0
    assert again.stdout.strip() == str(index)
    assert index.stat().st_mtime_ns == written  # there already: not written again


def test_cli_rebuild_keeps_the_already_stored_assets_an_earlier_report_listed(
    runs: Runs, tmp_path: Path
) -> None:
    store = tmp_path / "copy"
    runs.store.fs.copy(str(runs.root), str(store), recursive=True)
    copy = AssetStore(str(store))
    rep.write_report(copy, runs.second, runs.stored_before_second)
    result = invoke(runs.second["run_id"], "--store", str(store), "--rebuild", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["skipped_existing"] == 4


def test_cli_unknown_run_exits_2(tmp_path: Path) -> None:
    result = invoke("20261125T101500Z-000000", "--store", str(tmp_path / "none"))
    assert result.exit_code == 2
    assert "no run '20261125T101500Z-000000'" in result.stderr
    bad = invoke("../../etc", "--store", str(tmp_path))
    assert bad.exit_code == 2 and "not a run id" in bad.stderr


def test_cli_open_opens_local_sheets_only(
    runs: Runs, monkeypatch: pytest.MonkeyPatch, s3_bucket: str
) -> None:
    opened: list[str] = []
    monkeypatch.setattr("webbrowser.open", lambda url: opened.append(url) or True)
    run_id = runs.first["run_id"]
    result = invoke(run_id, "--store", str(runs.root), "--open")
    assert result.exit_code == 0, result.output
    assert opened == [(runs.root / "_reports" / run_id / "index.html").as_uri()]

    remote = AssetStore(s3_bucket)
    remote.write_json(f"_runs/{run_id}/summary.json", runs.first)
    result = invoke(run_id, "--store", s3_bucket, "--open", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["index_html"] == f"{s3_bucket}/_reports/{run_id}/index.html"
    assert out["built"] is True and out["opened"] is False
    assert "cannot open" in result.stderr
    assert remote.fs.exists(remote.path(f"_reports/{run_id}/report.json"))
    assert opened == [opened[0]]  # nothing more


def test_batch_and_minimal_summaries_render(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path / "empty"))
    bare = rep.render_html(rep.build_report(store, {"run_id": "old-run"}))
    assert "No images and no failed jobs" in bare and "no budget cap" in bare
    batch = {"run_id": "r1", "submitted": 5, "batches": [{}], "batch_reserved_usd": 0.12}
    html = rep.render_html(rep.build_report(store, batch | {"cost_usd": 0.0, "budget_usd": 2.0}))
    assert "5 jobs submitted in 1 Batch API batches" in html
    assert "writes this sheet again with them" in html
