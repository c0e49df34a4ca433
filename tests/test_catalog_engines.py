"""Other engines read the catalog's Delta table without assetgen and get what
`assetgen catalog export` gives: deltalake, pyarrow over the table's files, polars, DuckDB.

The readers run in a python process of their own that never imports assetgen (and
where an engine aborting at exit cannot take pytest with it); everything is offline:
local files, or the moto S3 server on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner, Result

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog.location import CATALOG
from assetgen.tasks.catalog.rows import SCHEMA
from assetgen.tasks.config.job import JobConfig, load_job_config
from assetgen.tasks.generation.placeholder import PlaceholderProvider
from assetgen.tasks.generation.run import generate
from assetgen.tasks.plan.jobs import Planner
from assetgen.tasks.plan.pricing import PriceTable
from assetgen.tasks.store.assets import AssetStore, now_utc
from tests.helpers import plan_all, write_manifest

ROWS = [
    {"id": "chair", "product": "a red chair", "campaign": "spring", "n": 1},
    {"id": "lamp", "product": "a tall lamp", "campaign": "spring", "n": 2},
    {"id": "mug", "product": "a blue mug", "campaign": "fall", "n": 1},
]
ENGINES = ("deltalake", "pyarrow_files", "polars", "duckdb")

# Runs with `python -c`, argv: table URI, storage options (JSON), output folder.
READER = r"""
import json, sys
import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pa_fs
import pyarrow.parquet as pq
from deltalake import DeltaTable

uri, options, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
table = DeltaTable(uri, storage_options=options)
pq.write_table(table.to_pyarrow_table(), f"{out}/deltalake.parquet")

# The table's files with its own schema, as any Parquet engine can read them.
schema = pa.schema(table.schema().to_arrow())
files = table.file_uris()
if uri.startswith("s3://"):
    endpoint = options["AWS_ENDPOINT_URL"]
    fs = pa_fs.S3FileSystem(
        access_key=options["AWS_ACCESS_KEY_ID"],
        secret_key=options["AWS_SECRET_ACCESS_KEY"],
        region=options["AWS_REGION"],
        endpoint_override=endpoint.split("://", 1)[1],
        scheme="http",
    )
    dataset = ds.dataset([f[len("s3://"):] for f in files], schema=schema, filesystem=fs)
else:
    dataset = ds.dataset(files, schema=schema)
pq.write_table(dataset.to_table(), f"{out}/pyarrow_files.parquet")

frame = pl.read_delta(uri, storage_options=options or None)
pq.write_table(frame.to_arrow(), f"{out}/polars.parquet")

# DuckDB over the Arrow dataset: no delta extension, nothing to install or download.
con = duckdb.connect(
    config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
)
pq.write_table(con.execute("SELECT * FROM dataset").to_arrow_table(), f"{out}/duckdb.parquet")
current = con.execute("SELECT * FROM dataset WHERE superseded_by IS NULL").to_arrow_table()
pq.write_table(current, f"{out}/duckdb_current.parquet")
counts = con.execute(
    "SELECT count(*), count(DISTINCT asset_id) FROM dataset"
).fetchone()
print(json.dumps({"rows": counts[0], "assets": counts[1], "version": table.version(),
                  "assetgen_loaded": any(m.startswith("assetgen") for m in sys.modules)}))
