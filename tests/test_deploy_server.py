"""Deployments on a real `prefect server start`: process work pool, workers, sharded runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tasks.catalog import read_catalog
from tasks.store import AssetStore
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import write_manifest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
POOL = "assetgen"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefect(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [str(BIN / "prefect"), "--no-prompt", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real Prefect server with a process work pool and deployments/prefect.yaml deployed."""
    home = tmp_path_factory.mktemp("prefect-home")
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "ASSETGEN_HOME": str(ROOT),
    }
    env.pop("PREFECT_PROFILES_PATH", None)
    log = (home / "server.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{env['PREFECT_API_URL']}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        _prefect(env, "work-pool", "create", POOL, "--type", "process")
        _prefect(env, "deploy", "--all", "--prefect-file", "deployments/prefect.yaml")
        yield env
    finally:
        server.terminate()
        server.wait(30)
        log.close()


def _flow_runs(env: dict[str, str]) -> list[dict]:
    response = httpx.post(f"{env['PREFECT_API_URL']}/flow_runs/filter", json={}, timeout=10)
    response.raise_for_status()
    return response.json()


def test_deployment_run_is_picked_up_by_a_worker(
    prefect_server: dict[str, str], tmp_path: Path
) -> None:
    env = prefect_server
    store = tmp_path / "store"
    params = {
        "manifest": str(ROOT / "examples" / "manifest.csv"),
        "overrides": {"provider": "placeholder", "store": str(store), "limits.ipm": 6000},
    }
    out = _prefect(
        env, "deployment", "run", "generate_assets/nightly-bulk", "--params", json.dumps(params)
    )
    assert "Created flow run" in out
    # One polling round: the worker takes the run and waits until it ends.
    _prefect(env, "worker", "start", "--pool", POOL, "--run-once", timeout=300)
    runs = [r for r in _flow_runs(env) if r["flow_id"] and r["parameters"] == params]
    assert [r["state_type"] for r in runs] == ["COMPLETED"]
    summary = AssetStore(str(store)).read_json(f"_runs/{_only_run(store)}/summary.json")
    assert summary["generated"] == 6 and summary["failed"] == 0
    catalog = read_catalog(AssetStore(str(store)))
    assert catalog.num_rows == 6 and set(catalog.column("status").to_pylist()) == {"generated"}


def _only_run(store: Path) -> str:
    (run,) = [p.name for p in (store / "_runs").iterdir()]
    return run


def test_sharded_run_spreads_over_two_workers_within_rate_and_budget(
    prefect_server: dict[str, str],
    fake: FakeOpenAI,
    s3_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    ipm, budget, rows = 1200, 3.0, 40
    fake.ipm = ipm  # the server's real limit: any excess shows as a 429
    config = tmp_path / "job.yaml"
    config.write_text(
        f"store: {s3_bucket}/assets\n"
        f"store_options: {{endpoint_url: '{s3_endpoint}', key: testing, secret: testing}}\n"
        "provider: openai\n"
        "renditions: [thumb]\n"
    )
    manifest = write_manifest(
        str(tmp_path / "m.csv"), [{"id": f"r{i}", "prompt": f"image {i}"} for i in range(rows)]
    )
    env = {
        **prefect_server,
        "OPENAI_API_KEY": FAKE_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    workers = [
        subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--limit", "2"],
            env={**env, "ASSETGEN_WORKER": name},
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name in ("w1", "w2")
    ]
    try:
        cmd = [str(BIN / "assetgen"), "run", manifest, "-c", str(config), "--shards", "4"]
        cmd += ["--ipm", str(ipm), "--budget", str(budget), "--json"]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    shards = summary["shards"]
    assert [s["state"] for s in shards] == ["Completed"] * 4
    assert {s["worker"] for s in shards} == {"w1", "w2"}
    # Every row done once.
    store = AssetStore(f"{s3_bucket}/assets", {"endpoint_url": s3_endpoint})
    assert len(store.existing()) == rows == fake.images_billed == summary["generated"]
    assert read_catalog(store).num_rows == rows
    # Shares of rate and budget add up to the run's, and were kept.
    assert sum(s["ipm"] for s in shards) == pytest.approx(ipm)
    assert sum(s["budget_usd"] for s in shards) == pytest.approx(budget)
    assert summary["cost_usd"] == pytest.approx(fake.billed_usd, abs=1e-6)
    assert fake.billed_usd <= budget
    assert fake.count(429) == 0  # the combined rate never went past the server's limit
    assert summary["warnings"] == []  # a shared store
