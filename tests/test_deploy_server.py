"""Deployments on a real `prefect server start`: process work pool, workers, sharded runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from assetgen.tasks.budget.report import budget_report
from assetgen.tasks.catalog.table import read_catalog
from assetgen.tasks.store.assets import AssetStore
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import write_manifest

# A real Prefect server and process workers: a minute or two in all.
pytestmark = pytest.mark.slow

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
    config = _s3_config(tmp_path, s3_bucket, s3_endpoint, "renditions: [thumb]\n")
    manifest = write_manifest(
        str(tmp_path / "m.csv"), [{"id": f"r{i}", "prompt": f"image {i}"} for i in range(rows)]
    )
    env = _env(prefect_server, fake)
    cmd = [str(BIN / "assetgen"), "run", manifest, "-c", str(config), "--shards", "4"]
    cmd += ["--ipm", str(ipm), "--budget", str(budget), "--json"]
    done = _run_on_two_workers(env, cmd)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    shards = summary["shards"]
    assert [s["state"] for s in shards] == ["Completed"] * 4
    assert {s["worker"] for s in shards} == {"w1", "w2"}
    # Every row done once.
    store = AssetStore(f"{s3_bucket}/assets", {"endpoint_url": s3_endpoint})
    assert len(store.existing()) == rows == fake.images_billed == summary["generated"]
    assert read_catalog(store).num_rows == rows
    # Shares of the rate add up to the run's; the budget is one cap for all shards.
    assert sum(s["ipm"] for s in shards) == pytest.approx(ipm)
    assert all(s["budget_usd"] == budget for s in shards)
    assert summary["cost_usd"] == pytest.approx(fake.billed_usd, abs=1e-6)
    assert fake.billed_usd <= budget
    assert fake.count(429) == 0  # the combined rate never went past the server's limit
    assert summary["warnings"] == []  # a shared store


def test_a_period_cap_over_shards_holds_as_one_cap(
    prefect_server: dict[str, str],
    fake: FakeOpenAI,
    s3_endpoint: str,
    s3_bucket: str,
    tmp_path: Path,
) -> None:
    cap, rows = 0.30, 16  # a medium image is ~$0.053: five fit the cap, whichever shard
    fake.latency_s = 0.5
    config = _s3_config(
        tmp_path,
        s3_bucket,
        s3_endpoint,
        f"budget: {{cap_usd: null, period: day, period_cap_usd: {cap}}}\n",
    )
    manifest = write_manifest(
        str(tmp_path / "m.csv"), [{"id": f"p{i}", "prompt": f"poster {i}"} for i in range(rows)]
    )
    cmd = [str(BIN / "assetgen"), "run", manifest, "-c", str(config), "--shards", "4"]
    done = _run_on_two_workers(_env(prefect_server, fake), [*cmd, "--ipm", "240", "--json"])
    assert done.returncode == 1, done.stderr[-3000:]  # some rows were left for budget
    summary = json.loads(done.stdout)
    assert fake.billed_usd <= cap + 1e-9
    assert summary["cost_usd"] == pytest.approx(fake.billed_usd, abs=1e-6)
    assert summary["generated"] == fake.images_billed >= 5 - 3  # at most one stranded a shard
    assert summary["generated"] + summary["budget_exhausted"] == rows
    assert summary["period"]["left_after_usd"] == pytest.approx(cap - fake.billed_usd, abs=1e-6)
    store = AssetStore(f"{s3_bucket}/assets", {"endpoint_url": s3_endpoint})
    day = date.fromisoformat(summary["period"]["key"])
    period = budget_report(store, "day", cap, since=day)[0]
    shards = [a for a in period.accounts if a.kind == "shard"]
    assert {a.group for a in shards} == {summary["run_id"]} and len(shards) >= 1
    assert period.spent_usd == pytest.approx(fake.billed_usd, abs=1e-6)


def _s3_config(tmp_path: Path, bucket: str, endpoint: str, extra: str) -> Path:
    config = tmp_path / "job.yaml"
    config.write_text(
        f"store: {bucket}/assets\n"
        f"store_options: {{endpoint_url: '{endpoint}', key: testing, secret: testing}}\n"
        "provider: openai\n" + extra
    )
    return config


def _env(prefect_server: dict[str, str], fake: FakeOpenAI) -> dict[str, str]:
    return {
        **prefect_server,
        "OPENAI_API_KEY": FAKE_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }


def _run_on_two_workers(env: dict[str, str], cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """`cmd` (a sharded run) while two process workers, w1 and w2, serve the pool."""
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
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(30)
