"""The catalog's Delta table: upserts by asset_id, selection, checkpoints, rebuild, compact."""

from __future__ import annotations

import csv
import io
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
from deltalake import DeltaTable, write_deltalake
from typer.testing import CliRunner

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.catalog import writer as catalog_writer
from assetgen.tasks.catalog.location import CATALOG, CatalogUnavailable, location
from assetgen.tasks.catalog.rows import SCHEMA, SUPERSEDED_BY, SUPERSEDES, row_from_sidecar
from assetgen.tasks.catalog.select import select
from assetgen.tasks.catalog.writer import CatalogWriter
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
    return row_from_sidecar(store, sidecar(asset_id)) | over


def by_id(table: pa.Table, column: str) -> dict[str, Any]:
    return dict(zip(table["asset_id"].to_pylist(), table[column].to_pylist(), strict=True))


def sorted_rows(table: pa.Table) -> pa.Table:
    return table.sort_by("asset_id")


@pytest.fixture
def store(tmp_path: Path) -> AssetStore:
    return AssetStore(str(tmp_path / "store"))


def test_a_commit_upserts_one_row_per_asset(store: AssetStore) -> None:
    cat.commit(store, [row(store, "a1", status="failed", error="500"), row(store, "a2")], "r1")
    cat.commit(store, [row(store, "a1", status="generated")], "r2")
    table = cat.read_catalog(store)
    assert table.schema == SCHEMA
    assert by_id(table, "status") == {"a1": "generated", "a2": "generated"}
    # Anyone else opening the table sees the same: one row per asset, two versions.
    uri, _ = location(store)
    other = DeltaTable(uri)
    assert other.version() == 1 and other.count() == 2
    assert [(e["version"], e["run_id"]) for e in cat.history(store)] == [(1, "r2"), (0, "r1")]
    # Within one commit the last row of an asset wins.
    cat.commit(store, [row(store, "a2", cost_usd=1.0), row(store, "a2", cost_usd=2.0)], "r3")
    assert by_id(cat.read_catalog(store), "cost_usd")["a2"] == 2.0


def test_writer_commits_checkpoints_as_it_goes(store: AssetStore, monkeypatch) -> None:
    monkeypatch.setattr(catalog_writer, "FLUSH_ROWS", 3)
    writer = CatalogWriter(store, "run-9")
    for i in range(7):
        writer.add(row(store, f"a{i}"))
    writer.wait()  # the checkpoints run on the writer's own thread
    # Two versions committed before the run ends: a crash now keeps six rows.
    assert len(cat.history(store)) == 2
    assert cat.read_catalog(store).num_rows == 6
    writer.flush()
    assert cat.read_catalog(store).num_rows == 7 and writer.rows_written == 7
    assert {e["run_id"] for e in cat.history(store)} == {"run-9"}


def test_a_checkpoint_committed_twice_is_applied_once(store: AssetStore) -> None:
    cat.commit(store, [row(store, "a1", cost_usd=1.0)], "r1", ("assetgen-r1-x", 1))
    cat.commit(store, [row(store, "a1", cost_usd=2.0)], "r2")
    # A retry of r1's first checkpoint (its answer was lost) must not undo r2's row.
    cat.commit(store, [row(store, "a1", cost_usd=1.0)], "r1", ("assetgen-r1-x", 1))
    assert by_id(cat.read_catalog(store), "cost_usd") == {"a1": 2.0}
    assert len(cat.history(store)) == 2
    cat.commit(store, [row(store, "a1", cost_usd=3.0)], "r1", ("assetgen-r1-x", 2))
    assert by_id(cat.read_catalog(store), "cost_usd") == {"a1": 3.0}


def test_select_by_partition_metadata_column_status_and_since(store: AssetStore) -> None:
    cat.commit(
        store,
        [
            row(store, "a1"),
            row(store, "a2", partition={"campaign": "fall"}),
            row(store, "a3", status="failed", metadata='{"color": "blue"}'),
            row(store, "a4", created_at=datetime(2026, 12, 1, tzinfo=UTC)),
        ],
        "r1",
    )
    table = cat.read_catalog(store)

    def ids(**kw: Any) -> set[str]:
        return set(select(table, **kw)["asset_id"].to_pylist())

    assert ids(where=[("campaign", "spring")]) == {"a1", "a3", "a4"}
    assert ids(where=[("color", "blue")]) == {"a3"}
    assert ids(where=[("row_id", "sku-a2")]) == {"a2"}
    assert ids(status="failed") == {"a3"}
    assert ids(since=datetime(2026, 11, 15, tzinfo=UTC)) == {"a4"}
    assert ids(where=[("campaign", "spring"), ("color", "red")]) == {"a1", "a4"}


