"""The Parquet catalog: latest row wins, compaction without gaps, rebuild from sidecars."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.plan.pricing import Usage
from assetgen.tasks.store.assets import AssetStore, Sidecar, UnsafePath, asset_folder


def sidecar(asset_id: str, **over: Any) -> Sidecar:
    base: dict[str, Any] = {
        "asset_id": asset_id,
        "run_id": "run-1",
        "created_at": datetime(2026, 11, 1, tzinfo=UTC),
        "row": 1,
        "row_id": f"sku-{asset_id}",
        "variant": 0,
        "partition": {"campaign": "spring"},
        "metadata": {"color": "red"},
        "provider": "placeholder",
        "model": "gpt-image-2",
        "prompt": "a chair",
        "params": {"size": "1024x1024", "quality": "low", "output_format": "png"},
        "original": "original.png",
        "bytes": 10,
        "sha256": "ab" * 32,
        "usage": Usage(output_tokens=196),
        "cost_usd": 0.006,
        "latency_s": 1.0,
        "attempts": 1,
    }
    return Sidecar(**(base | over))


def put_asset(store: AssetStore, sc: Sidecar) -> str:
    folder = asset_folder(sc.partition, sc.asset_id)
    store.write_asset(folder, sc.original, b"png-bytes", sc)
    return folder


def row(store: AssetStore, asset_id: str, **over: Any) -> dict[str, Any]:
    return cat.row_from_sidecar(store, sidecar(asset_id)) | over


@pytest.fixture
def store(tmp_path: Path) -> AssetStore:
    return AssetStore(str(tmp_path / "store"))


def test_latest_row_per_asset_wins(store: AssetStore) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    cat.write_part(
        store,
        "_catalog/part-a.parquet",
        [
            row(store, "a1", status="failed", error="500", recorded_at=t0),
            row(store, "a2", recorded_at=t0),
        ],
    )
    cat.write_part(
        store,
        "_catalog/part-b.parquet",
        [
            row(store, "a1", status="generated", recorded_at=t0 + timedelta(hours=1)),
        ],
    )
    table = cat.read_catalog(store)
    assert table.num_rows == 2
    statuses = dict(zip(table["asset_id"].to_pylist(), table["status"].to_pylist(), strict=True))
    assert statuses == {"a1": "generated", "a2": "generated"}
    assert cat.read_catalog(store, latest=False).num_rows == 3


def test_writer_checkpoints_parts_as_it_goes(store: AssetStore, monkeypatch) -> None:
    monkeypatch.setattr(cat, "FLUSH_ROWS", 3)
    writer = cat.CatalogWriter(store, "run-9")
    for i in range(7):
        writer.add(row(store, f"a{i}"))
    # Two parts published before the run ends: a crash now keeps six rows.
    assert len(cat.part_paths(store)) == 2
    assert cat.read_catalog(store).num_rows == 6
    writer.flush()
    assert cat.read_catalog(store).num_rows == 7


def test_select_by_partition_metadata_column_status_and_since(store: AssetStore) -> None:
    cat.write_part(
        store,
        "_catalog/p.parquet",
        [
            row(store, "a1"),
            row(store, "a2", partition={"campaign": "fall"}),
            row(store, "a3", status="failed", metadata='{"color": "blue"}'),
            row(store, "a4", created_at=datetime(2026, 12, 1, tzinfo=UTC)),
        ],
    )
    table = cat.read_catalog(store)

    def ids(**kw: Any) -> set[str]:
        return set(cat.select(table, **kw)["asset_id"].to_pylist())

    assert ids(where=[("campaign", "spring")]) == {"a1", "a3", "a4"}
    assert ids(where=[("color", "blue")]) == {"a3"}
    assert ids(where=[("row_id", "sku-a2")]) == {"a2"}
    assert ids(status="failed") == {"a3"}
    assert ids(since=datetime(2026, 11, 15, tzinfo=UTC)) == {"a4"}
    assert ids(where=[("campaign", "spring"), ("color", "red")]) == {"a1", "a4"}


def test_rebuild_from_sidecars_alone(store: AssetStore) -> None:
    for i in range(5):
        put_asset(store, sidecar(f"b{i}", partition={"campaign": f"c{i % 2}"}))
    cat.write_part(store, "_catalog/stale.parquet", [row(store, "gone")])
    assert cat.rebuild(store) == 5
    table = cat.read_catalog(store)
    assert sorted(table["asset_id"].to_pylist()) == [f"b{i}" for i in range(5)]
    uri = table.to_pylist()[0]["original_uri"]
    assert Path(uri).read_bytes() == b"png-bytes"
    assert len(cat.part_paths(store)) == 1


def test_compact_merges_parts_and_readers_never_see_a_gap_or_a_double(
    store: AssetStore, monkeypatch
) -> None:
    for p in range(20):
        cat.write_part(
            store, f"_catalog/part-{p:03d}.parquet", [row(store, f"a{p}x{i}") for i in range(5)]
        )
    expected = {f"a{p}x{i}" for p in range(20) for i in range(5)}
    seen: list[list[str]] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(cat.read_catalog(store)["asset_id"].to_pylist())
            except Exception as e:
                errors.append(e)

    # Slow each delete a little so readers run in the middle of compaction.
    real_rm = store.fs.rm_file

    def slow_rm(path: str) -> None:
        stop.wait(0.005)
        real_rm(path)

    monkeypatch.setattr(store.fs, "rm_file", slow_rm)
    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    parts, assets = cat.compact(store)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert (parts, assets) == (20, 100)
    assert len(cat.part_paths(store)) == 1
    assert len(seen) > 2
    for ids in seen:
        assert len(ids) == len(set(ids)) == 100 and set(ids) == expected


def test_partition_values_never_leave_the_store() -> None:
    assert asset_folder({"campaign": "a/b"}, "abc") == "campaign=a%2Fb/abc"
    for bad in ("..", ".", ""):
        with pytest.raises(UnsafePath):
            asset_folder({"campaign": bad}, "abc")
    with pytest.raises(UnsafePath):
        asset_folder({}, "../etc")


def test_cli_list_export_csv_is_safe_for_spreadsheets(store: AssetStore, tmp_path: Path) -> None:
    cat.write_part(
        store,
        "_catalog/p.parquet",
        [
            row(store, "a1", prompt='=HYPERLINK("http://evil")'),
            row(store, "a2", partition={"campaign": "fall"}),
        ],
    )
    runner = CliRunner()
    listed = runner.invoke(
        app, ["catalog", "list", "--store", store.url, "--where", "campaign=fall"]
    )
    assert listed.exit_code == 0, listed.output
    assert "a2" in listed.stdout and "a1" not in listed.stdout
    out = tmp_path / "export.csv"
    exported = runner.invoke(
        app, ["catalog", "export", "--store", store.url, "--format", "csv", "-o", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    rows = {r["asset_id"]: r for r in csv.DictReader(io.StringIO(out.read_text()))}
    assert rows["a1"]["prompt"].startswith("'=")
    as_json = runner.invoke(app, ["catalog", "show", "a2", "--store", store.url])
    assert '"campaign"' in as_json.stdout and as_json.exit_code == 0
    missing = runner.invoke(app, ["catalog", "show", "nope", "--store", store.url])
    assert missing.exit_code == 2


def test_a_checkpoint_cut_short_leaves_the_catalog_as_it_was(
    store: AssetStore, monkeypatch
) -> None:
    writer = cat.CatalogWriter(store, "run-1")
    writer.add(row(store, "a1"))
    writer.flush()

    def killed(src: str, dst: str) -> None:
        raise SystemExit("killed while publishing a part")

    writer.add(row(store, "a2"))
    monkeypatch.setattr("os.replace", killed)
    with pytest.raises(SystemExit):
        writer.flush()
    monkeypatch.undo()
    # What SIGKILL leaves (no cleanup runs): a half-written temporary file.
    (Path(store.path("_catalog")) / ".tmp-abc.part").write_bytes(b"PAR1 half a part")
    assert cat.read_catalog(store)["asset_id"].to_pylist() == ["a1"]


def test_select_on_partition_and_metadata_keys_is_exact(store: AssetStore) -> None:
    meta = {
        "a1": {"color": "red", "gtin": "400638"},
        "a2": {"color": "reddish", "gtin": "4006381", "note": '"color": "red"'},
        "a3": {"color": 'say "red"', "size_cm": 1.5, "in_stock": True, "tag": None},
        "a4": {"color": "rød", "nested": {"color": "red"}, "dims": [1, 2]},
        "a5": {"campaign": "spring"},  # no partition key: the metadata's counts
        "a6": {"campaign": "fall"},  # the partition's wins over the metadata's
    }
    partition = {"a5": {}, "a6": {"campaign": "spring"}}
    cat.write_part(
        store,
        "_catalog/p.parquet",
        [
            row(store, a, metadata=json.dumps(m), partition=partition.get(a, {"campaign": "x"}))
            for a, m in meta.items()
        ],
    )
    table = cat.read_catalog(store)

    def ids(key: str, value: str, **kw: Any) -> set[str]:
        return set(cat.select(table, [(key, value)], **kw)["asset_id"].to_pylist())

    assert ids("color", "red") == {"a1"}  # not a substring, nor a nested or quoted "color"
    assert ids("gtin", "400638") == {"a1"}
    assert ids("color", 'say "red"') == {"a3"}
    assert ids("color", "rød") == {"a4"}  # json.dumps writes it \u00f8
    # str() of what json.loads gives, as before: numbers, booleans, null, lists.
    assert ids("size_cm", "1.5") == ids("in_stock", "True") == ids("tag", "None") == {"a3"}
    assert ids("dims", "[1, 2]") == {"a4"}
    assert ids("campaign", "spring") == {"a5", "a6"}
    assert ids("campaign", "fall") == set()
    assert ids("campaign", "x", status="failed") == set()  # no row left before the key


def test_compact_keeps_the_latest_rows_and_a_later_part_still_wins(store: AssetStore) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    for p in range(3):
        rows = [row(store, f"a{i}", cost_usd=p, recorded_at=t0 + timedelta(p)) for i in range(4)]
        cat.write_part(store, f"_catalog/part-{p}.parquet", rows)
    full = cat.read_catalog(store)
    assert cat.compact(store) == (3, 4)
    assert cat.read_catalog(store).equals(full)
    assert cat.compact(store) == (1, 4)  # already one row per asset: written as it is
    assert cat.read_catalog(store).equals(full)
    older = row(store, "a2", cost_usd=9, recorded_at=t0)  # than the compacted row: loses
    newer = row(store, "a1", cost_usd=7, recorded_at=t0 + timedelta(9))
    cat.write_part(store, "_catalog/part-9.parquet", [older, newer])
    table = cat.read_catalog(store)
    costs = dict(zip(table["asset_id"].to_pylist(), table["cost_usd"].to_pylist(), strict=True))
    assert costs == {"a0": 2, "a1": 7, "a2": 2, "a3": 2}


def test_query_is_select_on_read_catalog(store: AssetStore, tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    old = {"created_at": t0, "recorded_at": t0}
    new = {"created_at": t0 + timedelta(hours=1), "recorded_at": t0 + timedelta(hours=1)}
    cat.write_part(
        store,
        "_catalog/a.parquet",
        [
            row(store, "a1", status="failed", metadata='{"color": "blue"}', **old),
            row(store, "a2", row_id="chair", **old),
            row(store, "a3", row_id="chair", **new),  # supersedes a2
        ],
    )
    fall = {"campaign": "fall"}
    others = [row(store, f"b{i}") for i in range(6)]  # a query can leave out most rows
    cat.write_part(
        store,
        "_catalog/b.parquet",
        [row(store, "a1", **new), row(store, "a4", partition=fall), *others],
    )
    full = cat.read_catalog(store)
    cases: list[dict[str, Any]] = [
        {},
        {"status": "failed"},  # a1's older row failed, its newest did not
        {"where": [("color", "blue")]},
        {"where": [("campaign", "spring"), ("row_id", "chair")]},
        {"where": [(cat.SUPERSEDED_BY, "a3")]},
        {"since": t0 + timedelta(minutes=30), "where": [("campaign", "spring")]},
    ]
    for kw in cases:
        assert cat.query(store, **kw).equals(cat.select(full, **kw)), kw
    assert cat.query(store, status="failed").num_rows == 0
    assert cat.query(store, [(cat.SUPERSEDED_BY, "a3")])["asset_id"].to_pylist() == ["a2"]

    shown = cat.query(store, [("campaign", "spring")], columns=["size"])
    names = [n for n in cat.SCHEMA.names if n in {"size", *cat.SLOT_COLUMNS}]
    assert shown.column_names == [*names, cat.SUPERSEDED_BY]
    assert shown.equals(cat.select(full, [("campaign", "spring")]).select(shown.column_names))
    empty = AssetStore(str(tmp_path / "empty"))
    assert cat.query(empty, [("campaign", "x")]).equals(cat.read_catalog(empty))


def test_a_part_without_some_columns_reads_them_as_null(store: AssetStore) -> None:
    old = pa.table({"asset_id": ["a1"], "status": ["generated"], "metadata": ['{"k": "v"}']})
    buf = io.BytesIO()
    pq.write_table(old, buf)
    store.write_bytes("_catalog/old.parquet", buf.getvalue())
    table = cat.read_catalog(store, latest=False)
    assert table.schema == cat.SCHEMA
    assert table.to_pylist()[0]["row_id"] is None


def test_identical_rows_of_an_asset_count_once(store: AssetStore) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    old = {"created_at": t0, "recorded_at": t0}
    new = {"created_at": t0 + timedelta(hours=1), "recorded_at": t0 + timedelta(hours=1)}
    rows = [
        row(store, "a1", status="failed", metadata='{"color": "blue"}', **old),
        row(store, "a2", row_id="chair", **old),
        row(store, "a3", row_id="chair", **new),  # supersedes a2
        *(row(store, f"b{i}") for i in range(6)),
    ]
    cat.write_part(store, "_catalog/part-1.parquet", rows)
    once = cat.read_catalog(store)
    # What a merge or compaction leaves for a moment (or after a crash): every row twice.
    cat.write_part(store, "_catalog/part-0.parquet", rows)
    cat.write_part(store, "_catalog/part-2.parquet", rows[1:3])
    assert cat.read_catalog(store, latest=False).num_rows == 2 * len(rows) + 2
    assert cat.read_catalog(store).equals(once)
    latest = cat.latest_rows(cat.read_catalog(store, latest=False))
    assert latest.equals(once.drop_columns([cat.SUPERSEDED_BY]))
    for kw in [{}, {"where": [("row_id", "chair")]}, {"where": [(cat.SUPERSEDED_BY, "a3")]}]:
        assert cat.query(store, **kw).equals(cat.select(once, **kw)), kw
    assert cat.query(store, [(cat.SUPERSEDED_BY, "a3")])["asset_id"].to_pylist() == ["a2"]


@pytest.fixture(params=["local", "memory", "s3"])
def any_store(request, tmp_path: Path) -> AssetStore:
    if request.param == "s3":
        return AssetStore(f"{request.getfixturevalue('s3_bucket')}/store")
    if request.param == "memory":
        return AssetStore(f"{request.getfixturevalue('memory_dir')}/store")
    return AssetStore(str(tmp_path / "store"))


def parts_of(store: AssetStore) -> list[str]:
    return [p.rsplit("/", 1)[-1] for p in cat.part_paths(store)]


def test_a_run_ends_with_one_part_holding_every_row(any_store: AssetStore, monkeypatch) -> None:
    store = any_store
    monkeypatch.setattr(cat, "FLUSH_ROWS", 3)
    # Read 2 parts at a time, written in row groups of 4 rows or more: two here.
    monkeypatch.setattr(cat, "READ_THREADS", 2)
    monkeypatch.setattr(cat, "TAKE_ROWS", 4)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    other = cat.CatalogWriter(store, "run-0")  # another run's part: left alone
    other.add(row(store, "a0", cost_usd=1.0, recorded_at=t0))
    other.flush()
    writer = cat.CatalogWriter(store, "run-9")
    for i in range(11):
        writer.add(row(store, f"a{i}", recorded_at=t0 + timedelta(seconds=i)))
    assert len(parts_of(store)) == 1 + 3  # checkpoints as the run goes
    writer.flush()  # the run's end: 3 parts and the rows left become one part
    names = parts_of(store)
    assert len(names) == 2 and names[0].startswith("part-run-0-")
    assert names[1].startswith("part-run-9-") and names[1].endswith("-00001-00004.parquet")
    merged = pq.ParquetFile(io.BytesIO(store.fs.cat_file(cat.part_paths(store)[1])))
    assert merged.schema_arrow.equals(cat.SCHEMA) and merged.metadata.num_row_groups == 2
    assert merged.read()["asset_id"].to_pylist() == [f"a{i}" for i in range(11)]  # in order
    table = cat.read_catalog(store)
    assert table["asset_id"].to_pylist() == sorted(f"a{i}" for i in range(11))
    assert cat.read_catalog(store, latest=False).num_rows == 12  # no row twice
    assert writer.rows_written == 11 and writer.merge_errors == []

    # More rows, then flush again (a collected batch): they become one more
    # part, and a later row still wins over the merged one.
    for i in range(4):
        writer.add(row(store, "a1", cost_usd=i, recorded_at=t0 + timedelta(hours=1, seconds=i)))
    writer.flush()
    names = parts_of(store)
    assert len(names) == 3 and names[2].endswith("-00005-00006.parquet")
    table = cat.read_catalog(store)
    assert table.filter(pc.equal(table["asset_id"], "a1"))["cost_usd"].to_pylist() == [3]
    writer.add(row(store, "a2"))
    writer.flush()  # a single part: kept as it is
    assert parts_of(store)[3].endswith("-00007.parquet") and len(parts_of(store)) == 4


def test_a_reader_during_the_merge_sees_each_asset_once(store: AssetStore, monkeypatch) -> None:
    monkeypatch.setattr(cat, "FLUSH_ROWS", 2)
    writer = cat.CatalogWriter(store, "run-1")
    for i in range(7):
        writer.add(row(store, f"a{i}", row_id="chair" if i < 2 else f"sku-{i}"))
    assert len(parts_of(store)) == 3 and cat.read_catalog(store).num_rows == 6
    seen: list[int] = []
    real_remove = cat._remove

    def remove_after_a_look(store_: AssetStore, paths: list[str]) -> None:
        # Between publishing the merged part and deleting the small ones.
        assert len(parts_of(store)) == 4 + 1
        assert cat.read_catalog(store, latest=False).num_rows == 2 * 7
        table = cat.read_catalog(store)
        assert table["asset_id"].to_pylist() == [f"a{i}" for i in range(7)]
        for kw in [{}, {"where": [("row_id", "chair")]}, {"where": [(cat.SUPERSEDED_BY, "a1")]}]:
            assert cat.query(store, **kw).equals(cat.select(table, **kw)), kw
        seen.append(table.num_rows)
        real_remove(store_, paths)

    monkeypatch.setattr(cat, "_remove", remove_after_a_look)
    writer.flush()
    assert seen == [7] and len(parts_of(store)) == 1
    assert cat.read_catalog(store)["asset_id"].to_pylist() == [f"a{i}" for i in range(7)]
    assert writer.merge_errors == []


def checkpointed(store: AssetStore, monkeypatch: pytest.MonkeyPatch, rows: int) -> Any:
    """A run-1 writer that has added a0..a<rows-1>, checkpointed every 2 rows, not flushed."""
    monkeypatch.setattr(cat, "FLUSH_ROWS", 2)
    writer = cat.CatalogWriter(store, "run-1")
    for i in range(rows):
        writer.add(row(store, f"a{i}"))
    return writer


def test_a_crash_during_the_merge_is_harmless(store: AssetStore, monkeypatch) -> None:
    checkpointed(store, monkeypatch, 6)
    small = cat.part_paths(store)
    expected = cat.read_catalog(store)
    relative = [p[len(store.path("")) :] for p in small]

    def killed(*args: Any) -> None:
        raise SystemExit("killed")

    # Killed before the merged part is published: the small parts as they were.
    monkeypatch.setattr(store, "write_bytes", killed)
    with pytest.raises(SystemExit):
        cat.merge_parts(store, relative, "_catalog/part-run-1-x-00001-00003.parquet")
    monkeypatch.undo()
    assert cat.part_paths(store) == small and cat.read_catalog(store).equals(expected)

    # Killed after it, before (or while) deleting them: both, every row twice.
    monkeypatch.setattr(cat, "_remove", killed)
    with pytest.raises(SystemExit):
        cat.merge_parts(store, relative, "_catalog/part-run-1-x-00001-00003.parquet")
    monkeypatch.undo()
    assert len(cat.part_paths(store)) == 4
    assert cat.read_catalog(store).equals(expected)
    assert cat.compact(store) == (4, 6)  # what the next compact makes of it
    assert cat.read_catalog(store).equals(expected)


def test_an_interrupted_run_keeps_its_parts(store: AssetStore, monkeypatch) -> None:
    checkpointed(store, monkeypatch, 7)
    # Killed before its last flush(): the checkpoints, never merged; the buffered row is lost.
    assert len(parts_of(store)) == 3 and cat.read_catalog(store).num_rows == 6
    later = cat.CatalogWriter(store, "run-2")  # the next run merges its own parts only
    for i in range(3):
        later.add(row(store, f"b{i}"))
    later.flush()
    assert len(parts_of(store)) == 3 + 1 and cat.read_catalog(store).num_rows == 9


def test_a_merge_that_fails_or_loses_a_part_changes_nothing(store: AssetStore, monkeypatch) -> None:
    writer = checkpointed(store, monkeypatch, 5)
    before = cat.part_paths(store)

    real_write = store.write_bytes

    def slow_down(relative: str, data: bytes) -> str:
        if relative.endswith("-00001-00003.parquet"):  # the merged part
            raise OSError("503 Slow Down")
        return real_write(relative, data)

    monkeypatch.setattr(store, "write_bytes", slow_down)
    writer.flush()  # the run does not fail for it: every row is in its parts
    monkeypatch.undo()
    assert writer.merge_errors == ["OSError: 503 Slow Down"]
    assert len(cat.part_paths(store)) == 3 and cat.read_catalog(store).num_rows == 5
    # A compaction took a part first (its rows are in the compacted part): no merge.
    gone = [p[len(store.path("")) :] for p in before] + ["_catalog/part-run-1-x-00009.parquet"]
    assert cat.merge_parts(store, gone, "_catalog/part-run-1-x-00001-00009.parquet") is False
    assert len(cat.part_paths(store)) == 3


def test_a_generation_run_leaves_one_catalog_part(
    store: AssetStore, make_planner, prices, tmp_path: Path, monkeypatch
) -> None:
    from assetgen.tasks.config.job import load_job_config
    from assetgen.tasks.generation.placeholder import PlaceholderProvider
    from assetgen.tasks.generation.run import generate
    from assetgen.tasks.store.assets import now_utc
    from tests.helpers import plan_all, write_manifest

    monkeypatch.setattr(cat, "FLUSH_ROWS", 2)
    manifest = write_manifest(
        str(tmp_path / "m.csv"), [{"id": f"r{i}", "prompt": f"image {i}"} for i in range(7)]
    )
    jobs, _ = plan_all(make_planner(), manifest)
    cfg = load_job_config(None, {"limits.ipm": 60_000, "renditions": []})
    report = generate(jobs, cfg, store, "r", now_utc(), prices, PlaceholderProvider(prices))
    assert report.catalog_rows == 7
    assert len(parts_of(store)) == 1 and parts_of(store)[0].startswith("part-r-")
    table = cat.read_catalog(store)
    assert sorted(table["row_id"].to_pylist()) == [f"r{i}" for i in range(7)]


def test_read_matching_returns_every_stored_row_matching_any_column(store: AssetStore) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    later = {"recorded_at": t0 + timedelta(hours=1)}
    cat.write_part(
        store,
        "_catalog/a.parquet",
        [
            row(store, "a1", run_id="r1"),
            row(store, "a2", run_id="r1"),
            row(store, "a3", run_id="r0"),
        ],
    )
    cat.write_part(store, "_catalog/b.parquet", [row(store, "a2", run_id="r2", **later)])
    cat.write_part(
        store, "_catalog/c.parquet", [row(store, f"b{i}", run_id="r9") for i in range(5)]
    )
    found = cat.read_matching(store, {"run_id": ["r1"], "asset_id": ["a3"]})
    assert found.schema == cat.SCHEMA
    assert sorted(zip(found["asset_id"].to_pylist(), found["run_id"].to_pylist(), strict=True)) == [
        ("a1", "r1"),
        ("a2", "r1"),  # the older row of a2 too: it is this run's
        ("a3", "r0"),
    ]
    assert cat.read_matching(store, {"run_id": ["nope"], "asset_id": []}).num_rows == 0


def test_incomplete_names_stored_assets_the_catalog_lacks_or_lists_without_a_preset(
    store: AssetStore,
) -> None:
    from assetgen.tasks.renditions.postprocess import incomplete

    def rendition(name: str) -> dict[str, Any]:
        return {"name": name, "uri": f"x/{name}.webp", "width": 1, "height": 1, "format": "webp"}

    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    cat.write_part(
        store,
        "_catalog/a.parquet",
        [
            row(store, "a1", renditions=[rendition("thumb")], recorded_at=t0),
            row(store, "a2", renditions=[rendition("thumb")]),
            row(store, "b1", renditions=[]),  # not asked about
        ],
    )
    # a1's newer row has both presets; a2 has only one; a3 is not catalogued.
    newer = row(store, "a1", renditions=[rendition("thumb"), rendition("listing")])
    cat.write_part(store, "_catalog/b.parquet", [newer | {"recorded_at": t0 + timedelta(1)}])
    folders = {"a1": "f/a1", "a2": "f/a2", "a3": "f/a3"}
    presets = {"thumb": None, "listing": None}
    assert incomplete(store, presets, folders) == ["f/a2", "f/a3"]  # type: ignore[arg-type]
