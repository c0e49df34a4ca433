"""What OpenAI's API description (openapi.json, 2026-08-21) adds: moderation, its models,
edits the Batch API's JSON body takes, and output usage split into image and text tokens."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from assetgen.flows.cli.app import app
from assetgen.tasks.catalog.table import read_catalog
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.generation.run import generate
from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.plan.jobs import Job, Planner, PlanSummary, asset_id
from assetgen.tasks.plan.pricing import PriceTable, Usage, usage_cost
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar, now_utc
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import plan_all, write_manifest
from tests.test_openai_run import provider

ID_INPUTS: dict[str, Any] = {
    "model": "gpt-image-2",
    "prompt": "A swimsuit on a beach",
    "size": "1024x1024",
    "quality": "medium",
    "output_format": "png",
    "output_compression": None,
    "background": "auto",
    "reference_sha256": [],
    "mask_sha256": None,
    "variant": 0,
}


@pytest.fixture
def photo(tmp_path: Path) -> str:
    Image.new("RGB", (1024, 1024), "navy").save(tmp_path / "photo.png")
    return "photo.png"


def plan(
    make_planner: Callable[..., Planner], tmp_path: Path, rows: list[dict[str, Any]], **cfg: Any
) -> tuple[list[Job], list[Reject]]:
    return plan_all(make_planner(**cfg), write_manifest(str(tmp_path / "m.jsonl"), rows))


# --- moderation: validated, in the asset_id only when low -----------------------------------


def test_moderation_low_makes_another_image_and_auto_is_the_default() -> None:
    plain = asset_id(**ID_INPUTS)
    assert (
        asset_id(**ID_INPUTS, moderation=None) == plain == asset_id(**ID_INPUTS, moderation="auto")
    )
    assert asset_id(**ID_INPUTS, moderation="low") != plain


def test_moderation_comes_from_the_column_or_the_defaults_and_is_checked(
    make_planner: Callable[..., Planner], tmp_path: Path, photo: str
) -> None:
    rows = [
        {"id": "a", "prompt": "a knife on a board", "moderation": "LOW"},
        {"id": "b", "prompt": "a knife on a board"},
        {"id": "c", "prompt": "a knife", "moderation": "off"},
        {"id": "d", "prompt": "the photo", "reference_images": photo, "moderation": "low"},
        {
            "id": "e",
            "prompt": "the photo, wide",
            "reference_images": photo,
            "size": "1536x864",
            "moderation": "low",
        },
    ]
    jobs, rejects = plan(make_planner, tmp_path, rows, defaults__moderation="auto")
    by_id = {j.row_id: j for j in jobs}
    assert by_id["a"].moderation == "low" and by_id["a"].params["moderation"] == "low"
    assert by_id["b"].moderation == "auto" and by_id["d"].moderation == "low"
    assert by_id["a"].asset_id != asset_id(**{**ID_INPUTS, "prompt": "a knife on a board"})
    assert [(r.id, r.column, r.code) for r in rejects] == [
        ("c", "moderation", "not_allowed"),
        ("e", "moderation", "needs_json_edit_size"),
    ]
    assert "1536x864" in rejects[1].reason and "1024x1024" in rejects[1].reason


def test_the_description_s_models_are_known_and_none_is_ever_free(
    make_planner: Callable[..., Planner], tmp_path: Path, photo: str
) -> None:
    rows = [
        {"id": "old", "prompt": "a chair", "model": "gpt-image-1"},
        {"id": "t2i", "prompt": "a chair", "model": "chatgpt-image-latest"},
        {"id": "edit", "prompt": "the chair", "model": "chatgpt-image-latest"}
        | {"reference_images": photo},
    ]
    jobs, rejects = plan(make_planner, tmp_path, rows)
    assert jobs == []
    assert [(r.id, r.column, r.code) for r in rejects] == [
        ("old", "model", "shut_down"),
        ("t2i", "reference_images", "edits_only"),
        ("edit", "model", "no_price"),
    ]
    assert "2026-10-23" in rejects[0].reason


# --- batch mode: edits in sizes the JSON edit body does not take go online -------------------


def test_custom_size_edits_are_not_batchable_and_the_plan_prices_them_online(
    make_planner: Callable[..., Planner], tmp_path: Path, photo: str, prices: PriceTable
) -> None:
    rows = [
        {"id": "t2i", "prompt": "a chair", "size": "1536x864"},
        {"id": "std", "prompt": "the photo", "reference_images": photo},
        {"id": "wide", "prompt": "the photo, wide", "reference_images": photo, "size": "1536x864"},
    ]
    jobs, _ = plan(make_planner, tmp_path, rows)
    assert {j.row_id: j.batchable for j in jobs} == {"t2i": True, "std": True, "wide": False}
    summary = PlanSummary()
    for job in jobs:
        summary.add(job)
    discount = prices.pricing("gpt-image-2").batch_discount
    wide = next(j for j in jobs if j.row_id == "wide")
    assert summary.unbatchable_jobs == 1
    assert summary.batch_cost(prices).worst == pytest.approx(
        (summary.cost.worst - wide.cost_worst) * (1 - discount) + wide.cost_worst
    )


def test_plan_in_batch_mode_says_which_edits_go_online(tmp_path: Path, photo: str) -> None:
    manifest = write_manifest(
        str(tmp_path / "m.csv"),
        [
            {"id": "std", "prompt": "the photo", "reference_images": photo},
            {"id": "wide", "prompt": "the photo", "reference_images": photo, "size": "1536x864"},
        ],
    )
    args = ["plan", manifest, "--rejects", str(tmp_path / "r.csv")]
    data = json.loads(CliRunner().invoke(app, [*args, "--json"]).stdout)
    assert data["batch_online"]["jobs"] == 1
    assert data["batch_online"]["cost_usd"]["worst"] > 0
    text = CliRunner(env={"COLUMNS": "200"}).invoke(app, args).stdout
    assert "in batch mode 1 edits go online" in text


@pytest.mark.usefixtures("prefect_harness")
def test_a_batch_run_sends_custom_size_edits_online_and_the_rest_in_batches(
    fake: FakeOpenAI, tmp_path: Path, photo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    manifest = write_manifest(
        str(tmp_path / "m.csv"),
        [
            {"id": "t2i", "prompt": "a chair", "size": "1536x864", "moderation": "low"},
            {"id": "std", "prompt": "the photo", "reference_images": photo, "moderation": "low"},
            {"id": "wide", "prompt": "the photo", "reference_images": photo, "size": "1536x864"},
        ],
    )
    store = tmp_path / "store"
    cmd = ["run", manifest, "--store", str(store), "--provider", "openai", "--mode", "batch"]
    result = CliRunner().invoke(app, [*cmd, "--ipm", "600", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["submitted"], summary["sent_online"], summary["generated"]) == (2, 1, 1)
    # The online one is stored already, as a multipart edit in its own size.
    (online,) = [r for r in fake.requests if r.endpoint == "edits"]
    assert online.size == "1536x864" and online.status == 200
    stored = AssetStore(str(store)).existing()
    assert len(stored) == 1 and summary["cost_usd"] == pytest.approx(fake.billed_usd)
    # No batch line asks for a size the JSON edit body does not take; moderation travels.
    lines = [
        json.loads(line)
        for stored in fake.batch_api.files.values()
        if stored.purpose == "batch" and stored.data
        for line in stored.data.decode().splitlines()
    ]
    assert sorted((line["url"], line["body"]["size"]) for line in lines) == [
        ("/v1/images/edits", "1024x1024"),
        ("/v1/images/generations", "1536x864"),
    ]
    assert {line["body"].get("moderation") for line in lines} == {"low"}


# --- online: moderation reaches the server, edits with it go as JSON -------------------------


def test_moderation_low_is_sent_online_and_an_edit_with_it_goes_as_json(
    fake: FakeOpenAI,
    make_planner: Callable[..., Planner],
    prices: PriceTable,
    tmp_path: Path,
    photo: str,
) -> None:
    rows = [
        {"id": "gen", "prompt": "a swimsuit on a beach", "moderation": "low"},
        {"id": "edit", "prompt": "the photo on a beach", "reference_images": photo}
        | {"moderation": "low"},
        {"id": "plain", "prompt": "the photo in a kitchen", "reference_images": photo},
    ]
    jobs, rejects = plan(make_planner, tmp_path, rows)
    assert not rejects
    cfg = load_job_config(None, {"limits.ipm": 60_000})
    store = AssetStore(str(tmp_path / "store"))
    report = generate(jobs, cfg, store, "run-1", now_utc(), prices, provider(fake))
    assert {o.status for o in report.outcomes} == {"generated"}
    bodies = {r.prompt: r.body for r in fake.requests}
    assert bodies["a swimsuit on a beach"]["moderation"] == "low"
    edit = bodies["the photo on a beach"]
    assert edit["moderation"] == "low"
    assert edit["images"][0]["image_url"].startswith("data:image/png;base64,")
    assert "moderation" not in bodies["the photo in a kitchen"]  # multipart: it has none
    sidecars = [
        Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))
        for folder in store.existing().values()
    ]
    assert sorted(str(s.params.get("moderation")) for s in sidecars) == ["None", "low", "low"]
    catalog = read_catalog(store)
    assert sorted(str(m) for m in catalog.column("moderation").to_pylist()) == [
        "None",
        "low",
        "low",
    ]


# --- usage as published: image and text output tokens ----------------------------------------


def test_text_output_is_billed_at_its_own_price_or_else_at_the_image_rate(
    prices: PriceTable,
) -> None:
    usage = Usage(text_input_tokens=100, output_tokens=1756 + 40, text_output_tokens=40)
    per = prices.pricing("gpt-image-2").per_million_tokens
    at_image_rate = (100 * per.text_input + 1796 * per.image_output) / 1e6
    assert usage.image_output_tokens == 1756
    assert usage_cost(prices, "gpt-image-2", usage) == pytest.approx(at_image_rate)
    priced = prices.model_copy(deep=True)
    priced.pricing("gpt-image-2").per_million_tokens.text_output = 10.0
    expected = (100 * per.text_input + 1756 * per.image_output + 40 * 10.0) / 1e6
    assert usage_cost(priced, "gpt-image-2", usage) == pytest.approx(expected)


def test_text_output_tokens_are_billed_and_kept_in_the_sidecar_and_the_catalog(
    fake: FakeOpenAI, make_planner: Callable[..., Planner], prices: PriceTable, tmp_path: Path
) -> None:
    jobs, _ = plan(make_planner, tmp_path, [{"id": "a", "prompt": "a poster [[text_out:25]]"}])
    cfg = load_job_config(None, {"limits.ipm": 60_000})
    store = AssetStore(str(tmp_path / "store"))
    report = generate(jobs, cfg, store, "run-1", now_utc(), prices, provider(fake))
    assert report.spent_usd == pytest.approx(fake.billed_usd)
    (folder,) = store.existing().values()
    sidecar = Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))
    assert sidecar.usage.text_output_tokens == 25
    assert sidecar.usage.output_tokens == sidecar.usage.image_output_tokens + 25
    assert read_catalog(store).column("text_output_tokens").to_pylist() == [25]
