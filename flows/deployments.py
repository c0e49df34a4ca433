"""`assetgen serve`: the deployments of deployments/prefect.yaml, served in this process."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

# deployments/ sits beside flows/: at the top of the repository, and in the
# installed package as assetgen/deployments.
PREFECT_YAML = Path(__file__).resolve().parents[1] / "deployments" / "prefect.yaml"


def load_flow(entrypoint: str) -> Flow:
    """`assetgen.flows.generate:generate_assets` (a module, not a file) -> the flow object."""
    module, name = entrypoint.split(":")
    return getattr(importlib.import_module(module), name)


def served_deployments(
    prefect_file: Path = PREFECT_YAML, only: list[str] | None = None
) -> list[RunnerDeployment]:
    """The file's deployments with their parameters and schedules, for `prefect.serve`."""
    spec: list[dict[str, Any]] = yaml.safe_load(prefect_file.read_text())["deployments"]
    unknown = set(only or []) - {d["name"] for d in spec}
    if unknown:
        raise ValueError(f"no deployment {', '.join(sorted(unknown))} in {prefect_file}")
    return [
        load_flow(d["entrypoint"]).to_deployment(
            name=d["name"],
            description=d.get("description"),
            parameters=d.get("parameters", {}),
            schedules=[
                Cron(s["cron"], timezone=s.get("timezone"), active=s.get("active", True))
                for s in d.get("schedules", [])
            ],
        )
        for d in spec
        if not only or d["name"] in only
    ]
