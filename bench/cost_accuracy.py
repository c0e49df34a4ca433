"""Cost estimate accuracy: the plan's expected and worst case against what was billed.

    python bench/cost_accuracy.py [--rows 200] [--seed 8] [--quick]

A mixed manifest (published and unpublished sizes, every quality, generations
and edits with 1-3 reference images of various sizes, some with masks, prompts
of 10 to 4,000 characters) is planned with the real planner, then generated
through the OpenAI provider against the Images API test server (renditions
off). Compared per group and overall: the plan's expected and worst-case cost,
the server's bill (its request log), and what the run's budget settled.
Each job is also checked alone: its billed cost never above its worst case.

The test server bills with the published token table of configs/pricing.yaml
(tests/fakes/images_api.py `_priced`): the ratios measure our estimator
against that model of billing, not against OpenAI's real bills.
Last line: expected / billed over the whole manifest.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlparse

import openai
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.config.models import load_model_table
from assetgen.tasks.generation.openai_images import OpenAIProvider
from assetgen.tasks.generation.run import generate
from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.manifest.rows import RowContext
from assetgen.tasks.plan.jobs import Job, Planner
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.store.assets import AssetStore, now_utc
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import write_manifest

KEY = "sk-bench-cost"
SIZES = ["1024x1024", "1536x1024", "1024x1536", "1280x1280", "2048x1152"]
QUALITIES = ["low", "medium", "high", "auto"]
# Reference images: square, wide, tall, small, and larger than the API's 2048 box.
REF_SIZES = [(512, 512), (1024, 1024), (1536, 1024), (768, 1344), (2048, 2048), (3000, 2000)]
WORDS = ["a", "ceramic", "mug", "on", "an", "oak", "desk", "in", "soft", "morning", "light,"]
WORDS += ["studio", "photo,", "linen", "backdrop,", "cobalt", "and", "sand", "colours"]
TOLERANCE = 0.05


def make_references(folder: Path) -> list[tuple[str, tuple[int, int]]]:
    """PNG references (and an RGBA mask of each size), relative to the manifest's folder."""
    refs = []
    for i, (w, h) in enumerate(REF_SIZES):
        name = f"ref-{w}x{h}.png"
        Image.new("RGB", (w, h), (30 + 30 * i, 90, 160)).save(folder / name, compress_level=1)
        Image.new("RGBA", (w, h), (0, 0, 0, 0)).save(folder / f"mask-{w}x{h}.png", compress_level=1)
        refs.append((name, (w, h)))
    return refs


def prompt(rng: random.Random, row_id: str) -> str:
    """A unique prompt (the row id leads) of 10 to 4,000 characters, short ones most often."""
    length = int(10 * 400 ** rng.random())
    words = [row_id]
    while sum(len(w) + 1 for w in words) < length:
        words.append(rng.choice(WORDS))
    return " ".join(words)[: max(length, len(row_id))]


