"""A marketing refresh: a new prompt or style_version makes new assets, the old ones superseded."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from assetgen.flows.cli.catalog import app as catalog_app
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.catalog.rows import SCHEMA, SUPERSEDED_BY, superseded
from assetgen.tasks.catalog.select import select
from assetgen.tasks.config.job import ConfigError, JobConfig, load_job_config
from assetgen.tasks.generation.placeholder import PlaceholderProvider
from assetgen.tasks.generation.run import generate
from assetgen.tasks.plan.jobs import Job, Planner
from assetgen.tasks.plan.pricing import PriceTable
from assetgen.tasks.store.assets import AssetStore, Sidecar, now_utc
from tests.helpers import plan_all, write_manifest

ROWS = [
    {"id": "chair", "product": "a red chair", "campaign": "spring", "n": 1},
    {"id": "lamp", "product": "a tall lamp", "campaign": "spring", "n": 2},
    {"id": "mug", "product": "a blue mug", "campaign": "fall", "n": 1},
]
# The asset_ids of ROWS under the first config, computed by the code before
# style_version existed: a config without one must keep making exactly these.
BEFORE_STYLE_VERSION = {
    ("chair", 0): "1b10b88bbdb8fe0f7ff6f703e0318099",
    ("lamp", 0): "bac402070abf187b559a21d6207c8407",
    ("lamp", 1): "79c530c9920b826aa1f1ab21b74f84a6",
    ("mug", 0): "9bd5b657df72b3176968bf593fc912ac",
}
Slot = tuple[str, int]


def config(**overrides: Any) -> JobConfig:
    base = {
        "prompt_template": "A photo of {{ product }}",
        "partition_by": ["campaign"],
        "renditions": [],
        "defaults.quality": "low",
        "limits.ipm": 60_000,
    }
    return load_job_config(None, base | overrides)


def cli(*args: str) -> Result:
    return CliRunner().invoke(catalog_app, list(args), env={"COLUMNS": "1000"})


def listed(store: AssetStore, *extra: str) -> list[dict[str, Any]]:
    result = cli("list", "--store", store.url, "--format", "json", *extra)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def slots(jobs: list[Job]) -> dict[Slot, str]:
    return {(j.row_id, j.variant): j.asset_id for j in jobs}


@pytest.fixture
def refreshed(
    tmp_path: Path, make_planner: Callable[..., Planner], prices: PriceTable
) -> tuple[AssetStore, list[dict[Slot, str]]]:
    """One manifest generated three times: first look, new prompt template, new style_version."""
    manifest = write_manifest(str(tmp_path / "m.csv"), ROWS)
    store = AssetStore(str(tmp_path / "store"))
    runs = [
        config(),
        config(prompt_template="A studio shot of {{ product }}, white background"),
        config(
            prompt_template="A studio shot of {{ product }}, white background",
            style_version="2026-spring",
        ),
    ]
    ids: list[dict[Slot, str]] = []
    for number, cfg in enumerate(runs, 1):
        jobs, rejects = plan_all(make_planner(config=cfg), manifest)
        assert rejects == []
        report = generate(
            jobs, cfg, store, f"run-{number}", now_utc(), prices, PlaceholderProvider(prices)
        )
        assert {o.status for o in report.outcomes} == {"generated"}
        ids.append(slots(jobs))
    return store, ids


def test_a_config_without_style_version_keeps_every_asset_id(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    manifest = write_manifest(str(tmp_path / "m.csv"), ROWS)
    jobs, _ = plan_all(make_planner(config=config()), manifest)
    assert slots(jobs) == BEFORE_STYLE_VERSION
    assert all("style_version" not in j.metadata for j in jobs)

    styled, _ = plan_all(make_planner(config=config(style_version="v2")), manifest)
    again, _ = plan_all(make_planner(config=config(style_version="v2")), manifest)
    other, _ = plan_all(make_planner(config=config(style_version="v3")), manifest)
    assert slots(styled) == slots(again)  # stable: a re-run of the refresh pays nothing
    new_ids = set(slots(styled).values())
    assert new_ids.isdisjoint(BEFORE_STYLE_VERSION.values())
    assert new_ids.isdisjoint(slots(other).values())
    assert all(j.metadata["style_version"] == "v2" for j in styled)
    assert all(j.metadata["product"] for j in styled)  # the manifest's columns stay


def test_style_version_config_wins_over_a_manifest_column_and_reads_numbers(
    tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    rows = [{"id": "r1", "product": "a lamp", "campaign": "x", "style_version": "mine"}]
    manifest = write_manifest(str(tmp_path / "m.csv"), rows)
    (plain,), _ = plan_all(make_planner(config=config()), manifest)
    (styled,), _ = plan_all(make_planner(config=config(style_version=2)), manifest)
    # Without a config label the column is only metadata, as before: not in the id.
    assert plain.metadata["style_version"] == "mine"
    assert styled.metadata["style_version"] == "2"
    assert styled.asset_id != plain.asset_id
    with pytest.raises(ConfigError, match="style_version"):
        config(style_version="")


def test_every_run_stays_in_the_store_and_the_last_one_is_current(
    refreshed: tuple[AssetStore, list[dict[Slot, str]]],
) -> None:
    store, (first, second, third) = refreshed
    assert first == BEFORE_STYLE_VERSION
    every = [*first.values(), *second.values(), *third.values()]
    assert len(set(every)) == 12
    assert set(store.existing()) == set(every)

    table = cat.read_catalog(store)
    assert table.schema.field(SUPERSEDED_BY).type == pa.string()
    superseded_by = dict(
        zip(table["asset_id"].to_pylist(), table[SUPERSEDED_BY].to_pylist(), strict=True)
    )
    assert len(superseded_by) == 12
    expected = {asset: None for asset in third.values()}
    for older in (first, second):
        expected |= {asset: third[slot] for slot, asset in older.items()}
    assert superseded_by == expected

    # The label reaches the sidecar and the catalog, and selects like any metadata.
    for asset, folder in store.existing().items():
        sidecar = Sidecar.model_validate_json(store.read_bytes(f"{folder}/asset.json"))
        assert sidecar.metadata.get("style_version") == (
            "2026-spring" if asset in third.values() else None
        )
    styled = select(table, [("style_version", "2026-spring")])
    assert set(styled["asset_id"].to_pylist()) == set(third.values())


def test_cli_hides_superseded_versions_unless_asked(
    refreshed: tuple[AssetStore, list[dict[Slot, str]]], tmp_path: Path
) -> None:
    store, (first, second, third) = refreshed
    current = listed(store)
    assert {r["asset_id"] for r in current} == set(third.values())
    assert all(r["superseded_by"] is None for r in current)
    assert {r["row_id"] for r in listed(store, "--where", "campaign=fall")} == {"mug"}

    versions = {r["asset_id"]: r for r in listed(store, "--versions")}
    assert len(versions) == 12
    assert versions[first[("lamp", 1)]]["superseded_by"] == third[("lamp", 1)]
    assert versions[second[("mug", 0)]]["superseded_by"] == third[("mug", 0)]
    spring = listed(store, "--versions", "--where", "campaign=spring", "--where", "row_id=lamp")
    assert len(spring) == 6

    table = cli("list", "--store", store.url)
    assert table.exit_code == 0, table.output
    assert "4 assets (8 superseded versions hidden" in table.stdout
    assert first[("chair", 0)] not in table.stdout
    table = cli("list", "--store", store.url, "--versions")
    assert "superseded_by" in table.stdout and first[("chair", 0)] in table.stdout
    assert "12 assets\n" in table.stdout

    old = first[("chair", 0)]
    shown = cli("show", old, "--store", store.url)
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["superseded_by"] == third[("chair", 0)]
    assert f"{old} is superseded by {third[('chair', 0)]}" in shown.stderr
    newest = cli("show", third[("chair", 0)], "--store", store.url)
    assert json.loads(newest.stdout)["superseded_by"] is None
    assert "superseded" not in newest.stderr

    out = tmp_path / "current.csv"
    assert cli("export", "--store", store.url, "--format", "csv", "-o", str(out)).exit_code == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert {r["asset_id"] for r in rows} == set(third.values())
    assert {r["superseded_by"] for r in rows} == {""}
    out = tmp_path / "all.parquet"
    exported = cli("export", "--store", store.url, "--versions", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    every = pq.read_table(out)
    assert every.num_rows == 12
    assert every[SUPERSEDED_BY].null_count == 4


def test_rebuild_and_compact_keep_versions_and_superseded_by_stored(
    refreshed: tuple[AssetStore, list[dict[Slot, str]]],
) -> None:
    store, _ = refreshed

    def mapping() -> dict[str, str | None]:
        table = cat.read_catalog(store)
        return dict(
            zip(table["asset_id"].to_pylist(), table[SUPERSEDED_BY].to_pylist(), strict=True)
        )

    before = mapping()
    assert sum(v is not None for v in before.values()) == 8
    assert cat.rebuild(store) == 12
    assert mapping() == before
    done = cat.compact(store)
    assert (done["files_after"], done["assets"]) == (1, 12)
    assert mapping() == before
    # Stored in the table, so any engine reading it sees the same superseded_by.
    (path,) = cat.open_table(store).file_uris()
    assert pq.read_table(path).column(SUPERSEDED_BY).to_pylist() == [
        before[a] for a in pq.read_table(path).column("asset_id").to_pylist()
    ]


T0 = datetime(2026, 11, 1, tzinfo=UTC)


def catalog_row(
    asset_id: str,
    row_id: str,
    partition: dict[str, str] | None,
    hours: float,
    variant: int = 0,
    status: str = "generated",
) -> dict[str, Any]:
    at = T0 + timedelta(hours=hours)
    return {
        "asset_id": asset_id,
        "row_id": row_id,
        "variant": variant,
        "partition": partition,
        "status": status,
        "created_at": at,
        "recorded_at": at,
    }


def superseded_by(rows: list[dict[str, Any]]) -> dict[str, str | None]:
    schema = pa.schema([SCHEMA.field(name) for name in rows[0]])
    table = pa.Table.from_pylist(rows, schema=schema)
    return dict(zip(table["asset_id"].to_pylist(), superseded(table).to_pylist(), strict=True))


def test_a_slot_is_partition_row_and_variant_and_only_generated_assets_count() -> None:
    spring = {"campaign": "spring", "locale": "en-US"}
    assert superseded_by(
        [
            catalog_row("old", "chair", spring, 0),
            catalog_row("new", "chair", {"locale": "en-US", "campaign": "spring"}, 2),
            catalog_row("mid", "chair", spring, 1),
            catalog_row("fall", "chair", {"campaign": "fall", "locale": "en-US"}, 0),
            catalog_row("fewer", "chair", {"campaign": "spring"}, 0),
            catalog_row("v1", "chair", spring, 0, variant=1),
            catalog_row("failed", "chair", spring, 9, status="failed"),
            catalog_row("lamp", "lamp", spring, 0),
            catalog_row("bare-old", "mug", None, 0),
            catalog_row("bare-new", "mug", {}, 1),
        ]
    ) == {
        "old": "new",
        "new": None,  # the newest, whatever the order of its partition keys
        "mid": "new",
        "fall": None,  # another partition
        "fewer": None,  # another partition: one key less
        "v1": None,  # another variant
        "failed": None,  # a failure supersedes nothing and is not superseded
        "lamp": None,
        "bare-old": "bare-new",  # no partition (null or empty) is one partition
        "bare-new": None,
    }


def test_a_tie_on_created_at_goes_to_the_newer_record_then_the_asset_id() -> None:
    later = {"recorded_at": T0 + timedelta(hours=3)}
    b, a = catalog_row("b", "chair", {}, 1), catalog_row("a", "chair", {}, 1)
    assert superseded_by([b, a | later]) == {"a": None, "b": "a"}
    # Whatever order a commit or a rebuild meets them in: the stored value is the same.
    assert superseded_by([b, a]) == superseded_by([a, b]) == {"b": None, "a": "b"}


def test_superseded_works_on_many_chunks_and_an_empty_catalog(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path / "store"))
    empty = cat.read_catalog(store)
    assert empty.num_rows == 0 and SUPERSEDED_BY in empty.column_names
    rows = [catalog_row(f"a{i:03d}", f"r{i % 10}", {"c": "x"}, i) for i in range(100)]
    schema = pa.schema([SCHEMA.field(name) for name in rows[0]])
    chunks = pa.concat_tables(
        pa.Table.from_pylist(rows[i : i + 7], schema=schema) for i in range(0, 100, 7)
    )
    newest = {f"r{i}": f"a{90 + i:03d}" for i in range(10)}
    for asset, row_id, name in zip(
        chunks["asset_id"].to_pylist(),
        chunks["row_id"].to_pylist(),
        superseded(chunks).to_pylist(),
        strict=True,
    ):
        assert name == (None if asset == newest[row_id] else newest[row_id])


def test_refresh_renders_current_versions_unless_asked(
    refreshed: tuple[AssetStore, list[dict[Slot, str]]], prefect_harness: None
) -> None:
    from assetgen.flows.refresh import refresh_renditions

    store, runs = refreshed
    spring = [{a for (row_id, _), a in ids.items() if row_id != "mug"} for ids in runs]

    def thumbs() -> set[str]:
        found = store.existing().items()
        return {a for a, folder in found if store.fs.exists(store.path(f"{folder}/thumb.webp"))}

    current = refresh_renditions(["thumb"], store.url, None, [("campaign", "spring")])
    assert (current["selected"], current["refreshed"]) == (3, 3)
    assert thumbs() == spring[2]  # the newest version of each spring slot only
    every = refresh_renditions(["thumb"], store.url, None, [("campaign", "spring")], True)
    assert (every["selected"], every["refreshed"]) == (9, 9)
    assert thumbs() == spring[0] | spring[1] | spring[2]
