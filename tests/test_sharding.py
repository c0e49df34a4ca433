"""Splitting a run into shards: stable, balanced, rate shares that add up to the run's."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from assetgen.flows.cli.app import app
from assetgen.flows.sharded import (
    jobs_path,
    merge_shards,
    shard_of,
    shard_overrides,
    summary_path,
    write_shards,
)
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.plan.jobs import Job, Planner
from assetgen.tasks.store.assets import AssetStore
from tests.helpers import plan_all, write_manifest


@pytest.fixture
def jobs(tmp_path: Path, make_planner: Callable[..., Planner]) -> list[Job]:
    rows = [{"id": f"r{i}", "prompt": f"image {i}", "size": "1024x1024"} for i in range(400)]
    rows[0]["size"] = "1536x1024"
    rows[1]["quality"] = "high"
    planned, _ = plan_all(make_planner(), write_manifest(str(tmp_path / "m.csv"), rows))
    return planned


def test_shards_are_stable_and_balanced(jobs: list[Job]) -> None:
    counts = Counter(shard_of(job.asset_id, 4) for job in jobs)
    assert sorted(counts) == [0, 1, 2, 3]
    assert max(counts.values()) < 1.4 * len(jobs) / 4
    assert [shard_of(j.asset_id, 4) for j in jobs] == [shard_of(j.asset_id, 4) for j in jobs]


def test_shares_of_rate_add_up_to_the_run_and_the_budget_is_not_split(
    jobs: list[Job], tmp_path: Path
) -> None:
    store = AssetStore(str(tmp_path / "store"))
    counts = write_shards.fn(store, "run", jobs, 4)
    assert sum(counts) == len(jobs)
    cfg = load_job_config(None, {"budget.cap_usd": 10, "limits.ipm": 250, "limits.concurrency": 9})
    mine = [shard_overrides(cfg, {"store": "x", "budget.cap_usd": 10}, 4) for _ in counts]
    # One cap for all shards: each claims from it in the ledger (tests/test_ledger.py).
    assert all(m["budget.cap_usd"] == 10 for m in mine)
    assert sum(m["limits.ipm"] for m in mine) == pytest.approx(250)
    assert all(m["limits.concurrency"] == 2 and m["store"] == "x" for m in mine)
    written = [
        Job.model_validate_json(line)
        for i in range(4)
        for line in store.read_bytes(jobs_path("run", i)).splitlines()
    ]
    assert sorted(j.asset_id for j in written) == sorted(j.asset_id for j in jobs)


def test_a_shard_that_left_no_summary_is_reported(tmp_path: Path) -> None:
    store = AssetStore(str(tmp_path / "store"))
    shard = {
        "worker": "w1",
        "generated": 3,
        "failed": 1,
        "budget_exhausted": 0,
        "stopped": 0,
        "skipped_existing": 0,
        "pending_in_batch": 0,
        "requests": 4,
        "catalog_rows": 4,
        "cost_usd": 0.5,
        "uncertain_cost_usd": 0.0,
        "errors": {"400 moderation_blocked": 1},
        "stop_reason": None,
        "interrupted": False,
        "rendition_errors": [],
        "top_failures": [{"reason": "400 moderation_blocked: no", "count": 1}],
        "partitions": [
            {"partition": "c=a", "generated": 2, "failed": 1, "cost_usd": 0.25},
            {"partition": "c=b", "generated": 1, "cost_usd": 0.25},
        ],
        "budget_usd": 1.0,
        "ipm": 10,
        "seconds": 2.0,
    }
    store.write_json(summary_path("run", 0), shard)
    store.write_json(summary_path("run", 2), {**shard, "partitions": shard["partitions"][:1]})
    merged = merge_shards(store, "run", {0: "Completed", 1: "Crashed", 2: "Completed"})
    assert (merged["generated"], merged["failed"], merged["cost_usd"]) == (6, 2, 1.0)
    assert [(p["partition"], p["generated"], p["failed"]) for p in merged["partitions"]] == [
        ("c=a", 4, 2),
        ("c=b", 1, 0),
    ]
    assert merged["shards"][1] == {"shard": 1, "state": "Crashed", "summary": None}
    assert merged["stop_reason"] == "shard 1 ended Crashed"


def test_shards_without_a_prefect_server_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    result = CliRunner().invoke(app, ["run", "m.csv", "--shards", "2", "--json"])
    assert result.exit_code == 2
    assert "set PREFECT_API_URL" in json.loads(result.stdout.splitlines()[0])["error"]
