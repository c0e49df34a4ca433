"""Query and compact a catalog of N assets: `assetgen catalog list --where`, `compact`.

    python bench/catalog_scale.py [--assets 1000000] [--repeat 2] [--quick] [--no-checkpoints]

A synthetic catalog in a temporary local store, laid out as runs write it:
runs of 1,000-10,000 jobs, each publishing a part every FLUSH_ROWS rows as it
goes (CatalogWriter's checkpoints), with the real SCHEMA and realistic values.
Most runs add new products (partition category/sku, metadata JSON from the
manifest, ~3% failed); some refresh existing slots with a new style_version
(the older assets become superseded versions); some retry failures (a later
row for the same asset_id). Measured in three layouts:
  checkpoints    every run's parts as they are before its last flush(): what
                 runs killed before their end leave (a worst case; skip it
                 with --no-checkpoints)
  one per run    then each run's parts merged into one by merge_parts, as a
                 run's last CatalogWriter.flush() does (timed: "run-end merge")
  compacted      then `assetgen catalog compact`: one part
In each layout:
  list --where   `assetgen catalog list --where K=V` in a subprocess (wall time,
                 best of --repeat: the machine may be shared) for a partition
                 key, a metadata key and a plain column; in process, the
                 query it runs (read + select, after the imports); and the
                 steps on every column (as export and show): read the parts,
                 latest_rows, superseded, select
  compact        `assetgen catalog compact` of the one-per-run layout, in a
                 subprocess: wall time and peak memory (ru_maxrss of the command)
  startup        `assetgen catalog --help`: what every command pays to start
Goal (issue 8): list --where under 2 s at 1,000,000 assets. Last line: the
worst whole-command --where time over the three keys, one part per run and
compacted (the layouts a store has unless runs were killed).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assetgen.flows.cli.catalog import TABLE_COLUMNS
from assetgen.tasks.catalog import table as cat
from assetgen.tasks.store.assets import AssetStore, asset_folder

CATEGORIES = ["chairs", "tables", "lamps", "sofas", "rugs", "mugs", "shelves", "beds"]
COLORS = ["red", "blue", "oak", "walnut", "black", "white", "grey", "green"]
MATERIALS = ["wood", "steel", "linen", "velvet", "ceramic", "glass"]
LOCALES = {"en-US": "chair", "de-DE": "Stuhl für Küche", "fr-FR": "chaise à café"}
SIZES = ["1024x1024", "1536x1024", "1024x1536"]
RENDITIONS = [("thumb", 256, "webp"), ("web", 1024, "webp"), ("zoom", 2048, "jpeg")]
ERRORS = ["rate_limited: 429 after 5 attempts", "content_policy_violation", "timeout"]
T0 = datetime(2026, 1, 5, tzinfo=UTC)


class Synth:
    """Runs of a pipeline over a growing product range, as catalog part files."""

    def __init__(self, store: AssetStore, assets: int, seed: int = 7) -> None:
        self.store, self.target, self.rnd = store, assets, random.Random(seed)
        self.slots: list[tuple[int, int]] = []  # (sku, variant)
        self.versions: list[int] = []  # per slot: its newest style version
        self.failed: list[tuple[int, int, str]] = []  # (slot, version, asset_id) to retry
        self.assets = self.rows = self.parts = self.failures = self.refreshed = 0
        self.skus = 0
        self.runs: list[tuple[str, list[str]]] = []  # (merged name, checkpoint parts) per run

    def build(self) -> None:
        run = 0
        while self.assets < self.target:
            size = self.rnd.randint(1_000, 10_000)
            kind = "new" if run < 3 else self.rnd.choices(["new", "refresh", "retry"], [8, 1, 1])[0]
            if kind == "retry" and self.failed:
                jobs = [(slot, version, asset) for slot, version, asset in self.failed[:size]]
                del self.failed[:size]
            elif kind == "refresh":
                picked = self.rnd.sample(range(len(self.slots)), min(size, len(self.slots)))
                jobs = [(slot, self._bump(slot), None) for slot in picked]
            else:
                jobs = [(self._new_slot(), 0, None) for _ in range(size)]
            if self.assets + sum(asset is None for *_, asset in jobs) > self.target:
                jobs = jobs[: self.target - self.assets]
            self._write_run(run, jobs)
            run += 1

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

    def _write_run(self, run: int, jobs: list[tuple[int, int, str | None]]) -> None:
        start = T0 + timedelta(hours=3 * run)
        run_id = f"{start:%Y%m%dT%H%M%SZ}-{run:06x}"
        columns: dict[str, list[Any]] = {name: [] for name in cat.SCHEMA.names}
        for i, (slot, version, retried) in enumerate(jobs):
            at = start + timedelta(seconds=0.4 * i)
            row = self._row(slot, version, retried, run_id, at)
            for name, column in columns.items():
                column.append(row.get(name))
        table = pa.table(columns, schema=cat.SCHEMA)
        token = f"{run:06x}"
        names = []
        for seq, offset in enumerate(range(0, table.num_rows, cat.FLUSH_ROWS), 1):
            buf = io.BytesIO()  # as write_part writes a part
            pq.write_table(table.slice(offset, cat.FLUSH_ROWS), buf, compression="zstd")
            names.append(f"{cat.CATALOG}/part-{run_id}-{token}-{seq:05d}.parquet")
            self.store.write_bytes(names[-1], buf.getvalue())
            self.parts += 1
        # As CatalogWriter.flush() names the merged part.
        self.runs.append(
            (f"{cat.CATALOG}/part-{run_id}-{token}-00001-{len(names):05d}.parquet", names)
        )
        self.rows += table.num_rows

    def merge_runs(self) -> float:
        """Merge each run's parts into one, as its last flush() does; returns the seconds."""
        started = time.perf_counter()
        for merged, names in self.runs:
            if len(names) > 1:
                assert cat.merge_parts(self.store, names, merged)
        return time.perf_counter() - started

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
            "gtin": f"{4006381000000 + sku * 37:013d}",
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
        size = SIZES[sku % len(SIZES)]
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
            "size": size,
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


