"""Live progress: counts and rates, the terminal display, log lines, the Prefect artifacts."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from assetgen.flows.cli.run_display import render
from assetgen.tasks.generation.dispatch import JobOutcome
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.reporting.progress import Progress, Snapshot, Watch, format_duration, watched
from tests.test_run import MANIFEST, _artifact

CLI = str(Path(sys.executable).parent / "assetgen")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def outcome(status: str = "generated", cost: float = 0.04) -> JobOutcome:
    job = Job.model_construct(partition={})
    return JobOutcome(job=job, status=status, cost_usd=cost if status == "generated" else 0.0)  # type: ignore[arg-type]


def test_snapshot_counts_rate_over_the_last_minute_spend_and_eta() -> None:
    clock = Clock()
    progress = Progress(total=100, limit_ipm=60, budget_usd=10.0, clock=clock)
    for _ in range(30):  # one image a second for 30 s
        clock.now += 1
        progress.record(outcome())
    progress.record(outcome("failed"))
    progress.record(outcome("budget_exhausted"))
    s = progress.snapshot()
    assert (s.generated, s.failed, s.budget_exhausted, s.done, s.left) == (30, 1, 1, 32, 68)
    assert s.spent_usd == pytest.approx(1.2)
    assert s.images_per_min == pytest.approx(60)
    assert s.eta_s == pytest.approx(68)
    assert s.fraction == pytest.approx(0.32)

    clock.now += 45.5  # a minute back is t=15.5 s: the images of t=16..30 s are within it
    s = progress.snapshot()
    assert s.images_per_min == pytest.approx(15)
    clock.now += 60  # nothing for a minute: rate 0, ETA unknown
    s = progress.snapshot()
    assert s.images_per_min == 0 and s.eta_s is None
    assert "ETA ?" in s.line()


def test_snapshot_line_says_done_failed_left_rate_spend_eta() -> None:
    s = Snapshot(100, 40, 3, 2, 0, 1.5, 20.0, 600, 598.4, 30.0)
    assert s.line() == (
        "45/100 jobs done (40 generated, 3 failed, 2 left for budget), 55 left; "
        "598 img/min of 600; $1.50 of $20.00; ETA 6s"
    )
    assert "of no cap" in Snapshot(1, 0, 0, 0, 0, 0.0, None, 5, 0.0, 1.0).line()
    assert [format_duration(x) for x in (None, 0.4, 59, 61, 3599, 3725)] == [
        "?",
        "0s",
        "59s",
        "1m01s",
        "59m59s",
        "1h02m",
    ]


def test_watched_feeds_each_watcher_while_running_then_a_last_snapshot_then_close() -> None:
    progress = Progress(total=3, limit_ipm=60, budget_usd=None)
    seen: list[Snapshot] = []
    events: list[str] = []
    first = threading.Event()

    def watcher(s: Snapshot) -> None:
        seen.append(s)
        first.set()

    with watched(progress, [Watch(watcher, 0.01, lambda: events.append("closed"))]):
        progress.record(outcome())
        assert first.wait(10), "no snapshot while the block ran"
        progress.record(outcome())
        progress.record(outcome("failed"))
        events.append("block done")
    assert seen[-1].done == 3 and seen[-1].failed == 1
    assert events == ["block done", "closed"]


def test_terminal_frame_shows_jobs_rate_spend_and_eta() -> None:
    console = Console(record=True, width=120, color_system=None)
    console.print(render(Snapshot(1000, 600, 12, 3, 0, 24.75, 50.0, 600, 597.0, 61.0)))
    text = console.export_text()
    for part in (
        "62%",
        "615/1,000 jobs",
        "generated 600",
        "failed 12",
        "left for budget 3",
        "left 385",
        "597 img/min of 600 limit",
        "spent $24.75 of $50.00",
        "ETA 39s",
    ):
        assert part in text, (part, text)


# --- the command, on a terminal and off it ----------------------------------


@pytest.fixture
def cli_env(prefect_harness: None, tmp_path: Path) -> dict[str, str]:
    """The environment of an `assetgen` subprocess using the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value()), "COLUMNS": "120"}


