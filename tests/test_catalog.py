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
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks import catalog as cat
from tasks.providers import Usage
from tasks.store import AssetStore, Sidecar, UnsafePath, asset_folder


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
