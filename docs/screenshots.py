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
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run as a script: tests/ imports from the repo

from assetgen.tasks.reporting.contact_sheet import report_folder  # noqa: E402
from tests.browser import Chromium, find_chromium  # noqa: E402

WIDTH = 1280
MAX_HEIGHT = 1600  # the top of a long sheet is what a README needs
# Budgets of the two runs: the first makes the three cheap images (no
# reference photo), the second one of the three edits.
BUDGETS_USD = ("0.05", "0.09")


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
    args = parser.parse_args()
    executable = find_chromium()
    if executable is None:
        sys.exit("no chromium on PATH (apt-get install chromium, or set CHROMIUM)")
    with tempfile.TemporaryDirectory(prefix="assetgen-shots-") as tmp:
        workdir = Path(tmp)
        shutil.copytree(REPO / "examples", workdir / "examples")
        demo_run(workdir, BUDGETS_USD[0])
        summary = demo_run(workdir, BUDGETS_USD[1])  # its run writes the contact sheet
        made = [
            contact_sheet(executable, workdir, summary, args.out / "contact-sheet.png"),
            review_app(executable, workdir, args.out / "review.png"),
        ]
    for out in made:
        shown = out.relative_to(REPO) if out.is_relative_to(REPO) else out
        print(f"{shown}: {out.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
