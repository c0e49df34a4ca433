"""Rendition throughput for the e-commerce presets: ours vs a naive loop.

    python bench/renditions.py [--originals 120] [--rounds 3] [--workers N] [--quick]

Originals are PNGs like the API returns (half 1024x1024, half 1536x1024;
gradients, shapes and sensor-like noise), each rendered into every preset
of configs/presets/ecommerce.yaml. Three ways, same presets, same code per
rendition, byte-identical outputs (checked):
  naive        one process; for every original and every preset, decode the
               bytes again (Image.open, exif_transpose, sRGB), resize, encode
  decode-once  one process; `render_all`: decode each original once
  ours         `render_all` in a ProcessPoolExecutor with one worker per core
               (spawned and warmed up before timing, as the pipeline keeps it)
Each method runs `--rounds` times, interleaved; the best time counts (the
machine may be shared). Last line: naive time / ours time.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import os
import random
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assetgen.tasks.renditions.presets import Preset, load_presets
from assetgen.tasks.renditions.render import Rendered, prepare, render_all, render_one

ROOT = Path(__file__).resolve().parent.parent

SIZES = [(1024, 1024), (1536, 1024)]
DISTINCT = 24  # distinct originals, cycled: enough to defeat caches, little memory


def make_original(size: tuple[int, int], seed: int) -> bytes:
    rnd = random.Random(seed)
    w, h = size
    bands = []
    for _ in range(3):
        g = Image.linear_gradient("L").rotate(rnd.uniform(0, 360)).resize(size)
        lo, hi = sorted(rnd.sample(range(256), 2))
        bands.append(g.point(lambda v, lo=lo, hi=hi: lo + v * (hi - lo) // 255))
    im = Image.merge("RGB", bands)
    draw = ImageDraw.Draw(im)
    for _ in range(6):
        x, y = rnd.randrange(w), rnd.randrange(h)
        r = rnd.randrange(w // 12, w // 4)
        colour = tuple(rnd.randrange(256) for _ in range(3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    im = im.filter(ImageFilter.GaussianBlur(2))
    # zero-mean gaussian noise per channel, like sensor grain or diffusion texture
    im = Image.merge(
        "RGB", [ImageChops.add(b, Image.effect_noise(size, 5), 1.0, -128) for b in im.split()]
    )
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def naive(original: bytes, presets: dict[str, Preset]) -> list[Rendered]:
    """What a straightforward loop does: decode again for every rendition."""
    return [render_one(prepare(original), name, p) for name, p in presets.items()]


def digest(rendered: list[Rendered]) -> list[str]:
    return [hashlib.sha256(r.data).hexdigest() for r in rendered]


def run_serial(fn, originals: list[bytes], presets: dict[str, Preset]) -> tuple[float, list]:
    start = time.perf_counter()
    out = [digest(fn(o, presets)) for o in originals]
    return time.perf_counter() - start, out


def run_pool(
    pool: ProcessPoolExecutor, originals: list[bytes], presets: dict[str, Preset]
) -> tuple[float, list]:
    start = time.perf_counter()
    out = [digest(r) for r in pool.map(render_all, originals, repeat(presets))]
    return time.perf_counter() - start, out


def start_pool(workers: int, presets: dict[str, Preset]) -> ProcessPoolExecutor:
    """Spawned like tasks.postprocess.rendition_pool, and warmed up (imports done)."""
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    tiny = io.BytesIO()
    Image.new("RGB", (8, 8)).save(tiny, "PNG")
    list(pool.map(render_all, [tiny.getvalue()] * workers * 2, repeat(presets)))
    return pool


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--originals", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3, help="best of; methods interleaved")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="12 originals, 2 rounds")
    args = ap.parse_args()
    n, rounds = (12, 2) if args.quick else (args.originals, args.rounds)

    presets = load_presets(ROOT / "configs" / "presets" / "ecommerce.yaml")
    distinct = [make_original(SIZES[i % len(SIZES)], seed=i) for i in range(min(n, DISTINCT))]
    originals = [distinct[i % len(distinct)] for i in range(n)]
    mb = sum(len(o) for o in distinct) / len(distinct) / 1e6
    print(
        f"{n} originals ({' and '.join(f'{w}x{h}' for w, h in SIZES)} PNG, {mb:.1f} MB avg), "
        f"presets {', '.join(presets)}; {args.workers} workers, {os.cpu_count()} cores, "
        f"best of {rounds}"
    )

    best: dict[str, float] = {}
    outputs: dict[str, list] = {}
    with start_pool(args.workers, presets) as pool:
        for _ in range(rounds):
            runs = {
                "naive": lambda: run_serial(naive, originals, presets),
                "decode-once": lambda: run_serial(render_all, originals, presets),
                "ours": lambda: run_pool(pool, originals, presets),
            }
            for name, run in runs.items():
                secs, out = run()
                best[name] = min(secs, best.get(name, secs))
                outputs[name] = out
    same = outputs["naive"] == outputs["decode-once"] == outputs["ours"]

    base = best["naive"]
    renditions = n * len(presets)
    print(f"{'method':<12} {'seconds':>8} {'originals/s':>12} {'renditions/s':>13} {'speedup':>8}")
    for name, secs in best.items():
        print(
            f"{name:<12} {secs:8.2f} {n / secs:12.2f} {renditions / secs:13.1f} {base / secs:8.2f}"
        )
    print(f"outputs identical across methods: {'yes' if same else 'NO'}")
    print(f"renditions_speedup: {base / best['ours']:.2f}")


if __name__ == "__main__":
    main()
