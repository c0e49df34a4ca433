"""Shared fixtures: configs, planners, scratch folders."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from assetgen.tasks.config.job import JobConfig, load_job_config
from assetgen.tasks.config.models import ModelCaps, load_model_table
from assetgen.tasks.manifest.rows import RowContext
from assetgen.tasks.plan.jobs import Planner
from assetgen.tasks.plan.pricing import PriceTable, load_price_table
from assetgen.tasks.renditions.credentials import SigningMaterial
from assetgen.tasks.renditions.made_up_pki import shared_pki
from tests.fakes.images_api import FakeOpenAI

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


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 for the whole session; s3fs is pointed at it."""
    from tests.fakes.s3_server import start_moto, stop_moto

    fake_env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved_env = {k: os.environ.get(k) for k in fake_env}
    os.environ.update(fake_env)
    server, endpoint = start_moto()
    saved_conf = fsspec.config.conf.get("s3")
    fsspec.config.conf["s3"] = {"endpoint_url": endpoint}
    try:
        yield endpoint
    finally:
        stop_moto(server)
        if saved_conf is None:
            fsspec.config.conf.pop("s3", None)
        else:
            fsspec.config.conf["s3"] = saved_conf
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def s3_bucket(s3_endpoint: str) -> str:
    """A new empty bucket on the moto server: `s3://NAME`."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    fsspec.filesystem("s3").mkdir(name)
    return f"s3://{name}"


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test server for every flow test of the session (it takes ~15 s to start)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


FAKE_KEY = "sk-test-fake-0123456789"


@pytest.fixture(scope="session")
def openai_server() -> Iterator[FakeOpenAI]:
    """The Images API test server, shared by the session."""
    # Its images arrive signed by a made-up "generator" (made_up_pki.py), as OpenAI's do.
    leaf = shared_pki().generator()
    generator = SigningMaterial(cert_chain=leaf.chain, alg=leaf.alg, private_key=leaf.key)
    with FakeOpenAI(api_key=FAKE_KEY, generator=generator) as server:
        yield server


@pytest.fixture
def fake(openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The test server with counters and faults cleared; its settings restored afterwards."""
    settings = ("ipm", "burst", "latency_s", "latency_jitter", "rate_headers", "generator")
    saved = {name: getattr(openai_server, name) for name in settings}
    openai_server.reset()
    openai_server.api_key = FAKE_KEY
    yield openai_server
    for name, value in saved.items():
        setattr(openai_server, name, value)


@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness: None) -> str:
    """The session's Prefect server, for `assetgen` commands run as subprocesses."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url
    return url
