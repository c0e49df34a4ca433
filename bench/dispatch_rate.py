"""Dispatch efficiency against the Images API test server: achieved rate vs the limit.

    python bench/dispatch_rate.py [--jobs 1000] [--ipm 600] [--latency 1.0] [--quick]

Three runs against a server that allows `--ipm` images per minute with
`--latency` seconds (jittered +-50%) per image:
  ours        assetgen's dispatcher configured at the server's limit
  ours-2x     the same, configured at twice the server's real limit
  baseline    asyncio + a semaphore + the SDK's own retries, no limiter
Steady state is the middle 80% of completions. Last line: the headline ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import openai

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.generation.openai_images import OpenAIProvider
from assetgen.tasks.generation.run import generate
from assetgen.tasks.plan.jobs import Job, asset_id
from assetgen.tasks.plan.pricing import estimate_job_cost, load_price_table
from assetgen.tasks.store.assets import AssetStore, now_utc
from tests.fakes.images_api import FakeOpenAI

KEY = "sk-bench"


def make_jobs(n: int, tag: str) -> list[Job]:
    prices = load_price_table()
    cost = estimate_job_cost(prices, "gpt-image-2", "1024x1024", "low", 40)
    jobs = []
    for i in range(n):
        prompt = f"bench {tag} image {i}: a ceramic mug on a desk"
        params = dict(
            model="gpt-image-2",
            prompt=prompt,
            size="1024x1024",
            quality="low",
            output_format="jpeg",
            output_compression=None,
            background="auto",
        )
        aid = asset_id(**params, reference_sha256=[], mask_sha256=None, variant=0)
        costs = {"cost_low": cost.low, "cost_expected": cost.expected, "cost_worst": cost.worst}
        jobs.append(Job(asset_id=aid, row=i + 1, row_id=f"r{i}", variant=0, **params, **costs))
    return jobs


def steady_rate(fake: FakeOpenAI) -> float:
    """Images per minute over the middle 80% of successful completions."""
    done = sorted(r.finished for r in fake.requests if r.status == 200)
    if len(done) < 10:
        return 0.0
    lo, hi = done[len(done) // 10], done[len(done) * 9 // 10]
    return (len(done) * 9 // 10 - len(done) // 10) / (hi - lo) * 60


def measure(fake: FakeOpenAI, images: int, wall: float) -> dict[str, float]:
    sent = len(fake.requests)
    return {
        "images": images,
        "requests": sent,
        "429_share": fake.count(429) / sent if sent else 0.0,
        "rate_ipm": steady_rate(fake),
        "req_per_image": sent / images if images else float("inf"),
        "wall_s": wall,
    }


def run_ours(fake: FakeOpenAI, jobs: list[Job], ipm: float) -> dict[str, float]:
    fake.reset()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_job_config(
            None, {"limits.ipm": ipm, "limits.max_attempts": 20, "budget.cap_usd": 1e6}
        )
        client = openai.AsyncOpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0)
        provider = OpenAIProvider(timeout_s=60, client=client)
        started = time.monotonic()
        report = generate(
            jobs, cfg, AssetStore(tmp), "bench", now_utc(), load_price_table(), provider
        )
        wall = time.monotonic() - started
    images = sum(o.status == "generated" for o in report.outcomes)
    return measure(fake, images, wall)


def run_baseline(fake: FakeOpenAI, jobs: list[Job], concurrency: int) -> dict[str, float]:
    fake.reset()

    async def go() -> int:
        client = openai.AsyncOpenAI(api_key=KEY, base_url=fake.base_url, max_retries=2)
        gate = asyncio.Semaphore(concurrency)

        async def one(job: Job) -> bool:
            async with gate:
                try:
                    await client.images.generate(
                        model=job.model, prompt=job.prompt, size=job.size, quality=job.quality
                    )
                    return True
                except openai.APIError:
                    return False

        results = await asyncio.gather(*(one(j) for j in jobs))
        await client.close()
        return sum(results)

    started = time.monotonic()
    images = asyncio.run(go())
    return measure(fake, images, time.monotonic() - started)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--ipm", type=float, default=600)
    ap.add_argument("--latency", type=float, default=1.0)
    ap.add_argument("--quick", action="store_true", help="200 jobs")
    args = ap.parse_args()
    n = 200 if args.quick else args.jobs

    with FakeOpenAI(
        api_key=KEY, ipm=args.ipm, latency_s=args.latency, latency_jitter=args.latency / 2
    ) as fake:
        rows = {
            "ours": run_ours(fake, make_jobs(n, "a"), args.ipm),
            "ours-2x": run_ours(fake, make_jobs(n, "b"), args.ipm * 2),
            "baseline": run_baseline(fake, make_jobs(n, "c"), concurrency=50),
        }
    print(f"{n} jobs, server limit {args.ipm:.0f}/min, latency {args.latency}s +-50%")
    print(
        f"{'run':10} {'images':>7} {'requests':>9} {'429 share':>10} {'rate/min':>9} "
        f"{'of limit':>9} {'req/img':>8} {'wall s':>7}"
    )
    for name, r in rows.items():
        print(
            f"{name:10} {r['images']:7.0f} {r['requests']:9.0f} {r['429_share']:10.2%} "
            f"{r['rate_ipm']:9.1f} {r['rate_ipm'] / args.ipm:9.3f} {r['req_per_image']:8.3f} "
            f"{r['wall_s']:7.1f}"
        )
    print(f"dispatch_rate_vs_limit: {rows['ours']['rate_ipm'] / args.ipm:.3f}")


if __name__ == "__main__":
    main()
