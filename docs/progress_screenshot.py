"""Record the live progress display of a real run as docs/img/progress.svg (for the README).

    python docs/progress_screenshot.py

Runs a 60-SKU catalog manifest (placeholder provider, 600 images/min) into a
temporary store and keeps the frame the terminal showed half-way, then the
summary `assetgen run` prints at the end.
"""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assetgen.flows.cli.run import _print_run  # noqa: E402
from assetgen.flows.cli.run_display import render  # noqa: E402
from assetgen.flows.generate import generate_assets  # noqa: E402
from assetgen.tasks.reporting.progress import Snapshot, Watch, displaying  # noqa: E402

OUT = ROOT / "docs" / "img" / "progress.svg"
JOBS = 60
IPM = 600


def manifest(folder: Path) -> None:
    """A product catalog: one row per SKU, JOBS rows."""
    items = ["mug", "lamp", "chair", "vase", "rug", "shelf"]
    colors = ["blue", "red", "oak", "white", "black", "green", "grey", "sand", "teal", "rust"]
    with (folder / "catalog.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "category", "prompt", "quality"])
        for i in range(JOBS):
            item, color = items[i % len(items)], colors[i // len(items) % len(colors)]
            prompt = f"Studio photo of a {color} {item} on a plain white background, soft light"
            writer.writerow([f"SKU-{1000 + i}", item, prompt, "low"])


def main() -> None:
    frames: list[Snapshot] = []

    def keep(s: Snapshot) -> None:
        if not frames or (frames[-1].fraction < 0.5 <= s.fraction):
            frames.append(s)

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # the paths shown are the ones a user would type
        manifest(Path(tmp))
        overrides: dict[str, Any] = {
            "store": "assets",
            "provider": "placeholder",
            "limits.ipm": IPM,
            "budget.cap_usd": 10.0,
            "partition_by": ["category"],
        }
        with displaying(Watch(keep, 0.5)):
            summary = generate_assets("catalog.csv", None, overrides)
    half = next(s for s in frames if s.fraction >= 0.5)
    console = Console(
        record=True, width=104, force_terminal=True, color_system="truecolor", highlight=False
    )
    console.print(
        f"[green]$[/] assetgen run catalog.csv --store assets --budget 10 --ipm {IPM}",
    )
    console.print(render(half))
    console.print("[dim]... at the end:[/]")
    _print_run(summary, console)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(console.export_svg(title="assetgen run"))
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
