"""Shared fixtures: configs, planners, scratch folders."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from tasks.capabilities import ModelCaps, load_model_table
from tasks.config import JobConfig, load_job_config
from tasks.plan import Planner
from tasks.pricing import PriceTable, load_price_table
from tasks.rows import RowContext

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="session")
def models() -> dict[str, ModelCaps]:
    return load_model_table()


@pytest.fixture(scope="session")
def prices() -> PriceTable:
    return load_price_table()


@pytest.fixture
def make_planner(models: dict[str, ModelCaps], prices: PriceTable) -> Callable[..., Planner]:
    """A Planner for the default config with `overrides` (dotted keys) applied."""

    def make(config: JobConfig | None = None, **overrides: Any) -> Planner:
        cfg = config or load_job_config(
            None, {k.replace("__", "."): v for k, v in overrides.items()}
        )
        return Planner(RowContext.build(cfg, models), prices)

    return make


@pytest.fixture
def memory_dir() -> Iterator[str]:
    """A fresh folder on fsspec's in-memory filesystem, removed afterwards."""
    root = f"memory://t-{uuid.uuid4().hex}"
    yield root
    fs = fsspec.filesystem("memory")
    if fs.exists(root):
        fs.rm(root, recursive=True)