def test_rebuild_from_sidecars_alone(store: AssetStore) -> None:
    for i in range(5):
        put_asset(store, sidecar(f"b{i}", partition={"campaign": f"c{i % 2}"}))
    cat.commit(store, [row(store, "gone")], "r0")
    assert cat.rebuild(store) == 5
    table = cat.read_catalog(store)
    assert sorted(table["asset_id"].to_pylist()) == [f"b{i}" for i in range(5)]
    uri = table.to_pylist()[0]["original_uri"]
    assert Path(uri).read_bytes() == b"png-bytes"
    # A new version: the one before still reads as it was.
    assert cat.history(store)[0]["run_id"] == "rebuild"
    assert cat.read_catalog(store, as_of=0)["asset_id"].to_pylist() == ["gone"]


def test_compact_and_readers_never_see_a_gap_or_a_double(store: AssetStore) -> None:
    for p in range(20):
        cat.commit(store, [row(store, f"a{p}x{i}") for i in range(5)], f"r{p}")
    expected = {f"a{p}x{i}" for p in range(20) for i in range(5)}
    files_before = len(DeltaTable(location(store)[0]).file_uris())
    seen: list[list[str]] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            try:
                seen.append(cat.read_catalog(store, columns=["asset_id"])["asset_id"].to_pylist())
            except Exception as e:
                errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    done = cat.compact(store)
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert done["files_before"] == files_before == 20
    assert done["files_after"] == 1 and done["assets"] == 100
    assert done["removed"] == 0  # the files of the last week's versions stay
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
    cat.commit(
        store,
        [
            row(store, "a1", prompt='=HYPERLINK("http://evil")'),
            row(store, "a2", partition={"campaign": "fall"}),
        ],
        "r1",
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


def test_a_commit_cut_short_leaves_the_catalog_as_it_was(store: AssetStore, monkeypatch) -> None:
    writer = CatalogWriter(store, "run-1")
    writer.add(row(store, "a1"))
    writer.flush()

    def killed(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("killed while committing")

    writer.add(row(store, "a2"))
    monkeypatch.setattr(cat, "_merge", killed)
    with pytest.raises(SystemExit):
        writer.flush()
    monkeypatch.undo()
    # What SIGKILL may leave (no cleanup runs): a data file no version names.
    (Path(store.path(CATALOG)) / "part-00001-dead.snappy.parquet").write_bytes(b"PAR1 half")
    assert cat.read_catalog(store)["asset_id"].to_pylist() == ["a1"]
    assert len(cat.history(store)) == 1


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
    cat.commit(
        store,
        [
            row(store, a, metadata=json.dumps(m), partition=partition.get(a, {"campaign": "x"}))
            for a, m in meta.items()
        ],
        "r1",
    )
    table = cat.read_catalog(store)

    def ids(key: str, value: str, **kw: Any) -> set[str]:
        return set(select(table, [(key, value)], **kw)["asset_id"].to_pylist())

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


def test_compact_keeps_every_row_and_a_later_commit_still_wins(store: AssetStore) -> None:
    for p in range(3):
        cat.commit(store, [row(store, f"a{i}", cost_usd=p) for i in range(4)], f"r{p}")
    full = sorted_rows(cat.read_catalog(store))
    assert cat.compact(store)["assets"] == 4
    assert sorted_rows(cat.read_catalog(store)).equals(full)
    assert cat.compact(store)["files_after"] == 1  # already compact: stays so
    assert sorted_rows(cat.read_catalog(store)).equals(full)
    cat.commit(store, [row(store, "a1", cost_usd=7)], "r9")
    assert by_id(cat.read_catalog(store), "cost_usd") == {"a0": 2, "a1": 7, "a2": 2, "a3": 2}


def stored(store: AssetStore, column: str) -> dict[str, Any]:
    """`column` per asset as the table's files hold it (what another engine reads)."""
    files = DeltaTable(location(store)[0]).file_uris()
    return by_id(ds.dataset(files, schema=SCHEMA).to_table(), column)


def last_merge(store: AssetStore) -> dict[str, Any]:
    entry = DeltaTable(location(store)[0]).history(1)[0]
    assert entry["operation"] == "MERGE"
    return entry["operationMetrics"]


def test_a_newer_version_supersedes_the_older_without_rewriting_it(store: AssetStore) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    cat.commit(store, [row(store, "a1", row_id="chair", created_at=t0)], "r1")
    assert by_id(cat.read_catalog(store), SUPERSEDED_BY) == {"a1": None}
    # A newer asset of the same slot (partition, row_id, variant): a1 now names it. The
    # commit lists a1 on a2's row and leaves a1's file as it was (copy-on-write: a
    # change to a1 would rewrite every row of its file).
    cat.commit(store, [row(store, "a2", row_id="chair", created_at=t0 + timedelta(1))], "r2")
    assert by_id(cat.read_catalog(store), SUPERSEDED_BY) == {"a1": "a2", "a2": None}
    assert last_merge(store)["num_target_files_removed"] == 0
    assert stored(store, SUPERSEDES) == {"a1": None, "a2": ["a1"]}
    assert stored(store, SUPERSEDED_BY) == {"a1": None, "a2": None}
    # Other slots and failed rows do not supersede anything.
    cat.commit(
        store,
        [
            row(store, "a3", row_id="chair", variant=1, created_at=t0 + timedelta(2)),
            row(store, "a4", row_id="chair", partition={"campaign": "fall"}),
            row(store, "a5", row_id="chair", status="failed", created_at=t0 + timedelta(3)),
        ],
        "r3",
    )
    found = by_id(cat.read_catalog(store), SUPERSEDED_BY)
    assert found == {"a1": "a2", "a2": None, "a3": None, "a4": None, "a5": None}
    # An even newer one: both older versions name it (a1 is listed again, not duplicated).
    cat.commit(store, [row(store, "a6", row_id="chair", created_at=t0 + timedelta(4))], "r4")
    found = by_id(cat.read_catalog(store), SUPERSEDED_BY)
    assert found["a1"] == found["a2"] == "a6" and found["a6"] is None
    assert cat.read_catalog(store).num_rows == 6
    current = cat.query(store, [("row_id", "chair")], current_only=True)
    assert sorted(current["asset_id"].to_pylist()) == ["a3", "a4", "a5", "a6"]
    # Settling stores what the lists said, and clears them: the table alone says it now.
    assert cat.settle(store, ["chair"], "r4") == 3  # a1, a2 marked; a6's list cleared
    assert stored(store, SUPERSEDED_BY) == found
    assert set(stored(store, SUPERSEDES).values()) == {None}
    assert cat.settle(store, ["chair"], "r4") == 0  # nothing left: no commit
    assert by_id(cat.read_catalog(store), SUPERSEDED_BY) == found


def test_a_writer_marks_what_its_assets_superseded_at_its_end(
    store: AssetStore, monkeypatch
) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    first = CatalogWriter(store, "run-1")
    for i in range(4):
        first.add(row(store, f"old{i}", row_id=f"sku{i}", created_at=t0))
    first.flush()
    monkeypatch.setattr(catalog_writer, "FLUSH_ROWS", 2)
    second = CatalogWriter(store, "run-2")
    for i in range(3):  # new versions of three of the four slots, over two checkpoints
        second.add(row(store, f"new{i}", row_id=f"sku{i}", created_at=t0 + timedelta(1)))
    second.wait()
    expected = {"old0": "new0", "old1": "new1", "old2": None, "old3": None}
    # Mid-run: the older versions are not rewritten, yet every read knows them superseded.
    assert {a: stored(store, SUPERSEDED_BY)[a] for a in expected} == dict.fromkeys(expected)
    read = by_id(cat.read_catalog(store), SUPERSEDED_BY)
    assert {a: read[a] for a in expected} == expected
    second.flush()
    assert second.errors == []
    expected["old2"] = "new2"
    on_disk = stored(store, SUPERSEDED_BY)
    assert {a: on_disk[a] for a in expected} == expected
    assert set(stored(store, SUPERSEDES).values()) == {None}
    assert by_id(cat.read_catalog(store), SUPERSEDED_BY) == on_disk


def test_a_commit_rewrites_only_files_of_its_row_ids(store: AssetStore) -> None:
    # Three runs' files, each holding its own row_ids (rows are committed in order).
    for run in range(3):
        rows = [
            row(store, f"r{run}a{i:02}", row_id=f"sku-{run}-{i:02}", status="failed")
            for i in range(20)
        ]
        cat.commit(store, rows, f"run-{run}")
    # The retry of one failed asset rewrites its file alone; a new row rewrites none.
    cat.commit(store, [row(store, "r1a05", row_id="sku-1-05")], "retry")
    metrics = last_merge(store)
    assert metrics["num_target_files_removed"] == 1
    assert metrics["num_target_rows_copied"] == 19
    cat.commit(store, [row(store, "fresh", row_id="sku-9-00")], "new")
    assert last_merge(store)["num_target_files_removed"] == 0
    assert cat.read_catalog(store).num_rows == 61
    assert by_id(cat.read_catalog(store), "status")["r1a05"] == "generated"


def test_an_asset_recorded_under_another_row_is_updated_not_doubled(store: AssetStore) -> None:
    # Two rows with the same picture share one asset: a later record of it under the
    # other row_id finds the stored row (asset ids are not scoped by row).
    cat.commit(store, [row(store, "shared", row_id="banner-en", status="failed")], "r1")
    cat.commit(store, [row(store, "other", row_id="banner-fr")], "r1")
    cat.commit(store, [row(store, "shared", row_id="banner-de")], "r2")
    found = cat.read_catalog(store)
    assert sorted(found["asset_id"].to_pylist()) == ["other", "shared"]
    assert by_id(found, "row_id")["shared"] == "banner-de"
    cat.update_columns(store, {"shared": {"published_uri": "s3://x"}}, ["published_uri"], "p")
    assert by_id(cat.read_catalog(store), "published_uri") == {"shared": "s3://x", "other": None}


def test_compact_settles_what_a_dead_run_left_listed(store: AssetStore) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    cat.commit(store, [row(store, "a1", row_id="chair", created_at=t0)], "r1")
    cat.commit(store, [row(store, "a2", row_id="chair", created_at=t0 + timedelta(1))], "r2")
    assert stored(store, SUPERSEDED_BY) == {"a1": None, "a2": None}  # r2 died before its end
    cat.compact(store)
    assert stored(store, SUPERSEDED_BY) == {"a1": "a2", "a2": None}
    assert stored(store, SUPERSEDES) == {"a1": None, "a2": None}


def test_a_writer_packs_many_small_files_at_its_end(store: AssetStore, monkeypatch) -> None:
    monkeypatch.setattr(catalog_writer, "FLUSH_ROWS", 1)
    writer = CatalogWriter(store, "run-1")
    for i in range(cat.PACK_AT_FILES + 2):
        writer.add(row(store, f"a{i}", row_id=f"sku{i}"))
    writer.wait()
    table = DeltaTable(location(store)[0])
    assert len(table.file_uris()) == cat.PACK_AT_FILES + 2
    writer.flush()
    assert writer.errors == []
    table = DeltaTable(location(store)[0])
    assert len(table.file_uris()) == 1
    assert table.history(1)[0]["operation"] == "OPTIMIZE"
    assert cat.read_catalog(store).num_rows == cat.PACK_AT_FILES + 2


def test_query_is_select_on_read_catalog(store: AssetStore, tmp_path: Path) -> None:
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    old = {"created_at": t0, "recorded_at": t0}
    new = {"created_at": t0 + timedelta(hours=1), "recorded_at": t0 + timedelta(hours=1)}
    cat.commit(
        store,
        [
            row(store, "a1", status="failed", metadata='{"color": "blue"}', **old),
            row(store, "a2", row_id="chair", **old),
            row(store, "a3", row_id="chair", **new),  # supersedes a2
        ],
        "r1",
    )
    fall = {"campaign": "fall"}
    others = [row(store, f"b{i}") for i in range(6)]  # a query can leave out most rows
    cat.commit(store, [row(store, "a1", **new), row(store, "a4", partition=fall), *others], "r2")
    full = cat.read_catalog(store)
    cases: list[dict[str, Any]] = [
        {},
        {"status": "failed"},  # a1 failed, then was made: no row left
        {"where": [("color", "blue")]},
        {"where": [("campaign", "spring"), ("row_id", "chair")]},
        {"where": [(SUPERSEDED_BY, "a3")]},
        {"since": t0 + timedelta(minutes=30), "where": [("campaign", "spring")]},
    ]
    for kw in cases:
        assert cat.query(store, **kw).equals(select(full, **kw)), kw
    assert cat.query(store, status="failed").num_rows == 0
    assert cat.query(store, [(SUPERSEDED_BY, "a3")])["asset_id"].to_pylist() == ["a2"]
    current = cat.query(store, [("row_id", "chair")], current_only=True)
    assert current["asset_id"].to_pylist() == ["a3"]

    shown = cat.query(store, [("campaign", "spring")], columns=["size"])
    assert shown.column_names == ["size"]
    assert shown.equals(select(full, [("campaign", "spring")]).select(["size"]))
    empty = AssetStore(str(tmp_path / "empty"))
    assert cat.query(empty, [("campaign", "x")]).equals(cat.read_catalog(empty))
    assert cat.read_catalog(empty).schema == SCHEMA


def test_a_table_of_an_earlier_version_gains_new_columns(store: AssetStore) -> None:
    # A table written before some columns existed (as the next features add columns).
    gone = {"moderation", "c2pa_state", SUPERSEDED_BY, "review_state", "reviewed_at"}
    older = [f for f in SCHEMA if f.name not in gone]
    first = pa.Table.from_pylist([row(store, "a1")], schema=pa.schema(older))
    uri, options = location(store)
    write_deltalake(uri, first, storage_options=options)
    table = cat.read_catalog(store)
    assert table.schema == SCHEMA
    assert table.to_pylist()[0]["moderation"] is None and table["row_id"].to_pylist() == ["sku-a1"]
    cat.commit(store, [row(store, "a2", moderation="low", c2pa_state="valid")], "r1")
    # The commit evolved the table's schema (a metadata change, not a rewrite).
    names = DeltaTable(uri).schema().to_arrow().names
    assert gone <= set(names)
    assert by_id(cat.read_catalog(store), "moderation") == {"a1": None, "a2": "low"}
    assert len(DeltaTable(uri).file_uris()) == 2  # a1's file kept as written


def test_every_reader_path_gives_the_same_rows(store: AssetStore) -> None:
    rows = [row(store, "a1", status="failed", metadata='{"color": "blue"}')]
    rows += [row(store, f"b{i}", row_id="chair" if i < 2 else f"s{i}") for i in range(6)]
    cat.commit(store, rows, "r1")
    once = cat.read_catalog(store)
    cat.commit(store, rows, "r1")  # the same rows again: still once each
    assert cat.read_catalog(store).num_rows == once.num_rows == 7
    for kw in [{}, {"where": [("row_id", "chair")]}, {"where": [(SUPERSEDED_BY, "b1")]}]:
        assert cat.query(store, **kw).equals(select(cat.read_catalog(store), **kw)), kw


@pytest.fixture(params=["local", "s3"])
def any_store(request, tmp_path: Path) -> AssetStore:
    if request.param == "s3":
        return AssetStore(f"{request.getfixturevalue('s3_bucket')}/store")
    return AssetStore(str(tmp_path / "store"))


def test_a_writer_on_any_store_keeps_every_row_once(any_store: AssetStore, monkeypatch) -> None:
    store = any_store
    monkeypatch.setattr(catalog_writer, "FLUSH_ROWS", 3)
    other = CatalogWriter(store, "run-0")  # another run's row: kept
    other.add(row(store, "z0", cost_usd=1.0))
    other.flush()
    writer = CatalogWriter(store, "run-9")
    for i in range(11):
        writer.add(row(store, f"a{i}"))
    writer.flush()
    table = cat.read_catalog(store)
    assert sorted(table["asset_id"].to_pylist()) == sorted(["z0", *(f"a{i}" for i in range(11))])
    assert writer.rows_written == 11 and writer.errors == []
    # 1 + 4 versions: run-0's, three checkpoints and run-9's end.
    assert [e["run_id"] for e in cat.history(store)] == ["run-9"] * 4 + ["run-0"]
    # More rows for one asset later (a collected batch): the last one wins.
    for i in range(4):
        writer.add(row(store, "a1", cost_usd=i))
    writer.flush()
    assert by_id(cat.read_catalog(store), "cost_usd")["a1"] == 3


def test_a_store_delta_rs_cannot_write_says_so(memory_dir: str) -> None:
    store = AssetStore(f"{memory_dir}/store")
    with pytest.raises(CatalogUnavailable, match=r"memory://"):
        cat.commit(store, [row(store, "a1")], "r1")
    writer = CatalogWriter(store, "r1")
    writer.add(row(store, "a1"))
    writer.flush()  # a run into such a store goes on; its summary says why
    assert writer.errors and "memory://" in writer.errors[0]


def test_a_generation_run_commits_every_row(
    store: AssetStore, make_planner, prices, tmp_path: Path, monkeypatch
) -> None:
    from assetgen.tasks.config.job import load_job_config
    from assetgen.tasks.generation.placeholder import PlaceholderProvider
    from assetgen.tasks.generation.run import generate
    from assetgen.tasks.store.assets import now_utc
    from tests.helpers import plan_all, write_manifest

    monkeypatch.setattr(catalog_writer, "FLUSH_ROWS", 2)
    manifest = write_manifest(
        str(tmp_path / "m.csv"), [{"id": f"r{i}", "prompt": f"image {i}"} for i in range(7)]
    )
    jobs, _ = plan_all(make_planner(), manifest)
    cfg = load_job_config(None, {"limits.ipm": 60_000, "renditions": []})
    report = generate(jobs, cfg, store, "r", now_utc(), prices, PlaceholderProvider(prices))
    assert report.catalog_rows == 7
    table = cat.read_catalog(store)
    assert sorted(table["row_id"].to_pylist()) == [f"r{i}" for i in range(7)]
    assert DeltaTable(location(store)[0]).count() == 7
    assert {e["run_id"] for e in cat.history(store)} == {"r"}


def test_read_matching_returns_every_row_matching_any_column(store: AssetStore) -> None:
    cat.commit(
        store,
        [
            row(store, "a1", run_id="r1"),
            row(store, "a2", run_id="r1"),
            row(store, "a3", run_id="r0"),
        ],
        "r1",
    )
    cat.commit(store, [row(store, f"b{i}", run_id="r9") for i in range(5)], "r9")
    found = cat.read_matching(store, {"run_id": ["r1"], "asset_id": ["a3"]})
    assert found.schema == SCHEMA
    assert sorted(zip(found["asset_id"].to_pylist(), found["run_id"].to_pylist(), strict=True)) == [
        ("a1", "r1"),
        ("a2", "r1"),
        ("a3", "r0"),
    ]
    assert cat.read_matching(store, {"run_id": ["nope"], "asset_id": []}).num_rows == 0
    # As the table was at r1's commit: b* did not exist yet.
    assert cat.run_version(store, ["r1"]) == 0
    assert cat.read_matching(store, {"run_id": ["r9"]}, as_of=0).num_rows == 0


def test_incomplete_names_stored_assets_the_catalog_lacks_or_lists_without_a_preset(
    store: AssetStore,
) -> None:
    from assetgen.tasks.renditions.postprocess import incomplete

    def rendition(name: str) -> dict[str, Any]:
        return {"name": name, "uri": f"x/{name}.webp", "width": 1, "height": 1, "format": "webp"}

    cat.commit(
        store,
        [
            row(store, "a1", renditions=[rendition("thumb")]),
            row(store, "a2", renditions=[rendition("thumb")]),
            row(store, "b1", renditions=[]),  # not asked about
        ],
        "r1",
    )
    # a1's newer row has both presets; a2 has only one; a3 is not catalogued.
    cat.commit(
        store, [row(store, "a1", renditions=[rendition("thumb"), rendition("listing")])], "r2"
    )
    folders = {"a1": "f/a1", "a2": "f/a2", "a3": "f/a3"}
    presets = {"thumb": None, "listing": None}
    assert incomplete(store, presets, folders) == ["f/a2", "f/a3"]  # type: ignore[arg-type]


def test_a_store_named_without_a_config_opens_as_the_default_config_would(
    tmp_path: Path,
) -> None:
    # open_store skips loading the config for `--store URL` alone (the catalog commands
    # then import nothing of a job config): only right while the default sets no options.
    from assetgen.flows.cli.common import open_store
    from assetgen.tasks.config.job import load_job_config

    url = str(tmp_path / "s")
    cfg = load_job_config(None, {"store": url})
    opened = open_store(url, None)
    assert (opened.url, opened.options) == (AssetStore(cfg.store, cfg.store_options).url, {})
    assert cfg.store_options == {}
