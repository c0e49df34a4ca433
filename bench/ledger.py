"""The shared spend ledger: ledger writes per image, and the dispatch rate with it on S3.

    python bench/ledger.py [--jobs 2000] [--ipm 600] [--latency 1.0] [--quick]

Two runs of assetgen's dispatcher against the Images API test server (limit
`--ipm` images per minute, `--latency` s +-50% per image), in one process:
  local   the store, and so the ledger, in a local folder
  s3      the store and the ledger on S3 (a moto server in its own process on
          127.0.0.1, so its CPU does not slow the dispatcher)
Each run has a run cap and a period cap far above what it spends, so every
claim is a real ledger decision that never says no. Reported: ledger entries
the run wrote per image, overall and at steady state (goal: at most 1 per
20), and the steady rate (middle 80% of completions) as a share of the
server's limit (goal: >= 0.97 on S3, as on local disk). Steady state starts
after the first claim, which is larger: before the first answer the
dispatcher assumes slow requests and keeps many in flight. Needs the test
extra (moto).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import fsspec
import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assetgen.tasks.budget.claims import Caps, LedgerAccount
from assetgen.tasks.budget.ledger import LEDGER, Entry
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.generation.openai_images import OpenAIProvider
from assetgen.tasks.generation.run import generate
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.store.assets import AssetStore, now_utc
from bench.dispatch_rate import KEY, make_jobs, steady_rate
from tests.fakes.images_api import FakeOpenAI
from tests.fakes.s3_server import start_moto, stop_moto


def run(fake: FakeOpenAI, store: AssetStore, n: int, ipm: float, tag: str) -> dict[str, float]:
    fake.reset()
    overrides = {
        "limits.ipm": ipm,
        "limits.max_attempts": 20,
        "budget.cap_usd": 1e6,
        "budget.period": "day",
        "budget.period_cap_usd": 1e6,
        "store": store.url,
    }
    cfg = load_job_config(None, overrides)
    client = openai.AsyncOpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0)
    provider = OpenAIProvider(timeout_s=60, client=client)
    run_id = f"bench-{tag}"
    started_at = now_utc()
    account = LedgerAccount(store, run_id, "run", started_at, Caps.from_config(cfg.budget))
    started, started_wall = time.monotonic(), time.time()
    report = generate(
        make_jobs(n, tag),
        cfg,
        store,
        run_id,
        started_at,
        load_price_table(),
        provider,
        account=account,
    )
    wall = time.monotonic() - started
    images = sum(o.status == "generated" for o in report.outcomes)
    # Steady state: after the first claim (sized for the first wave, see above)
    # up to the last one before the run closed its account.
    done = [started_wall + r.finished - started for r in fake.requests if r.status == 200]
    claims = [e.at.timestamp() for e in entries_by(store, run_id)][:-1]
    steady_images = sum(claims[1] < t <= claims[-1] for t in done) if len(claims) > 2 else 0
    return {
        "images": images,
        "writes": account.ledger.writes,
        "writes_per_image": account.ledger.writes / images if images else float("inf"),
        "steady_writes_per_image": (len(claims) - 2) / steady_images if steady_images else 0,
        "rate_ipm": steady_rate(fake),
        "429": fake.count(429),
        "wall_s": wall,
    }


def entries_by(store: AssetStore, account_id: str) -> list[Entry]:
    """The ledger entries one account wrote."""
    fs = store.fs
    paths = fs.glob(store.path(f"{LEDGER}/*/log/*.json"))
    found = [Entry.model_validate_json(fs.cat_file(p)) for p in paths]
    return [e for e in found if e.by == account_id]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--ipm", type=float, default=600)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="400 jobs")
    args = ap.parse_args()
    n = 400 if args.quick else args.jobs
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    moto, endpoint = start_moto()
    rows = {}
    try:
        fsspec.filesystem("s3", endpoint_url=endpoint).mkdir("bench-ledger")
        with (
            FakeOpenAI(
                api_key=KEY, ipm=args.ipm, latency_s=args.latency, latency_jitter=args.latency / 2
            ) as fake,
            tempfile.TemporaryDirectory() as tmp,
        ):
            rows["local"] = run(fake, AssetStore(tmp), n, args.ipm, "local")
            s3 = AssetStore("s3://bench-ledger/store", {"endpoint_url": endpoint})
            rows["s3"] = run(fake, s3, n, args.ipm, "s3")
    finally:
        stop_moto(moto)
    print(f"{n} jobs, server limit {args.ipm:.0f}/min, latency {args.latency}s +-50%")
    print(
        f"{'store':6} {'images':>7} {'ledger writes':>14} {'per image':>10} {'steady':>7} "
        f"{'rate/min':>9} {'of limit':>9} {'429s':>5} {'wall s':>7}"
    )
    for name, r in rows.items():
        print(
            f"{name:6} {r['images']:7.0f} {r['writes']:14.0f} {r['writes_per_image']:10.4f} "
            f"{r['steady_writes_per_image']:7.4f} {r['rate_ipm']:9.1f} "
            f"{r['rate_ipm'] / args.ipm:9.3f} {r['429']:5.0f} {r['wall_s']:7.1f}"
        )
    print(f"ledger_writes_per_image: {rows['s3']['steady_writes_per_image']:.4f}")
    print(f"ledger_s3_rate_vs_limit: {rows['s3']['rate_ipm'] / args.ipm:.3f}")


if __name__ == "__main__":
    main()
