"""The Delta catalog at N assets: `catalog list --where`, commits, `compact`; DuckDB beside it.

    python bench/catalog_scale.py [--assets 1000000] [--repeat 2] [--quick]

A synthetic catalog in a temporary local store, laid out as runs write it:
runs of 1,000-10,000 jobs over a growing product range (partition
category/sku, metadata JSON from the manifest, ~3% failed), with the real
SCHEMA and realistic values; some runs refresh existing slots with a new
style_version (the older assets become superseded versions), some retry
failures (a later row for the same asset_id). Every run commits a version
per FLUSH_ROWS rows, as CatalogWriter's checkpoints do, and packs its small
files at its end (`compact_small`, as the writer does). Building that many
commits through `commit()` (a MERGE each) would take hours at 1M assets, so
the table is built by `write_deltalake` appends, one per checkpoint, of the
rows each checkpoint leaves in the table (an asset's last row, superseded_by
as the writers' `settle` sets it, the run's commit metadata and application
transaction): the same rows, files and versions, except that a retry or a
settle here does not rewrite the earlier file, as a MERGE does. Then,
through `tasks.catalog.table` itself:

  checkpoint   a 500-row commit into the table, as CatalogWriter makes every
               FLUSH_ROWS rows: 88% new assets, 10% refreshes of existing
               slots (their rows list the older assets they supersede), 2% retries of
               failed assets; and one of new assets only. Each in a fresh
               process that has done its imports: commit seconds in process,
               peak memory, and what the MERGE did (delta-rs's metrics: files
               rewritten, stored rows copied)
  run-end      a --run-end-rows commit (10,000), the first mix, then what the
               writer does at its end: `settle` (superseded_by set on the
               versions the run's assets took over) and `compact_small`

Measured in two layouts, as runs leave it and after `assetgen catalog compact`:

  list --where `assetgen catalog list --store DIR --where K=V --limit 100` in a
               subprocess (wall time, best of --repeat; the machine may be
               shared) for a partition key of 1/8 of the assets (category), an
               exact partition key (sku), a metadata key (gtin) and row_id;
               in process, the query `list` runs (cat.query, current only)
  duckdb       DuckDB answering the same queries over the same table in the same
               run, offline: the table's current files (DeltaTable.file_uris(),
               as the catalog reads them) with read_parquet; in process
               (opening the table included), and as a whole
               `python -c` command (opening the table, querying, printing)
  compact      `assetgen catalog compact` in a subprocess: wall time and peak
               memory (ru_maxrss); then `compact --keep-days 0` (the compacted
               table optimized again, every file no current version needs
               vacuumed)
  startup      `assetgen catalog --help`: what every command pays to start

Goals (issue): list --where under 1 s as a whole command, a checkpoint commit
under 1 s, compact peak memory under 1 GB, at 1,000,000 assets. Last lines:
the worst whole-command --where time, the worst checkpoint commit, compact's
peak memory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assetgen.flows.cli.catalog import TABLE_COLUMNS
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.catalog.location import RUN_KEY, TABLE_PROPERTIES, location
from assetgen.tasks.catalog.rows import SCHEMA, SLOT_COLUMNS, SUPERSEDED_BY
from assetgen.tasks.catalog.rows import superseded as superseded_of
from assetgen.tasks.catalog.writer import FLUSH_ROWS
from assetgen.tasks.store.assets import AssetStore, asset_folder

CATEGORIES = ["chairs", "tables", "lamps", "sofas", "rugs", "mugs", "shelves", "beds"]
COLORS = ["red", "blue", "oak", "walnut", "black", "white", "grey", "green"]
MATERIALS = ["wood", "steel", "linen", "velvet", "ceramic", "glass"]
LOCALES = {"en-US": "chair", "de-DE": "Stuhl für Küche", "fr-FR": "chaise à café"}
SIZES = ["1024x1024", "1536x1024", "1024x1536"]
RENDITIONS = [("thumb", 256, "webp"), ("web", 1024, "webp"), ("zoom", 2048, "jpeg")]
ERRORS = ["rate_limited: 429 after 5 attempts", "content_policy_violation", "timeout"]
T0 = datetime(2026, 1, 5, tzinfo=UTC)
REOPEN = 50  # commits of the build between two openings of the table
LIMIT = 100  # rows `list` prints: the query still selects every match


@dataclass
class Checkpoint:
    """One commit of a run: its rows, as CatalogWriter would commit them."""

    run_id: str
    app: str
    seq: int
    rows: pa.Table


@dataclass
class Synth:
    """Runs of a pipeline over a growing product range, as catalog rows and commits."""

    store: AssetStore
    target: int
    rnd: random.Random = field(default_factory=lambda: random.Random(7))
    slots: list[tuple[int, int]] = field(default_factory=list)  # (sku, variant)
    versions: list[int] = field(default_factory=list)  # per slot: its newest style version
    failed: list[tuple[int, int, str]] = field(default_factory=list)  # to retry
    checkpoints: list[Checkpoint] = field(default_factory=list)
    assets: int = 0
    rows: int = 0
    runs: int = 0
    failures: int = 0
    refreshed: int = 0
    skus: int = 0

    def build(self) -> None:
        """Runs until the catalog has `target` assets."""
        while self.assets < self.target:
            size = self.rnd.randint(1_000, 10_000)
            kind = "new"
            if self.runs >= 3:
                kind = self.rnd.choices(["new", "refresh", "retry"], [8, 1, 1])[0]
            if kind == "retry" and self.failed:
                jobs = self._retries(size)
            elif kind == "refresh":
                jobs = self._refreshes(size)
            else:
                jobs = [(self._new_slot(), 0, None) for _ in range(size)]
            if self.assets + sum(asset is None for *_, asset in jobs) > self.target:
                jobs = jobs[: self.target - self.assets]
            run = self.run(jobs)
            self.checkpoints += [
                Checkpoint(run.run_id, run.app, seq, run.rows.slice(offset, FLUSH_ROWS))
                for seq, offset in enumerate(range(0, run.rows.num_rows, FLUSH_ROWS), 1)
            ]

    def mix(self, size: int, old: bool = True) -> list[tuple[int, int, str | None]]:
        """Jobs of a run after the build: 88% new assets, 10% refreshes of existing slots,
        2% retries of failed assets; all new with `old` false."""
        retries = self._retries(size // 50 if old else 0)
        refreshes = self._refreshes(size // 10 if old else 0)
        jobs = [(self._new_slot(), 0, None) for _ in range(size - len(retries) - len(refreshes))]
        return self.rnd.sample(jobs + refreshes + retries, size)

    def _retries(self, size: int) -> list[tuple[int, int, str | None]]:
        jobs: list[tuple[int, int, str | None]] = list(self.failed[:size])
        del self.failed[:size]
        return jobs

    def _refreshes(self, size: int) -> list[tuple[int, int, str | None]]:
        picked = self.rnd.sample(range(len(self.slots)), min(size, len(self.slots)))
        return [(slot, self._bump(slot), None) for slot in picked]

    def _new_slot(self) -> int:
        variants = self.rnd.choice([1, 1, 2, 3])
        if not self.slots or self.slots[-1][1] + 1 >= variants:
            self.skus += 1
            self.slots.append((self.skus, 0))
        else:
            self.slots.append((self.skus, self.slots[-1][1] + 1))
        self.versions.append(0)
        return len(self.slots) - 1

    def _bump(self, slot: int) -> int:
        self.versions[slot] += 1
        self.refreshed += 1
        return self.versions[slot]

    def run(self, jobs: list[tuple[int, int, str | None]]) -> Checkpoint:
        """One run's rows (as one commit: numbered 1, the whole run)."""
        start = T0 + timedelta(hours=3 * self.runs)
        run_id = f"{start:%Y%m%dT%H%M%SZ}-{self.runs:06x}"
        app = f"assetgen-{run_id}-{self.runs:06x}"  # as CatalogWriter names its transactions
        self.runs += 1
        columns: dict[str, list[Any]] = {name: [] for name in SCHEMA.names}
        for i, (slot, version, retried) in enumerate(jobs):
            row = self._row(slot, version, retried, run_id, start + timedelta(seconds=0.4 * i))
            for name, column in columns.items():
                column.append(row.get(name))
        self.rows += len(jobs)
        return Checkpoint(run_id, app, 1, pa.table(columns, schema=SCHEMA))

    def _row(
        self, slot: int, version: int, retried: str | None, run_id: str, at: datetime
    ) -> dict[str, Any]:
        rnd = self.rnd
        sku, variant = self.slots[slot]
        if retried is None:
            asset_id = hashlib.md5(f"{sku}/{variant}/{version}".encode()).hexdigest()
            self.assets += 1
        else:
            asset_id = retried
        failed = retried is None and rnd.random() < 0.03
        if failed:
            self.failed.append((slot, version, asset_id))
            self.failures += 1
        category = CATEGORIES[sku * 7 % len(CATEGORIES)]
        color, material = COLORS[sku % len(COLORS)], MATERIALS[sku // 8 % len(MATERIALS)]
        locale = list(LOCALES)[sku % len(LOCALES)]
        product = f"{color} {material} {LOCALES[locale]} {sku}"
        metadata: dict[str, Any] = {
            "product": product,
            "color": color,
            "material": material,
            "gtin": gtin(sku),
            "weight_g": 200 + sku % 5000,
            "in_stock": sku % 11 != 0,
            "locale": locale,
            "campaign": f"spring-{sku % 12}",
        }
        prompt = f"Studio photo of a {product}, soft shadow, plain white background, high detail"
        if version:
            metadata["style_version"] = f"2026-v{version}"
            prompt += f", style {version}"
        partition = {"category": category, "sku": f"SKU-{sku:07d}"}
        row = {
            "asset_id": asset_id,
            "row_id": f"SKU-{sku:07d}",
            "row": sku,
            "variant": variant,
            "partition": partition,
            "status": "failed" if failed else "generated",
            "error": rnd.choice(ERRORS) if failed else None,
            "model": "gpt-image-1",
            "prompt": prompt,
            "size": SIZES[sku % len(SIZES)],
            "quality": "medium",
            "output_format": "png",
            "background": "opaque",
            "attempts": rnd.choice([1, 1, 1, 2, 3]),
            "cost_usd": 0.0 if failed else 0.063,
            "run_id": run_id,
            "created_at": at,
            "recorded_at": at,
            "renditions": [],
            "metadata": json.dumps(metadata),
        }
        if failed:
            return row
        folder = asset_folder(partition, asset_id)
        latency = rnd.uniform(8, 40)
        return row | {
            "review_state": "pending",  # as a job with review required records it
            "revised_prompt": prompt if rnd.random() < 0.1 else None,
            "latency_s": latency,
            "text_input_tokens": len(prompt) // 4,
            "image_input_tokens": 0,
            "output_tokens": 1056,
            "recorded_at": at + timedelta(seconds=latency),
            "original_uri": self.store.uri(f"{folder}/original.png"),
            "original_bytes": rnd.randint(1_200_000, 3_000_000),
            "original_sha256": f"{rnd.getrandbits(256):064x}",
            "renditions": [
                {
                    "name": name,
                    "uri": self.store.uri(f"{folder}/{name}.{fmt}"),
                    "width": width,
                    "height": width,
                    "format": fmt,
                    "bytes": rnd.randint(10_000, 400_000),
                }
                for name, width, fmt in RENDITIONS
            ],
        }


def gtin(sku: int) -> str:
    return f"{4006381000000 + sku * 37:013d}"


def write_table(store: AssetStore, checkpoints: list[Checkpoint]) -> None:
    """One append per checkpoint of the rows it leaves in the table (see the docstring)."""
    slots = pa.concat_tables([c.rows.select(list(SLOT_COLUMNS)) for c in checkpoints])
    last = {asset: i for i, asset in enumerate(slots["asset_id"].to_pylist())}
    kept = pa.array(sorted(last.values()))  # an asset's last row, in commit order
    superseded = superseded_of(slots.take(kept)).to_pylist()
    keep = [False] * slots.num_rows
    for i in kept.to_pylist():
        keep[i] = True
    uri, options = location(store)
    table: DeltaTable | None = None
    offset = done = 0
    for n, c in enumerate(checkpoints):
        mask = keep[offset : offset + c.rows.num_rows]
        offset += c.rows.num_rows
        # Each commit's rows a table of their own: delta-rs copies a slice's whole buffers.
        rows = c.rows.filter(pa.array(mask))
        rows = rows.set_column(
            rows.schema.get_field_index(SUPERSEDED_BY),
            SUPERSEDED_BY,
            pa.array(superseded[done : done + rows.num_rows], pa.string()),
        )
        done += rows.num_rows
        properties = CommitProperties(
            custom_metadata={RUN_KEY: c.run_id}, app_transactions=[Transaction(c.app, c.seq)]
        )
        if table is None:
            write_deltalake(
                uri,
                rows,
                configuration=TABLE_PROPERTIES,  # as commit() creates it
                storage_options=options,
                commit_properties=properties,
            )
        else:
            write_deltalake(table, rows, mode="append", commit_properties=properties)
        if n + 1 == len(checkpoints) or checkpoints[n + 1].run_id != c.run_id:
            cat.compact_small(store, c.run_id)  # what the run's writer does at its end
            table = DeltaTable(uri, storage_options=options)
        elif n % REOPEN == 0:  # a DeltaTable kept open gets slower to append to with each commit
            table = DeltaTable(uri, storage_options=options)


# --- timing ----------------------------------------------------------------------------------

# Runs a command, then prints its exit code, wall time and peak memory. A child
# of this small process: a child of the bench would count the bench's memory
# (Linux keeps the peak of the process it was forked from).
TIMER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
code = subprocess.call(sys.argv[1:])
wall = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps([code, wall, peak]), file=sys.stderr)
"""

# One commit through tasks.catalog.table.commit, in a process that has done its
# imports (as a run has): prints the commit's seconds.
COMMIT = """
import pickle, sys, time
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.store.assets import AssetStore
with open(sys.argv[2], "rb") as f:
    run_id, app, seq, rows = pickle.load(f)