"""


def config(**overrides: Any) -> JobConfig:
    base = {
        "prompt_template": "A photo of {{ product }}",
        "partition_by": ["campaign"],
        "renditions": ["thumb"],
        "defaults.quality": "low",
        "limits.ipm": 60_000,
    }
    return load_job_config(None, base | overrides)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "1000"})


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> AssetStore:
    if request.param == "local":
        return AssetStore(str(tmp_path / "store"))
    return AssetStore(request.getfixturevalue("s3_bucket") + "/assets")


def table_location(store: AssetStore, request: pytest.FixtureRequest) -> tuple[str, dict]:
    """The table's URI and what a reader needs to reach it, worked out here, not by assetgen."""
    if store.is_local:
        return str(Path(store.url, CATALOG)), {}
    endpoint = request.getfixturevalue("s3_endpoint")
    return f"{store.url}/{CATALOG}", {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def two_runs(
    store: AssetStore, tmp_path: Path, make_planner: Callable[..., Planner], prices: PriceTable
) -> None:
    """A first run of every row; then a new prompt for the chair: its first asset superseded."""
    for number, (rows, cfg) in enumerate(
        [
            (ROWS, config()),
            (ROWS[:1], config(prompt_template="A studio shot of {{ product }}")),
        ],
        1,
    ):
        manifest = write_manifest(str(tmp_path / f"m{number}.csv"), rows)
        jobs, rejects = plan_all(make_planner(config=cfg), manifest)
        assert rejects == []
        report = generate(
            jobs, cfg, store, f"run-{number}", now_utc(), prices, PlaceholderProvider(prices)
        )
        assert {o.status for o in report.outcomes} == {"generated"}
        assert report.rendition_errors == []


def norm(value: Any) -> Any:
    """One spelling of a value whatever engine read it: a map is its sorted (key, value)
    pairs (polars reads one as a list of {key, value} structs), a time is in UTC."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, dict):
        if set(value) == {"key", "value"}:
            return ("pair", norm(value["key"]), norm(value["value"]))
        return ("struct", tuple(sorted((k, norm(v)) for k, v in value.items())))
    if isinstance(value, tuple) and len(value) == 2:  # pyarrow's map entries
        return ("pair", norm(value[0]), norm(value[1]))
    if isinstance(value, list):
        items = [norm(v) for v in value]
        if items and all(isinstance(i, tuple) and i[0] == "pair" for i in items):
            return ("map", tuple(sorted(items)))
        return ("list", tuple(items))
    return value


def rows_of(path: Path) -> tuple[set[str], Counter]:
    table = pq.read_table(path)
    rows = Counter(tuple(sorted((k, norm(v)) for k, v in row.items())) for row in table.to_pylist())
    return set(table.column_names), rows


def test_other_engines_read_exactly_what_export_gives(
    store: AssetStore,
    tmp_path: Path,
    make_planner: Callable[..., Planner],
    prices: PriceTable,
    request: pytest.FixtureRequest,
) -> None:
    two_runs(store, tmp_path, make_planner, prices)
    exported = {}
    for name, extra in (("all", ["--versions"]), ("current", [])):
        out = tmp_path / f"export-{name}.parquet"
        result = cli("catalog", "export", "--store", store.url, "-o", str(out), *extra)
        assert result.exit_code == 0, result.output
        exported[name] = rows_of(out)
    columns, everything = exported["all"]
    assert columns == set(SCHEMA.names)
    assert sum(everything.values()) == 5  # chair twice, lamp's two variants, mug
    assert sum(exported["current"][1].values()) == 4
    # Realistic rows: partition maps, renditions, times, a superseded version.
    sample = pq.read_table(tmp_path / "export-all.parquet").to_pylist()
    assert all(r["partition"] and r["renditions"] and r["created_at"] for r in sample)
    assert sum(r["superseded_by"] is not None for r in sample) == 1

    uri, options = table_location(store, request)
    out = tmp_path / "engines"
    out.mkdir()
    read = subprocess.run(
        [sys.executable, "-c", READER, uri, json.dumps(options), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,  # not the repository: nothing of assetgen on the path
    )
    assert read.returncode == 0, (read.returncode, read.stderr[-3000:])
    summary = json.loads(read.stdout)
    # Version 2: the second run's rows, then its writer marking the chair's first asset
    # superseded (what other engines read of it is stored, not worked out by assetgen).
    assert summary == {"rows": 5, "assets": 5, "version": 2, "assetgen_loaded": False}

    for engine in ENGINES:
        got_columns, got = rows_of(out / f"{engine}.parquet")
        assert got_columns == set(SCHEMA.names), (engine, got_columns ^ set(SCHEMA.names))
        assert got == everything, engine
    assert rows_of(out / "duckdb_current.parquet") == exported["current"]


def test_json_and_csv_exports_hold_the_same_rows_as_parquet(
    tmp_path: Path, make_planner: Callable[..., Planner], prices: PriceTable
) -> None:
    store = AssetStore(str(tmp_path / "store"))
    two_runs(store, tmp_path, make_planner, prices)
    files = {fmt: tmp_path / f"export.{fmt}" for fmt in ("parquet", "json", "csv")}
    for fmt, path in files.items():
        result = cli("catalog", "export", "--store", store.url, "-o", str(path), "--format", fmt)
        assert result.exit_code == 0, result.output
    parquet = pq.read_table(files["parquet"]).to_pylist()
    lines = [json.loads(line) for line in files["json"].read_text().splitlines()]
    assert lines == [json.loads(json.dumps(r, default=str)) for r in parquet]
    header = files["csv"].read_text().splitlines()[0].split(",")
    assert header == SCHEMA.names
    assert len(files["csv"].read_text().splitlines()) == len(parquet) + 1
