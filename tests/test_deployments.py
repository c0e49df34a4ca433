"""deployments/prefect.yaml: schedules parse, entrypoints import, parameters fit the flows."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule

from assetgen.flows.deployments import load_flow, served_deployments
from assetgen.tasks.config.job import load_job_config

ROOT = Path(__file__).resolve().parent.parent
PREFECT_YAML = ROOT / "deployments" / "prefect.yaml"
DEPLOYMENTS: list[dict[str, Any]] = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_deployment_is_valid(deployment: dict[str, Any]) -> None:
    flow = load_flow(deployment["entrypoint"])
    assert isinstance(flow, Flow)
    params = deployment.get("parameters", {})
    signature = inspect.signature(flow.fn)
    schedules = deployment.get("schedules", [])
    # A scheduled run has nothing but these parameters: they must be complete.
    (signature.bind if schedules else signature.bind_partial)(**params)
    if "config" in params or "overrides" in params:
        config = params.get("config")
        load_job_config(ROOT / config if config else None, params.get("overrides"))
    for schedule in schedules:
        CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))
        assert schedule["active"] is False  # nothing runs until the user sets the URLs
    assert deployment["work_pool"]["name"] == "assetgen"


def test_the_three_uses_and_batch_and_shards_are_deployed() -> None:
    names = {d["name"]: d for d in DEPLOYMENTS}
    assert {"nightly-bulk", "ecommerce-sync", "marketing-refresh"} <= names.keys()
    ecommerce = load_job_config(ROOT / names["ecommerce-sync"]["parameters"]["config"])
    assert ecommerce.partition_by == ["category", "sku"] and "pdp-zoom" in ecommerce.renditions
    assert names["batch-submit-nightly"]["parameters"]["overrides"]["mode"] == "batch"
    assert names["batch-collect"]["schedules"][0]["cron"] == "*/15 * * * *"
    shard = names["generate-shard"]
    assert (
        f"{load_flow(shard['entrypoint']).name}/{shard['name']}" == "generate_shard/generate-shard"
    )


def test_serve_builds_every_deployment_with_its_schedules() -> None:
    served = {d.name: d for d in served_deployments()}
    assert served.keys() == {d["name"] for d in DEPLOYMENTS}
    collect = served["batch-collect"]
    assert [s.schedule.cron for s in collect.schedules] == ["*/15 * * * *"]
    assert collect.schedules[0].active is False  # as prefect.yaml says
    assert served["nightly-bulk"].parameters["manifest"].startswith("s3://")
    with pytest.raises(ValueError, match="no deployment nope"):
        served_deployments(only=["nope"])