def _run_in_terminal(cmd: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with stdout on a pseudo-terminal; returns exit code, terminal output, stderr."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, env=env, stdout=slave, stderr=subprocess.PIPE, text=True)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    _, err = proc.communicate(timeout=120)
    return proc.wait(), b"".join(chunks).decode(), err


def test_run_on_a_terminal_shows_a_live_display(cli_env: dict[str, str], tmp_path: Path) -> None:
    cmd = [CLI, "run", str(MANIFEST), "--store", str(tmp_path / "s"), "--ipm", "600"]
    code, out, err = _run_in_terminal(cmd, cli_env)
    assert code == 0, out + err
    assert "\x1b[" in out  # drawn with terminal control codes
    for part in ("6/6 jobs", "img/min of 600 limit", "of $5.00", "ETA", "generated 6"):
        assert part in out, (part, out)
    assert "progress:" not in err  # no log lines under the display


def test_json_on_a_terminal_prints_only_the_summary(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    cmd = [CLI, "run", str(MANIFEST), "--store", str(tmp_path / "s"), "--ipm", "6000", "--json"]
    code, out, err = _run_in_terminal(cmd, cli_env)
    assert code == 0, out + err
    summary = json.loads(out.strip())  # nothing but the JSON object
    assert summary["generated"] == 6


def test_off_a_terminal_progress_goes_to_plain_log_lines(
    cli_env: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "job.yaml"
    config.write_text("progress_log_s: 0.3\n")
    cmd = [CLI, "run", str(MANIFEST), "--store", str(tmp_path / "s"), "--ipm", "120"]
    done = subprocess.run(
        [*cmd, "--config", str(config)], env=cli_env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "progress: " in line]
    # 6 images at 2 a second take ~2.5 s: several lines on the way, the last says done.
    assert len(lines) >= 3, done.stderr
    assert "6/6 jobs done (6 generated, 0 failed, 0 left for budget), 0 left" in lines[-1]
    assert "img/min of 120" in lines[-1]
    assert "\x1b[" not in done.stdout and "img/min" not in done.stdout


# --- Prefect artifacts ------------------------------------------------------


def test_a_run_publishes_progress_outcome_partition_and_summary_artifacts(
    prefect_harness: None, tmp_path: Path
) -> None:
    from assetgen.flows.generate import generate_assets

    manifest = tmp_path / "m.csv"
    rows = [f"r{i},{'chairs' if i < 3 else 'lamps'},a photo of item {i}" for i in range(5)]
    manifest.write_text("id,category,prompt\n" + "\n".join(rows) + "\n")
    overrides: dict[str, Any] = {
        "store": str(tmp_path / "s"),
        "provider": "placeholder",
        "limits.ipm": 6000,
        "partition_by": ["category"],
    }
    s = generate_assets(str(manifest), None, overrides)
    assert s["generated"] == 5

    progress = _artifact("run-progress")
    assert progress.type == "progress" and progress.data == 100.0
    assert s["run_id"] in progress.description and "5/5 jobs done" in progress.description

    partitions = {r["partition"]: r for r in json.loads(_artifact("run-partitions").data)}
    assert set(partitions) == {"category=chairs", "category=lamps"}
    assert partitions["category=chairs"]["generated"] == 3
    assert partitions["category=lamps"]["generated"] == 2
    assert sum(r["cost_usd"] for r in partitions.values()) == pytest.approx(s["cost_usd"])
    assert s["partitions"] == list(partitions.values())
    assert "of $5.0000" in _artifact("run-summary").data


def test_partition_table_keeps_the_biggest_and_sums_the_rest() -> None:
    from assetgen.tasks.reporting.summary import MAX_PARTITIONS, merge_partitions

    counts = [{"partition": f"sku={i:03d}", "generated": 1, "cost_usd": 0.5} for i in range(120)]
    counts += [{"partition": "sku=big", "generated": 5, "failed": 2, "cost_usd": 2.5}]
    rows = merge_partitions(counts)
    assert len(rows) == MAX_PARTITIONS
    assert rows[0] == {
        "partition": "sku=big",
        "generated": 5,
        "failed": 2,
        "budget_exhausted": 0,
        "stopped": 0,
        "cost_usd": 2.5,
    }
    other = rows[-1]
    assert other["partition"] == f"({120 - MAX_PARTITIONS + 2} other partitions)"
    assert sum(r["generated"] for r in rows) == 125
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(62.5)


def test_artifacts_link_the_contact_sheet_and_a_sample_of_local_images(
    prefect_harness: None, tmp_path: Path
) -> None:
    from assetgen.flows.generate import generate_assets

    s = generate_assets(str(MANIFEST), None, {"store": str(tmp_path / "s"), "limits.ipm": 6000})
    assert s["report"].endswith(f"_reports/{s['run_id']}/index.html")
    link = _artifact("run-contact-sheet")
    assert link.type == "markdown" and s["run_id"] in link.data
    sheet = tmp_path / "s" / "_reports" / s["run_id"] / "index.html"
    assert sheet.as_uri() in link.data and sheet.is_file()
    sample = _artifact("run-sample").data
    files = re.findall(r"\((file://[^)]+)\)", sample)
    assert len(files) == 6  # the example manifest makes 6 images
    assert all(Path(url.removeprefix("file://")).is_file() for url in files)


def test_an_s3_run_publishes_presigned_image_artifacts_a_browser_can_load(
    prefect_harness: None, s3_bucket: str, tmp_path: Path
) -> None:
    import fsspec
    import httpx

    from assetgen.flows.generate import generate_assets
    from assetgen.tasks.reporting.artifacts import SAMPLE_IMAGES

    manifest = tmp_path / "m.csv"
    manifest.write_text("id,prompt\n" + "".join(f"r{i},picture {i}\n" for i in range(8)))
    s = generate_assets(str(manifest), None, {"store": s3_bucket, "limits.ipm": 6000})
    assert s["generated"] == 8
    fs = fsspec.filesystem("s3")
    thumbs = {}
    for i in range(1, SAMPLE_IMAGES + 1):
        image = _artifact(f"run-sample-{i}")
        assert image.type == "image" and image.data.startswith("http://127.0.0.1:")
        assert "Signature=" in image.data or "X-Amz-Signature=" in image.data
        answer = httpx.get(image.data)  # no credentials: the link carries them
        assert answer.status_code == 200
        key = image.data.split("?", 1)[0].split(f"/{s3_bucket.removeprefix('s3://')}/", 1)[1]
        assert answer.content == fs.cat(f"{s3_bucket}/{key}")
        thumbs[key] = answer.content
    assert len(thumbs) == SAMPLE_IMAGES  # six different images