store = AssetStore(sys.argv[1])
started = time.perf_counter()
cat.commit(store, rows, run_id, (app, seq))
print(time.perf_counter() - started)
if sys.argv[3] == "end":  # then what the writer does at its end: settle, pack
    started = time.perf_counter()
    cat.settle(store, {r["row_id"] for r in rows if r["status"] == "generated"}, run_id)
    cat.compact_small(store, run_id)
    print(time.perf_counter() - started)
"""

# DuckDB as a whole command: open the table, query its current files, print.
DUCKDB = """
import sys, duckdb
from deltalake import DeltaTable
files = DeltaTable(sys.argv[1]).file_uris()
found = duckdb.execute(sys.argv[2], [files]).fetchall()
for row in found[:%d]:
    print(*row, sep="  ")
print(len(found), "assets")
"""


def note(text: str) -> None:
    """Progress, on stderr (the results go to stdout at the end)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_child(cmd: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak MB and stdout of a command."""
    proc = subprocess.run([sys.executable, "-c", TIMER, *cmd], capture_output=True, text=True)
    code, wall, peak_kb = json.loads(proc.stderr.splitlines()[-1])
    if code:
        sys.exit(f"{' '.join(cmd)} failed ({code}): {proc.stderr}")
    return wall, peak_kb / 1024, proc.stdout


def best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return min(times), result


# --- the queries -----------------------------------------------------------------------------


@dataclass
class Where:
    """One `list --where K=V` and the same question in DuckDB's SQL."""

    key: str
    value: str
    sql: str  # a condition on a row of the table


def pick_wheres(synth: Synth) -> list[Where]:
    """A category (1/8 of the assets), and one slot that was refreshed most, by sku,
    by its metadata gtin and by row_id."""
    slot = max(range(len(synth.versions)), key=synth.versions.__getitem__)
    sku = synth.slots[slot][0]
    row_id = f"SKU-{sku:07d}"
    return [
        Where("category", "lamps", "partition['category'] = 'lamps'"),
        Where("sku", row_id, f"partition['sku'] = '{row_id}'"),
        Where(
            "gtin",
            gtin(sku),
            f"json_extract_string(metadata, '$.gtin') = '{gtin(sku)}'",
        ),
        Where("row_id", row_id, f"row_id = '{row_id}'"),
    ]


def duckdb_sql(where: Where, source: str) -> str:
    """`list`'s question: the current assets matching `where`, the columns it shows."""
    columns = ", ".join(f'"{c}"' for c in TABLE_COLUMNS)
    return f"SELECT {columns} FROM {source} WHERE ({where.sql}) AND {SUPERSEDED_BY} IS NULL"


def ours(store: AssetStore, where: Where) -> pa.Table:
    """What `catalog list --where` asks of the catalog (after its imports)."""
    shown = (*TABLE_COLUMNS, SUPERSEDED_BY)  # as `list` asks for them (a table)
    found = cat.query(store, [(where.key, where.value)], columns=shown)
    return cat.select(found, current_only=True).select(list(TABLE_COLUMNS))


def duckdb_files(store: AssetStore, where: Where) -> pa.Table:
    """DuckDB's own Parquet reader over the table's current files."""
    uri, options = location(store)
    files = DeltaTable(uri, storage_options=options).file_uris()
    return duckdb.sql(
        duckdb_sql(where, "read_parquet($files)"), params={"files": files}
    ).to_arrow_table()


ENGINES: dict[str, Callable[[AssetStore, Where], pa.Table]] = {
    "ours": ours,
    # Not DuckDB over a pyarrow dataset of the files: the files a MERGE or compact writes
    # keep strings as string_view, and the filters DuckDB pushes into that scan fail.
    "duckdb read_parquet": duckdb_files,
}


def measure_lists(store: AssetStore, wheres: list[Where], repeat: int) -> dict[str, Any]:
    """Whole commands and in-process queries, ours and DuckDB's, of the table as it is now."""
    cli = str(Path(sys.executable).parent / "assetgen")
    uri, _ = location(store)
    m: dict[str, Any] = {"files": len(DeltaTable(uri).file_uris()), "peak": 0.0}
    for w in wheres:
        counts = set()
        for engine, fn in ENGINES.items():
            m[f"{engine} {w.key}"], found = best(lambda fn=fn, w=w: fn(store, w), repeat)
            counts.add(found.num_rows)
        m[f"matches {w.key}"] = found.num_rows
        cmd = [cli, "catalog", "list", "--store", store.url, "--where", f"{w.key}={w.value}"]
        runs = [run_child([*cmd, "--limit", str(LIMIT)]) for _ in range(repeat)]
        m[f"list {w.key}"] = min(wall for wall, _, _ in runs)
        m["peak"] = max(m["peak"], *(peak for _, peak, _ in runs))
        shown = re.search(r"^(\d+) assets", runs[0][2], re.MULTILINE)
        sql = duckdb_sql(w, "read_parquet(?)")
        duck = [run_child([sys.executable, "-c", DUCKDB % LIMIT, uri, sql]) for _ in range(repeat)]
        m[f"duckdb command {w.key}"] = min(wall for wall, _, _ in duck)
        told = re.search(r"^(\d+) assets", duck[0][2], re.MULTILINE)
        if (
            len(counts) != 1
            or not found.num_rows
            or not shown
            or int(shown[1]) != min(found.num_rows, LIMIT)
            or not told
            or int(told[1]) != found.num_rows
        ):
            sys.exit(f"--where {w.key}={w.value}: in process {counts}, commands {shown} {told}")
    return m


# --- commits ---------------------------------------------------------------------------------


# What a MERGE commit did, from the table's history (delta-rs's operation metrics).
MERGE_METRICS = {
    "merge_s": "execution_time_ms",
    "files_rewritten": "num_target_files_removed",
    "rows_copied": "num_target_rows_copied",
}


def measure_commit(
    store: AssetStore, synth: Synth, size: int, repeat: int, old: bool = True, end: bool = False
) -> dict[str, float]:
    """`commit()` of `size` new rows of a run (synth.mix) as one commit, best of `repeat`,
    each in a fresh process: the commit's seconds (in process), the process's peak MB and
    what the MERGE did (of the slowest commit); with `end`, then the writer's upkeep at
    its end (settle and pack: "upkeep" seconds)."""
    found: list[dict[str, float]] = []
    uri, _ = location(store)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.pickle"
        for _ in range(repeat):
            made = synth.run(synth.mix(size, old))
            path.write_bytes(pickle.dumps((made.run_id, made.app, 1, made.rows.to_pylist())))
            files = len(DeltaTable(uri).file_uris())
            before = DeltaTable(uri).version()
            child = [sys.executable, "-c", COMMIT, store.url, str(path), "end" if end else "-"]
            _, peak, out = run_child(child)
            merge = DeltaTable(uri).history(DeltaTable(uri).version() - before)[-1]
            metrics = merge.get("operationMetrics") or {}
            m = {k: float(metrics.get(v) or 0) for k, v in MERGE_METRICS.items()}
            seconds = [float(v) for v in out.split()]
            m |= {"s": seconds[0], "upkeep": seconds[1] if end else 0.0}
            m |= {"peak": peak, "files": files}
            found.append(m | {"merge_s": m["merge_s"] / 1000})
            check_commit(store, made.rows)
    slowest = max(found, key=lambda m: m["s"])
    return slowest | {
        "best": min(m["s"] for m in found),
        "peak": max(m["peak"] for m in found),
    }


def check_commit(store: AssetStore, rows: pa.Table) -> None:
    """The committed rows are in the table, and each refresh superseded its slot's last asset."""
    ids = rows["asset_id"].to_pylist()
    stored = cat.read_matching(store, {"asset_id": ids, "row_id": rows["row_id"].to_pylist()})
    found = set(stored["asset_id"].to_pylist())
    if not set(ids) <= found:
        sys.exit(f"commit: {len(set(ids) - found)} of {len(ids)} rows missing")
    current = cat.select(stored, current_only=True)
    slots = [
        (r["row_id"], r["variant"])
        for r in current.filter(pc.equal(current["status"], "generated")).to_pylist()
    ]
    if len(slots) != len(set(slots)):
        sys.exit("commit: a slot has two current generated assets")


# --- the run ---------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2, help="best of this many timings")
    ap.add_argument("--quick", action="store_true", help="100,000 assets, one timing")
    ap.add_argument("--run-end-rows", type=int, default=10_000, help="rows of the run-end commit")
    args = ap.parse_args()
    assets, repeat = (100_000, 1) if args.quick else (args.assets, args.repeat)
    cli = str(Path(sys.executable).parent / "assetgen")

    layouts: dict[str, dict[str, Any]] = {}
    compacts: dict[str, tuple[float, float, str]] = {}
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        store = AssetStore(str(Path(tmp) / "store"))
        uri, _ = location(store)
        note(f"generating the runs of {assets:,} assets")
        started = time.perf_counter()
        synth = Synth(store, assets)
        synth.build()
        generated = time.perf_counter() - started
        note(f"writing {len(synth.checkpoints):,} commits")
        write_table(store, synth.checkpoints)
        built = time.perf_counter() - started
        rows = synth.rows
        summary = (
            f"{synth.assets:,} assets before the commits measured: {rows:,} rows from "
            f"{synth.runs:,} runs in {len(synth.checkpoints):,} checkpoints, "
            f"{synth.refreshed:,} newer versions, {synth.failures:,} failed rows"
        )
        versions = DeltaTable(uri).version() + 1
        size_mb = sum(f.stat().st_size for f in Path(uri).glob("*.parquet")) / 1e6
        wheres = pick_wheres(synth)
        startup = min(run_child([cli, "catalog", "--help"])[0] for _ in range(repeat))
        for name in ("as runs leave it", "compacted"):
            if name == "compacted":
                note("compact")
                compacts["compact"] = run_child([cli, "catalog", "compact", "--store", store.url])
            note(f"{name}: list --where")
            m = measure_lists(store, wheres, repeat)
            loads.append(os.getloadavg()[0])
            note(f"{name}: commits")
            m["checkpoint"] = measure_commit(store, synth, FLUSH_ROWS, repeat)
            m["checkpoint, new only"] = measure_commit(store, synth, FLUSH_ROWS, repeat, old=False)
            m["run-end"] = measure_commit(store, synth, args.run_end_rows, repeat, end=True)
            layouts[name] = m
            loads.append(os.getloadavg()[0])
        note("compact --keep-days 0")
        again = [cli, "catalog", "compact", "--store", store.url, "--keep-days", "0"]
        compacts["compact --keep-days 0"] = run_child(again)
        loads.append(os.getloadavg()[0])

    report(summary, layouts, compacts, wheres, args.run_end_rows, startup)
    print(
        f"  built: {rows:,} rows generated in {generated:.0f} s, {versions:,} versions "
        f"written in {built - generated:.0f} s ({size_mb:.0f} MB of Parquet)"
    )
    print(f"  load average (1 min) over the run: {min(loads):.1f}-{max(loads):.1f}")
    worst = {n: max(m[f"list {w.key}"] for w in wheres) for n, m in layouts.items()}
    commits = {n: m["checkpoint"]["s"] for n, m in layouts.items()}
    worst_list, worst_commit = max(worst.values()), max(commits.values())
    peak = compacts["compact"][1]
    verdict = {True: "met", False: "not met"}
    if assets != 1_000_000:
        print(f"  (the goals are set for 1,000,000 assets; this catalog has {assets:,})")
    for goal, found in (
        ("list --where (command) < 1 s", worst),
        ("checkpoint commit < 1 s", commits),
    ):
        figures = ", ".join(f"{n} {v:.2f} s" for n, v in found.items())
        print(f"  goal: {goal}: worst {figures} ({verdict[max(found.values()) < 1]})")
    print(f"  goal: compact peak < 1 GB: {peak:.0f} MB ({verdict[peak < 1024]})")
    print(f"catalog_list_where_s: {worst_list:.2f}")
    print(f"catalog_checkpoint_commit_s: {worst_commit:.2f}")
    print(f"catalog_compact_peak_mb: {peak:.0f}")


def report(
    built: str,
    layouts: dict[str, dict[str, Any]],
    compacts: dict[str, tuple[float, float, str]],
    wheres: list[Where],
    run_end_rows: int,
    startup: float,
) -> None:
    names = list(layouts)
    print(f"catalog of {built}")

    def line(label: str, unit: str, values: list[str]) -> None:
        print(f"  {label:44} {unit:>2}" + "".join(f" {v:>13}" for v in values))

    line("layout", "", names)
    line("data files", "", [f"{layouts[n]['files']:,}" for n in names])
    for w in wheres:
        line(
            f"--where {w.key}= matches (current)",
            "",
            [f"{layouts[n][f'matches {w.key}']:,}" for n in names],
        )
    for w in wheres:
        print(f"  --where {w.key}={w.value}")
        line("  list --where (command)", "s", [f"{layouts[n][f'list {w.key}']:.2f}" for n in names])
        line(
            "  duckdb (command: python -c)",
            "s",
            [f"{layouts[n][f'duckdb command {w.key}']:.2f}" for n in names],
        )
        for engine in ENGINES:
            line(
                f"  {engine} (in process)",
                "s",
                [f"{layouts[n][f'{engine} {w.key}']:.3f}" for n in names],
            )
        for engine in list(ENGINES)[1:]:
            ratios = [layouts[n][f"ours {w.key}"] / layouts[n][f"{engine} {w.key}"] for n in names]
            line(f"  ours / {engine}", "x", [f"{r:.1f}" for r in ratios])
    line("list peak memory", "MB", [f"{layouts[n]['peak']:.0f}" for n in names])
    commits = {
        "checkpoint": f"{FLUSH_ROWS} rows: new assets, refreshes, retries",
        "checkpoint, new only": f"{FLUSH_ROWS} rows: new assets only",
        "run-end": f"{run_end_rows:,} rows: new assets, refreshes, retries",
    }
    for kind, what in commits.items():
        v = [layouts[n][kind] for n in names]
        print(f"  {kind} commit ({what})")
        line("  commit() (best; worst)", "s", [f"{m['best']:.2f}; {m['s']:.2f}" for m in v])
        line("  of which the MERGE (worst)", "s", [f"{m['merge_s']:.2f}" for m in v])
        line("  data files of the table before it", "", [f"{m['files']:,.0f}" for m in v])
        line("  files it rewrote", "", [f"{m['files_rewritten']:,.0f}" for m in v])
        line("  stored rows it copied", "", [f"{m['rows_copied']:,.0f}" for m in v])
        line("  peak memory of its process", "MB", [f"{m['peak']:.0f}" for m in v])
        if kind == "run-end":
            line("  then settle + pack (the writer's end)", "s", [f"{m['upkeep']:.2f}" for m in v])
    print(f"  startup: `assetgen catalog --help` {startup:.2f} s, part of every command")
    for label, (wall, peak, out) in compacts.items():
        print(f"  {label}: {wall:.2f} s, peak {peak:.0f} MB: {out.strip()}")


if __name__ == "__main__":
    main()
