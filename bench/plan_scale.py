"""Plan a generated manifest of N rows: wall time and peak memory of `assetgen plan`.

    python bench/plan_scale.py --rows 100000 [--format csv|parquet|jsonl]

Goal (issue 8): 100,000 rows in under 10 s and 500 MB.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SIZES = ["1024x1024", "1536x1024", "1024x1536", "2048x1152", "auto"]
QUALITIES = ["low", "medium", "high"]


def make_rows(n: int, seed: int = 7) -> list[dict[str, str]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": f"sku-{i:07d}",
                "prompt": f"Studio photo of product {i}, {rnd.choice(['red', 'blue', 'oak'])} "
                "finish, soft shadow, plain background, high detail " * rnd.randint(1, 3),
                "size": rnd.choice(SIZES) if i % 997 else "1000x1000",  # a few bad rows
                "quality": rnd.choice(QUALITIES),
                "output_format": rnd.choice(["png", "jpeg", "webp"]),
                "campaign": f"c{i % 20}",
                "locale": rnd.choice(["en-US", "de-DE", "fr-FR"]),
            }
        )
    return rows


def write(rows: list[dict[str, str]], path: Path, fmt: str) -> None:
    if fmt == "csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    elif fmt == "jsonl":
        with path.open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--format", default="csv", choices=["csv", "parquet", "jsonl"])
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / f"manifest.{args.format}"
        write(make_rows(args.rows), manifest, args.format)
        size_mb = manifest.stat().st_size / 1e6
        config = Path(tmp) / "job.yaml"
        config.write_text("partition_by: [campaign, locale]\n")
        cli = Path(sys.executable).parent / "assetgen"
        cmd = [str(cli), "plan", str(manifest), "-c", str(config), "--json",
               "--rejects", str(Path(tmp) / "rejects.csv")]  # fmt: skip
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
        wall = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        if proc.returncode not in (0, 1):
            sys.exit(f"plan failed ({proc.returncode}): {proc.stderr}")
        result = json.loads(proc.stdout)

    print(f"plan {args.rows:,} rows ({args.format}, {size_mb:.1f} MB)")
    print(f"  wall time      {wall:6.2f} s   (goal < 10 s: {wall / 10:.2f}x of goal)")
    print(f"  peak memory    {peak_mb:6.0f} MB  (goal < 500 MB: {peak_mb / 500:.2f}x of goal)")
    print(f"  in-process     {result['seconds']:6.2f} s (after imports)")
    print(f"  rows/s         {args.rows / wall:,.0f}")
    print(
        f"  valid {result['valid_rows']:,}  rejected {result['rejected_rows']:,}  "
        f"jobs {result['jobs']:,}  worst case ${result['cost_usd']['worst']:,.2f}"
    )


if __name__ == "__main__":
    main()