def pick_wheres(synth: Synth) -> dict[str, tuple[str, str]]:
    """One slot that was refreshed, queried by a partition key, a metadata key, a column."""
    slot = max(range(len(synth.versions)), key=synth.versions.__getitem__)
    sku = synth.slots[slot][0]
    return {
        "partition": ("sku", f"SKU-{sku:07d}"),
        "metadata": ("gtin", f"{4006381000000 + sku * 37:013d}"),
        "column": ("row_id", f"SKU-{sku:07d}"),
    }


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


def measure(store: AssetStore, wheres: dict[str, tuple[str, str]], repeat: int) -> dict:
    """In-process steps and whole `list --where` commands, for the store as it is now."""
    m: dict[str, Any] = {"parts": len(cat.part_paths(store))}
    m["read"], raw = best(lambda: cat.read_catalog(store, latest=False), repeat)
    m["latest"], latest = best(lambda: cat.latest_rows(raw), repeat)
    m["superseded"], table = best(lambda: cat.superseded(latest), repeat)
    m["assets"] = table.num_rows
    cli = str(Path(sys.executable).parent / "assetgen")
    m["peak"] = 0.0
    for kind, (key, value) in wheres.items():
        where = [(key, value)]
        m[f"select {kind}"], found = best(
            lambda where=where: cat.select(table, where, current_only=True), repeat
        )
        m[f"query {kind}"], queried = best(
            lambda where=where: cat.query(store, where, columns=TABLE_COLUMNS), repeat
        )
        cmd = [cli, "catalog", "list", "--store", store.url, "--where", f"{key}={value}"]
        runs = [run_child(cmd) for _ in range(repeat)]
        m[f"list {kind}"] = min(wall for wall, _, _ in runs)
        m["peak"] = max(m["peak"], *(peak for _, peak, _ in runs))
        shown = re.search(r"^(\d+) assets", runs[0][2], re.MULTILINE)
        current = cat.select(queried, current_only=True).num_rows
        if not found.num_rows or not shown or {int(shown[1]), current} != {found.num_rows}:
            sys.exit(f"--where {key}={value}: {found.num_rows}, {current}, command {shown}")
    return m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=2, help="best of this many timings")
    ap.add_argument("--quick", action="store_true", help="100,000 assets, one timing")
    ap.add_argument(
        "--no-checkpoints", action="store_true", help="skip the layout of runs killed before end"
    )
    args = ap.parse_args()
    assets, repeat = (100_000, 1) if args.quick else (args.assets, args.repeat)
    cli = str(Path(sys.executable).parent / "assetgen")

    layouts: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = AssetStore(str(Path(tmp) / "store"))
        started = time.perf_counter()
        synth = Synth(store, assets)
        synth.build()
        built = time.perf_counter() - started
        size_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*.parquet")) / 1e6
        wheres = pick_wheres(synth)
        startup = min(run_child([cli, "catalog", "--help"])[0] for _ in range(repeat))
        if not args.no_checkpoints:
            layouts["checkpoints"] = measure(store, wheres, repeat)
        merge_s = synth.merge_runs()
        layouts["one per run"] = measure(store, wheres, repeat)
        compact_s, compact_mb, _ = run_child([cli, "catalog", "compact", "--store", store.url])
        layouts["compacted"] = measure(store, wheres, repeat)

    print(
        f"catalog of {synth.assets:,} assets: {synth.rows:,} rows in {len(synth.runs):,} runs, "
        f"{synth.parts:,} checkpoint parts ({size_mb:.0f} MB; built in {built:.0f} s), "
        f"{synth.refreshed:,} newer versions, {synth.failures:,} failed rows"
    )
    print(f"  {'layout':37}" + "".join(f" {name:>12}" for name in layouts))
    print(f"  {'parts':37}" + "".join(f" {m['parts']:12,}" for m in layouts.values()))
    rows = [("every column: read", "read"), ("  latest_rows", "latest")]
    rows += [("  superseded", "superseded")]
    rows += [(f"  select {k} {v[0]}=", f"select {k}") for k, v in wheres.items()]
    rows += [(f"list's query {v[0]}= (in process)", f"query {k}") for k, v in wheres.items()]
    rows += [(f"list --where {v[0]}= (command)", f"list {k}") for k, v in wheres.items()]
    for label, key in rows:
        print(f"  {label:35} s" + "".join(f" {m[key]:12.2f}" for m in layouts.values()))
    print(
        f"  {'list peak memory':35} MB" + "".join(f" {m['peak']:11.0f}" for m in layouts.values())
    )
    print(f"  startup: `assetgen catalog --help` {startup:.2f} s, part of every command")
    per_run = merge_s / len(synth.runs) * 1000
    print(
        f"  run-end merge of each run's parts: {merge_s:.2f} s for {len(synth.runs):,} runs "
        f"({per_run:.0f} ms a run, {merge_s / synth.rows * 1e7:.0f} ms per 10,000 rows)"
    )
    before = layouts["one per run"]["parts"]
    print(f"  compact {before:,} parts into 1: {compact_s:.2f} s, peak {compact_mb:.0f} MB")
    if "checkpoints" in layouts:
        crashed = max(layouts["checkpoints"][f"list {kind}"] for kind in wheres)
        print(
            f"  checkpoints only (every run killed before its end): worst command {crashed:.2f} s"
        )
    kept = [layouts["one per run"], layouts["compacted"]]
    worst = max(m[f"list {kind}"] for m in kept for kind in wheres)
    print(f"  goal: list --where < 2 s (worst command {worst:.2f} s: {worst / 2:.2f}x of goal)")
    print(f"catalog_list_where_s: {worst:.2f}")


if __name__ == "__main__":
    main()
