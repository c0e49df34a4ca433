"""Overlay cost per 1200x628 banner, and rendition throughput with vs without overlays.

    python bench/overlays.py [--banners 60] [--rounds 3]

The example's banner preset (examples/overlays/banner.yaml: a panel, a
headline auto-fitted in up to 3 lines, a price, a CTA badge and text, a
logo) over each of the six locales' rows. One core, fonts and logo cached
(warmed once, as a worker keeps them):
  overlay      apply_overlays alone on an already resized 1200x628 image
  render       render_one of a 1536x1024 original into the banner, without
               overlays, then with them (resize + overlays + jpeg encode)
The best of `--rounds` counts (the machine may be shared). Goal: overlay
under 10 ms a banner.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assetgen.tasks.renditions.overlays import apply_overlays
from assetgen.tasks.renditions.presets import Preset
from assetgen.tasks.renditions.render import prepare, render_one

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "overlays"
sys.path.insert(0, str(EXAMPLE))

from render_local import stand_in  # noqa: E402


def banner_preset() -> Preset:
    spec = yaml.safe_load((EXAMPLE / "banner.yaml").read_text(encoding="utf-8"))
    spec = spec["presets"]["banner-overlay"]
    for layer in spec["overlays"]:
        if layer["type"] == "image":
            layer["uri"] = str(ROOT / layer["uri"])
    return Preset.model_validate(spec)


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--banners", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with open(EXAMPLE / "manifest.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with_overlays = banner_preset()
    plain = with_overlays.model_copy(update={"overlays": []})
    image = prepare(stand_in())
    resized = render_one(image, "b", plain)  # warm: the shape path
    base = image.resize((1200, 628))
    for row in rows:  # warm the caches: fonts, cmaps, logo, templates
        apply_overlays(base, "b", with_overlays.overlays, with_overlays.safe_area, row)
    n = args.banners
    # Every banner's text is new (a number in the headline and the price):
    # only fonts, cmaps and the logo are cached, not shaped words.
    picks = [
        {
            **rows[i % len(rows)],
            "headline": f"{rows[i % len(rows)]['headline']} {i}",
            "price": f"{i},99",
        }
        for i in range(n)
    ]

    def overlay_only() -> None:
        for row in picks:
            apply_overlays(base, "b", with_overlays.overlays, with_overlays.safe_area, row)

    def render(preset: Preset, tag: str) -> None:
        for row in picks:
            render_one(image, "b", preset, {**row, "headline": row["headline"] + tag})

    per_locale = {}
    for k, row in enumerate(rows):
        r = 0

        def ten(row=row, k=k) -> None:
            nonlocal r
            for j in range(10):
                r += 1
                fresh = {**row, "headline": f"{row['headline']} {k}{r}{j}", "price": f"{r},{j}9"}
                apply_overlays(base, "b", with_overlays.overlays, with_overlays.safe_area, fresh)

        per_locale[row["locale"]] = best(ten, args.rounds) / 10 * 1000
    overlay_s = best(overlay_only, 1)  # once: a second round would find the words cached
    plain_s = best(lambda: render(plain, ""), args.rounds)
    tags = iter(range(10**6))
    over_s = best(lambda: render(with_overlays, f"/{next(tags)}"), args.rounds)
    del resized
    print(f"banners: {n} (1200x628, {len(with_overlays.overlays)} layers), one core")
    for locale, ms in per_locale.items():
        print(f"  overlay {locale:8} {ms:6.2f} ms/banner")
    print(f"overlay alone         {overlay_s / n * 1000:6.2f} ms/banner (goal < 10)")
    print(f"render without        {plain_s / n * 1000:6.2f} ms/banner  {n / plain_s:6.1f}/s")
    print(f"render with overlays  {over_s / n * 1000:6.2f} ms/banner  {n / over_s:6.1f}/s")
    print(f"throughput with/without: {plain_s / over_s:.2f}")


if __name__ == "__main__":
    main()
