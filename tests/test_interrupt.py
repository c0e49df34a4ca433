"""SIGTERM mid-run: nothing new is sent, in-flight images are stored, a re-run finishes the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assetgen.tasks.store.assets import AssetStore
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.processes import descendants, still_running

# Each runs `assetgen` in subprocesses with their own Prefect server.
pytestmark = pytest.mark.slow


def _wait_for(condition, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"condition not met; exit code {proc.poll()}")
        time.sleep(0.05)


def _twelve_row_run(
    fake: FakeOpenAI, tmp_path: Path, ipm: int
) -> tuple[list[str], dict[str, str], Path]:
    """The `assetgen run` command, its environment and store for a 12-row manifest."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,prompt\n" + "".join(f"r{i},image number {i}\n" for i in range(12)))
    store = tmp_path / "store"
    env = {
        **os.environ,
        "OPENAI_API_KEY": FAKE_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "PREFECT_HOME": str(tmp_path / "prefect"),
    }
    env.pop("PREFECT_API_URL", None)
    cli = str(Path(sys.executable).parent / "assetgen")
    cmd = [
        cli,
        "run",
        str(manifest),
        "--store",
        str(store),
        "--provider",
        "openai",
        "--ipm",
        str(ipm),
        "--json",
    ]
    return cmd, env, store


def test_sigterm_stops_gracefully_then_rerun_completes(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.latency_s = 1.5
    cmd, env, store = _twelve_row_run(fake, tmp_path, ipm=120)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: len(fake.requests) >= 3, 120, proc)
    proc.send_signal(signal.SIGTERM)
    sent_at_signal = len(fake.requests)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    summary = json.loads(out)
    assert summary["interrupted"] and "SIGTERM" in summary["stop_reason"]
    # At most the one request whose turn was already due went out after the signal.
    assert len(fake.requests) <= sent_at_signal + 1
    # Every request that was answered is in the store: nothing paid was lost.
    assert len(AssetStore(str(store)).existing()) == fake.images_billed == summary["generated"]
    assert summary["stopped"] == 12 - summary["generated"] > 0

    billed_first = fake.images_billed
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    second = json.loads(rerun.stdout)
    assert second["skipped_existing"] == billed_first
    assert second["generated"] == 12 - billed_first
    assert fake.images_billed == 12  # each image paid for once across both runs
    assert len(AssetStore(str(store)).existing()) == 12


def test_sigkill_mid_run_then_rerun_pays_each_image_once(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.latency_s = 1.0
    cmd, env, store = _twelve_row_run(fake, tmp_path, ipm=240)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: fake.images_billed >= 3, 120, proc)
    started = descendants(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    _assert_none_outlives(started)
    sent_by_first = len(fake.requests)
    _wait_for_server_idle(fake)
    stored_by_first = len(AssetStore(str(store)).existing())
    # Billed but never stored: answered (or still running) when the process died.
    lost = fake.images_billed - stored_by_first
    assert lost <= sent_by_first - stored_by_first

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["generated"] + summary["skipped_existing"] == 12

    assets = AssetStore(str(store))
    folders = assets.existing()
    assert len(folders) == 12
    for folder in folders.values():
        names = [p.name for p in (store / folder).iterdir()]
        assert len([n for n in names if n.startswith("original.")]) == 1
        assert {"thumb.webp", "listing.webp"} <= set(names)  # renditions finished by the rerun
    listed = subprocess.run(
        [cmd[0], "catalog", "list", "--store", str(store), "--format", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert sorted(r["row_id"] for r in rows) == sorted(f"r{i}" for i in range(12))
    assert all(len(r["renditions"]) == 2 for r in rows)
    # Paid twice only for what was in flight when the process died.
    assert fake.images_billed == 12 + lost


def _assert_none_outlives(started: set[int]) -> None:
    """The processes a killed run started (its Prefect server, rendition workers) end with it."""
    assert started
    left = still_running(started, within_s=10)
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes() for p in left]


def _wait_for_server_idle(fake: FakeOpenAI) -> None:
    # Requests the killed client left open still finish (and bill) server-side.
    deadline = time.monotonic() + 30
    while any(r.status == 0 for r in fake.requests):
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_sigkill_during_renditions_then_rerun_finishes_them_without_regenerating(
    tmp_path: Path,
) -> None:
    manifest = tmp_path / "m.csv"
    manifest.write_text("id,prompt\n" + "".join(f"r{i},poster {i}\n" for i in range(24)))
    config = tmp_path / "job.yaml"
    config.write_text("renditions: [pdp-zoom, og, listing, thumb]\nrender_workers: 1\n")
    store = tmp_path / "store"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    cmd = [
        str(Path(sys.executable).parent / "assetgen"),
        "run",
        str(manifest),
        "-c",
        str(config),
        "--store",
        str(store),
        "--provider",
        "placeholder",
        "--ipm",
        "60000",
        "--json",
    ]

    def original_without_renditions() -> bool:
        return any(
            (sidecar.parent / "asset.json").exists()
            and not (sidecar.parent / "thumb.webp").exists()
            for sidecar in store.glob("*/original.png")
        )

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(original_without_renditions, 120, proc)
    started = descendants(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    _assert_none_outlives(started)
    first_run = {
        p.parent.name: json.loads(p.read_text())["run_id"] for p in store.glob("*/asset.json")
    }

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = json.loads(rerun.stdout)
    assert summary["skipped_existing"] == len(first_run)
    assert summary["completed_existing"] > 0
    for folder in store.glob("*/asset.json"):
        sidecar = json.loads(folder.read_text())
        assert {r["name"] for r in sidecar["renditions"]} == {"pdp-zoom", "og", "listing", "thumb"}
        if folder.parent.name in first_run:  # not generated again
            assert sidecar["run_id"] == first_run[folder.parent.name]
    assert len(list(store.glob("*/asset.json"))) == 24
