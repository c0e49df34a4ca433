"""Make the README's screenshots: `make screenshots` (needs Chromium; spends nothing).

Runs examples/manifest.csv with the offline placeholder provider into a
scratch store as `make demo` does, partitioned by campaign, twice and each
time with a budget too small for all of it: the second run finds what the
first one made, makes one more image and runs out of budget for the rest, so
its contact sheet shows every kind of card. That sheet is photographed with
headless Chromium at 1280 CSS pixels wide into docs/img/contact-sheet.png.
Then one image is approved and one rejected (`assetgen review`), and the
review app (`assetgen review serve --state all`) is photographed the same
way into docs/img/review.png.

First, without Chromium or any API call, the overlays example's six
banners (en-US, de-DE, ar, he, ja, zh-Hans; examples/overlays/) are drawn
over a stand-in picture by examples/overlays/render_local.py and put side
by side, two to a row at half size, into docs/img/overlays.png.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: tests/ imports from the repo

from PIL import Image  # noqa: E402

from assetgen.tasks.reporting.contact_sheet import report_folder  # noqa: E402
from tests.browser import Chromium, find_chromium  # noqa: E402

WIDTH = 1280
MAX_HEIGHT = 1600  # the top of a long sheet is what a README needs
# Budgets of the two runs: the first makes the three cheap images (no
# reference photo), the second one of the three edits.
BUDGETS_USD = ("0.05", "0.09")


# The overlays sheet: banners at half size, two to a row, on the README's white.
SHEET_COLUMNS = 2
SHEET_SCALE = 0.5
SHEET_GAP = 12
SHEET_BACKGROUND = (255, 255, 255)


def overlays_sheet(out: Path) -> Path:
    """The six example banners side by side, into `out` (a PNG)."""
    path = REPO / "examples" / "overlays" / "render_local.py"
    spec = importlib.util.spec_from_file_location("render_local", path)
    assert spec is not None and spec.loader is not None
    render_local = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_local)
    banners = [Image.open(io.BytesIO(data)) for _, _, data in render_local.render_banners()]
    if len(banners) != 6:  # a failed overlay was printed above: no sheet with a hole
        sys.exit(f"overlays: {len(banners)} of 6 banners rendered")
    w, h = (round(d * SHEET_SCALE) for d in banners[0].size)
    rows = -(-len(banners) // SHEET_COLUMNS)
    sheet = Image.new(
        "RGB",
        (SHEET_COLUMNS * w + (SHEET_COLUMNS - 1) * SHEET_GAP, rows * h + (rows - 1) * SHEET_GAP),
        SHEET_BACKGROUND,
    )
    for i, banner in enumerate(banners):
        col, row = i % SHEET_COLUMNS, i // SHEET_COLUMNS
        small = banner.convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
        sheet.paste(small, (col * (w + SHEET_GAP), row * (h + SHEET_GAP)))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out


def demo_run(workdir: Path, budget: str) -> dict:
    """`assetgen run examples/manifest.csv` into `workdir/assets`; the run summary."""
    assetgen = Path(sys.executable).parent / "assetgen"
    args = [str(assetgen), "run", "examples/manifest.csv", "-c", "examples/campaign.yaml"]
    args += ["--provider", "placeholder", "--store", "assets", "--ipm", "600"]
    args += ["--budget", budget, "--json"]
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode not in (0, 1):  # 1: some rows were left for the budget, as wanted
        sys.exit(f"assetgen run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout)


def contact_sheet(executable: str, workdir: Path, summary: dict, out: Path) -> Path:
    """The run's contact sheet, photographed into `out`."""
    index = workdir / summary["store"] / report_folder(summary["run_id"])
    with Chromium(executable) as browser, browser.page() as page:
        page.navigate((index / "index.html").as_uri())
        broken = page.evaluate(
            "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length"
        )
        if broken:
            sys.exit(f"{broken} images did not load")
        page.screenshot(out, width=WIDTH, max_height=MAX_HEIGHT)
    return out


def review_app(executable: str, workdir: Path, out: Path) -> Path:
    """Two decisions, then the review app showing every asset, photographed into `out`."""
    from playwright.sync_api import sync_playwright

    assetgen = str(Path(sys.executable).parent / "assetgen")
    listed = subprocess.run(
        [assetgen, "review", "list", "--store", "assets", "--json"],
        cwd=workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    ids = [json.loads(line)["asset_id"] for line in listed.stdout.splitlines()]
    run = functools.partial(subprocess.run, cwd=workdir, check=True, capture_output=True)
    run([assetgen, "review", "approve", ids[0], "--store", "assets", "--reviewer", "ana"])
    note = "the mugs should be blue, not grey"
    run([assetgen, "review", "reject", ids[1], "--store", "assets", "--note", note])
    serve = [assetgen, "review", "serve", "--store", "assets", "--state", "all", "--no-open"]
    server = subprocess.Popen(serve, cwd=workdir, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True)
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto(url, wait_until="load")
            page.evaluate(
                "Promise.all([...document.images].map(i => i.decode().catch(() => null)))"
            )
            page.screenshot(path=str(out), full_page=False)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument(
        "--overlays-only", action="store_true", help="only docs/img/overlays.png (no Chromium)"
    )
    args = parser.parse_args()
    made = [overlays_sheet(args.out / "overlays.png")]
    executable = None if args.overlays_only else find_chromium()
    if executable is None and not args.overlays_only:
        sys.exit("no chromium on PATH (apt-get install chromium, or set CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="assetgen-shots-") as tmp:
        if executable is not None:
            workdir = Path(tmp)
            shutil.copytree(REPO / "examples", workdir / "examples")
            demo_run(workdir, BUDGETS_USD[0])
            summary = demo_run(workdir, BUDGETS_USD[1])  # its run writes the contact sheet
            made += [
                contact_sheet(executable, workdir, summary, args.out / "contact-sheet.png"),
                review_app(executable, workdir, args.out / "review.png"),
            ]
    for out in made:
        shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
        print(f"{shown}: {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