def manifest_rows(n: int, seed: int, refs: list[tuple[str, tuple[int, int]]]) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        row_id = f"c{i:04d}"
        row: dict = {
            "id": row_id,
            "prompt": prompt(rng, row_id),
            "size": SIZES[i % len(SIZES)],
            "quality": QUALITIES[(i // len(SIZES)) % len(QUALITIES)],
            "output_format": rng.choice(["png", "jpeg"]),
            "reference_images": "",
            "mask": "",
        }
        kind = rng.random()
        if kind >= 0.5:  # half are edits, a third of those with a mask
            chosen = rng.sample(refs, rng.randint(1, 3))
            row["reference_images"] = ";".join(name for name, _ in chosen)
            if kind >= 0.83:
                w, h = chosen[0][1]
                row["mask"] = f"mask-{w}x{h}.png"
        rows.append(row)
    return rows


def kind(job: Job) -> str:
    if not job.references:
        return "generation"
    return "edit + mask" if job.mask else "edit"


def local_path(uri: str) -> Path:
    return Path(urlparse(uri).path) if "://" in uri else Path(uri)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="40 rows")
    args = ap.parse_args()
    n = 40 if args.quick else args.rows

    with tempfile.TemporaryDirectory() as t, FakeOpenAI(api_key=KEY) as fake:
        tmp = Path(t)
        refs = make_references(tmp)
        manifest = write_manifest(str(tmp / "manifest.csv"), manifest_rows(n, args.seed, refs))
        cfg = load_job_config(
            None,
            {
                "renditions": [],
                "provider": "openai",
                "limits.ipm": 1e6,
                "limits.backoff_base_s": 0.01,
                "budget.cap_usd": 1e6,
            },
        )
        prices = load_price_table()
        planner = Planner(RowContext.build(cfg, load_model_table()), prices)
        jobs: list[Job] = []
        for item in planner.plan(manifest):
            if isinstance(item, Reject):
                sys.exit(f"row {item.row} rejected: {item.column}: {item.reason}")
            jobs.append(item)

        client = openai.AsyncOpenAI(api_key=KEY, base_url=fake.base_url, max_retries=0)
        report = generate(
            jobs,
            cfg,
            AssetStore(str(tmp / "store")),
            "cost-bench",
            now_utc(),
            prices,
            OpenAIProvider(timeout_s=60, client=client),
        )
        failed = [o for o in report.outcomes if o.status != "generated"]
        if failed:
            sys.exit(f"{len(failed)} jobs not generated, e.g. {failed[0].reason}")
        billed_by_prompt: dict[str, float] = defaultdict(float)
        for r in fake.requests:
            billed_by_prompt[r.prompt] += r.billed_usd
        total_billed = fake.billed_usd
        sidecars = {
            o.job.asset_id: json.loads(local_path(o.uri).read_text())
            for o in report.outcomes
            if o.uri
        }

    # (expected, worst, billed, jobs) per group
    groups: dict[str, dict[tuple, list[float]]] = {"size x quality": {}, "kind": {}}
    over_worst: list[tuple[Job, float, float]] = []
    tightest = float("inf")  # the least worst/billed of any one job
    for job in jobs:
        billed = billed_by_prompt[job.prompt]
        settled = sidecars[job.asset_id]["cost_usd"]  # what the budget settled for it
        tightest = min(tightest, job.cost_worst / max(billed, settled))
        if max(billed, settled) > job.cost_worst + 1e-12:
            over_worst.append((job, billed, settled))
        for name, key in (("size x quality", (job.size, job.quality)), ("kind", (kind(job),))):
            acc = groups[name].setdefault(key, [0.0, 0.0, 0.0, 0])
            for i, v in enumerate((job.cost_expected, job.cost_worst, billed, 1)):
                acc[i] += v
    expected = sum(j.cost_expected for j in jobs)
    worst = sum(j.cost_worst for j in jobs)
    print(
        f"{len(jobs)} jobs ({n} rows, seed {args.seed}), planned by tasks.plan.Planner, "
        "run through the OpenAI provider against the test server"
    )
    print(
        "billed = the test server's bill, which follows configs/pricing.yaml's published "
        "token table: this checks the estimator against that model of billing, not against "
        "OpenAI's real bills"
    )
    for name, table in groups.items():
        print(
            f"\n{name:24} {'jobs':>5} {'expected $':>11} {'billed $':>10} {'exp/billed':>11} "
            f"{'worst/billed':>13}"
        )
        for key, (exp, wst, bil, count) in sorted(table.items()):
            print(
                f"{' '.join(key):24} {count:5} {exp:11.4f} {bil:10.4f} {exp / bil:11.3f} "
                f"{wst / bil:13.3f}"
            )
    print(
        f"\n{'overall':24} {len(jobs):5} {expected:11.4f} {total_billed:10.4f} "
        f"{expected / total_billed:11.3f} {worst / total_billed:13.3f}"
    )
    print(
        f"budget settled ${report.spent_usd:.4f} vs billed ${total_billed:.4f}: "
        f"x{report.spent_usd / total_billed:.4f}"
    )
    print(
        "masks: counted in the worst case only (OpenAI does not publish whether a mask is "
        "billed as an input image; the test server does not bill it)"
    )
    print(
        f"jobs billed or settled above their worst case: {len(over_worst)} of {len(jobs)}; "
        f"tightest worst/billed of one job: {tightest:.3f}"
    )
    for job, billed, settled in over_worst[:5]:
        print(
            f"  {job.row_id} {job.size} {job.quality} {kind(job)}: billed ${billed:.4f}, "
            f"settled ${settled:.4f}, worst ${job.cost_worst:.4f}"
        )
    ratio = expected / total_billed
    verdict = "within" if abs(ratio - 1) <= TOLERANCE else "outside"
    print(f"expected/billed {verdict} the {TOLERANCE:.0%} goal")
    print(f"cost_estimate_vs_billed: {ratio:.3f}")


if __name__ == "__main__":
    main()
