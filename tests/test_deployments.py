"""deployments/prefect.yaml: schedules parse, entrypoints import, parameters fit the flows."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule

from tasks.config import load_job_config

PREFECT_YAML = Path(__file__).resolve().parent.parent / "deployments" / "prefect.yaml"
DEPLOYMENTS: list[dict[str, Any]] = yaml.safe_load(PREFECT_YAML.read_text())["deployments"]


def _flow(entrypoint: str) -> Flow:
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=[d["name"] for d in DEPLOYMENTS])
def test_deployment_is_valid(deployment: dict[str, Any]) -> None:
    flow = _flow(deployment["entrypoint"])
    assert isinstance(flow, Flow)
    params = deployment.get("parameters", {})
    inspect.signature(flow.fn).bind(**params)  # raises on unknown or missing parameters
    load_job_config(params.get("config"), params.get("overrides"))  # the config it would run
    for schedule in deployment.get("schedules", []):
        CronSchedule(cron=schedule["cron"], timezone=schedule.get("timezone"))


def test_batch_mode_has_a_submit_and_a_collect_schedule() -> None:
    by_flow = {_flow(d["entrypoint"]).name: d for d in DEPLOYMENTS}
    submit = by_flow["generate_assets"]
    assert submit["parameters"]["overrides"]["mode"] == "batch"
    assert by_flow["collect_batches"]["schedules"][0]["cron"] == "*/15 * * * *"
