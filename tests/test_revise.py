"""Revise: a new version of each rejected asset, against the OpenAI test server (real SDK)."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner, Result

from assetgen.flows.cli.revise import revise
from assetgen.tasks.batch.collect import collect
from assetgen.tasks.catalog.table import read_catalog
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.generation.dispatch import Attempted
from assetgen.tasks.generation.providers import ImageResult
from assetgen.tasks.generation.run import build_sidecar, generate
from assetgen.tasks.plan.jobs import Job, Planner, asset_id
from assetgen.tasks.plan.pricing import PriceTable, Usage
from assetgen.tasks.review.record import decide, reviewable
from assetgen.tasks.revise.notes import PROMPT_HEAD, edit_instruction, revised_prompt
from assetgen.tasks.revise.plan import plan_revise
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar, now_utc
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import plan_all, write_manifest
from tests.test_openai_run import provider

cli_app = typer.Typer()
cli_app.command()(revise)

FAST = {"limits.ipm": 60_000, "limits.backoff_base_s": 0.01, "renditions": []}


@pytest.fixture
def sdk_env(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """The SDK's own environment pointed at the test server."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    return fake


Seed = Callable[..., dict[str, Job]]


@pytest.fixture
def store(tmp_path: Path) -> AssetStore:
    return AssetStore(str(tmp_path / "store"))


@pytest.fixture
def seed(
    tmp_path: Path,
    store: AssetStore,
    make_planner: Callable[..., Planner],
    prices: PriceTable,
    fake: FakeOpenAI,
) -> Seed:
    """Generate `rows` into the store through the test server: row id -> its job."""

    def go(rows: list[dict[str, Any]], **cfg: Any) -> dict[str, Job]:
        manifest = write_manifest(str(tmp_path / "m.csv"), rows)
        jobs, rejects = plan_all(make_planner(defaults__quality="low"), manifest)
        assert not rejects, rejects
        config = load_job_config(None, {**FAST, **cfg})
        report = generate(jobs, config, store, "run-0", now_utc(), prices, provider(fake))
        assert {o.status for o in report.outcomes} == {"generated"}
        return {job.row_id: job for job in jobs}

    return go


def reject(store: AssetStore, asset: str, note: str | None) -> None:
    decide(store, reviewable(store, [asset]), "rejected", "ana", note)


def config_file(tmp_path: Path, store: AssetStore, extra: str = "") -> str:
    path = tmp_path / "job.yaml"
    path.write_text(
        f"store: {store.url}\nprovider: openai\nrenditions: []\n"
        f"limits: {{ipm: 60000, backoff_base_s: 0.01}}\nbatch: {{poll_s: 0.01}}\n{extra}"
    )
    return str(path)


def run_revise(cfg: str, *args: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(cli_app, ["--config", cfg, "--json", *args])
    assert result.exit_code in (0, 1), result.output
    return result, json.loads(result.stdout)


def catalog(store: AssetStore) -> dict[str, dict[str, Any]]:
    return {r["asset_id"]: r for r in read_catalog(store).to_pylist()}


def sidecar_of(store: AssetStore, asset: str) -> Sidecar:
    folder = store.existing()[asset]
    return Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))


# --- without Prefect ---------------------------------------------------------------------------


def test_a_revision_changes_the_id_and_nothing_else_does() -> None:
    base = dict(
        model="gpt-image-2",
        prompt="a chair",
        size="1024x1024",
        quality="low",
        output_format="png",
        output_compression=None,
        background="auto",
        reference_sha256=[],
        mask_sha256=None,
        variant=0,
    )
    first = asset_id(**base)  # type: ignore[arg-type]
    assert asset_id(**base, revision=0) == first  # type: ignore[arg-type]
    ids = {asset_id(**base, revision=n) for n in (1, 2, 3)}  # type: ignore[arg-type]
    assert len(ids) == 3 and first not in ids
    # The note's instruction is a pure function of the prompt and the notes.
    assert revised_prompt("a chair", ["legs bent"]) == f"a chair\n\n{PROMPT_HEAD} legs bent"
    assert revised_prompt("a chair", ["legs bent", "too dark"]).endswith(
        "\n- legs bent\n- too dark"
    )
    instruction = edit_instruction("a chair", ["legs bent"], references=1)
    assert instruction.startswith("Edit the first image: fix the following: legs bent")
    assert instruction.endswith("It was made for this brief:\na chair")


def test_a_revision_is_stamped_after_what_it_revises() -> None:
    later = now_utc() + timedelta(hours=1)  # the rejected one came from a clock ahead of ours
    job = Job.model_validate(
        {
            **dict.fromkeys(("cost_low", "cost_expected", "cost_worst"), 0.0),
            "asset_id": "a1",
            "row": 1,
            "row_id": "r",
            "variant": 0,
            "model": "gpt-image-2",
            "prompt": "p",
            "size": "1024x1024",
            "quality": "low",
            "output_format": "png",
            "output_compression": None,
            "background": "auto",
            "revision": 1,
            "revision_of": "a0",
            "revision_note": "n",
            "created_after": later,
        }
    )
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    result = ImageResult(buf.getvalue(), "png", "8x8", "low", "opaque", Usage())
    sidecar = build_sidecar(job, Attempted(result, 1, 0.1, 0.0), "run", "openai")
    assert sidecar.created_at > later
    assert (sidecar.revision, sidecar.revision_of, sidecar.revision_note) == (1, "a0", "n")


def test_a_missing_reference_refuses_its_asset_only(
    seed: Seed, store: AssetStore, tmp_path: Path
) -> None:
    for name in ("keep", "gone"):
        Image.new("RGB", (640, 480), "teal").save(tmp_path / f"{name}.png")
    jobs = seed(
        [
            {"id": "a", "prompt": "mug on a desk", "reference_images": str(tmp_path / "keep.png")},
            {"id": "b", "prompt": "mug on a shelf", "reference_images": str(tmp_path / "gone.png")},
        ]
    )
    for job in jobs.values():
        reject(store, job.asset_id, "too dark")
    (tmp_path / "gone.png").unlink()
    cfg = load_job_config(None, {**FAST, "store": store.url})
    planned, plan = plan_revise(store, cfg, rejects_url=str(tmp_path / "rejects.csv"))
    assert [j.revision_of for j in planned.jobs] == [jobs["a"].asset_id]
    (refused,) = plan.refused
    assert (refused.asset_id, refused.code) == (jobs["b"].asset_id, "missing_reference")
    assert "gone.png is not there any more" in refused.reason
    assert "missing_reference" in (tmp_path / "rejects.csv").read_text()
    # The edit's cost counts the rejected image as an input besides the reference.
    assert planned.jobs[0].cost_expected > jobs["a"].cost_expected


# --- through the command and the flow ---------------------------------------------------------

flow_test = pytest.mark.usefixtures("prefect_harness")


@flow_test
def test_revise_by_prompt_then_again_then_past_max_revisions(
    sdk_env: FakeOpenAI, seed: Seed, store: AssetStore, tmp_path: Path
) -> None:
    fake = sdk_env
    jobs = seed([{"id": "a", "prompt": "a red chair"}, {"id": "b", "prompt": "a blue lamp"}])
    old_a, old_b = jobs["a"].asset_id, jobs["b"].asset_id
    before = {a: store.read_bytes(f"{f}/{SIDECAR}") for a, f in store.existing().items()}
    reject(store, old_a, "the legs are bent")
    reject(store, old_b, None)  # no note: a fresh variant
    cfg = config_file(tmp_path, store)
    fake.reset()

    planned, dry = run_revise(cfg, "--how", "prompt", "--dry-run")
    assert planned.exit_code == 0 and dry["to_send"] == 2 and fake.requests == []
    assert dry["selected"] == dry["revised_from"]["rejected"] == 2
    assert (dry["revised_from"]["prompt"], dry["revised_from"]["fresh"]) == (1, 1)

    result, summary = run_revise(cfg, "--how", "prompt")
    assert result.exit_code == 0, result.output
    assert (summary["generated"], summary["how"]) == (2, "prompt")
    assert summary["revised_from"]["prompt"] == summary["revised_from"]["fresh"] == 1
    prompts = sorted(r.prompt for r in fake.requests)
    assert prompts == ["a blue lamp", f"a red chair\n\n{PROMPT_HEAD} the legs are bent"]
    assert {r.endpoint for r in fake.requests} == {"generations"}
    new = {r["revision_of"]: r["asset_id"] for r in summary["revisions"]}
    rows = catalog(store)
    for old in (old_a, old_b):
        made = rows[new[old]]
        assert (made["revision"], made["revision_of"], made["review_state"]) == (1, old, "pending")
        assert made["superseded_by"] is None
        assert (rows[old]["superseded_by"], rows[old]["review_state"]) == (new[old], "rejected")
    assert rows[new[old_a]]["revision_note"] == "the legs are bent"
    assert rows[new[old_b]]["revision_note"] is None
    # Nothing was overwritten: the rejected versions are as they were.
    folders = store.existing()
    assert all(store.read_bytes(f"{folders[a]}/{SIDECAR}") == data for a, data in before.items())
    assert len(folders) == 4
    assert summary["report"] and Path(summary["report"]).exists()

    # Again: nothing is rejected and current any more, nothing is sent.
    sent = len(fake.requests)
    again, nothing = run_revise(cfg, "--how", "prompt")
    assert again.exit_code == 0 and nothing["selected"] == 0 and len(fake.requests) == sent

    # The revision is rejected too: the next one keeps both fixes in its prompt.
    reject(store, new[old_a], "and it is too dark")
    _, second = run_revise(cfg, "--how", "prompt", "--where", "row_id=a")
    assert second["generated"] == 1
    assert fake.requests[-1].prompt == (
        f"a red chair\n\n{PROMPT_HEAD}\n- the legs are bent\n- and it is too dark"
    )
    (rev2,) = second["revisions"]
    assert (rev2["revision"], rev2["revision_of"]) == (2, new[old_a])

    # Past max_revisions: reported, not sent.
    reject(store, rev2["asset_id"], "still wrong")
    capped = config_file(tmp_path, store, "revise: {max_revisions: 2}\n")
    sent = len(fake.requests)
    result, over = run_revise(capped, "--how", "prompt")
    assert result.exit_code == 0
    assert over["over_max_revisions"] == [rev2["asset_id"]] and over["generated"] == 0
    assert len(fake.requests) == sent
    assert catalog(store)[rev2["asset_id"]]["superseded_by"] is None


@flow_test
def test_revise_by_edit_sends_the_rejected_image_and_rechecks_references(
    sdk_env: FakeOpenAI, seed: Seed, store: AssetStore, tmp_path: Path
) -> None:
    fake = sdk_env
    for name, colour in (("mug", "white"), ("lamp", "gray")):
        Image.new("RGB", (800, 600), colour).save(tmp_path / f"{name}.png")
    jobs = seed(
        [
            {
                "id": "a",
                "prompt": "the mug on a desk",
                "reference_images": str(tmp_path / "mug.png"),
            },
            {"id": "c", "prompt": "the lamp", "reference_images": str(tmp_path / "lamp.png")},
        ],
        renditions=["thumb"],
    )
    old_a, old_c = jobs["a"].asset_id, jobs["c"].asset_id
    reject(store, old_a, "make the mug red")
    reject(store, old_c, "brighter")
    Image.new("RGB", (800, 600), "black").save(tmp_path / "lamp.png")  # changed since
    rejected = sidecar_of(store, old_a)
    mug_sha = hashlib.sha256((tmp_path / "mug.png").read_bytes()).hexdigest()
    cfg = config_file(tmp_path, store, "renditions: [thumb]\n")
    fake.reset()

    result, summary = run_revise(cfg)  # the config's default: edit
    assert result.exit_code == 1  # one asset refused
    assert (summary["how"], summary["generated"], summary["revised_from"]["edit"]) == ("edit", 1, 1)
    (refused,) = summary["refused"]
    assert (refused["asset_id"], refused["code"]) == (old_c, "changed_reference")
    assert "lamp.png changed since the rejected version was made" in refused["reason"]
    (request,) = fake.requests  # nothing was sent for the lamp
    assert (request.endpoint, request.content) == ("edits", "multipart")
    assert request.images_sha256 == [rejected.sha256, mug_sha]
    assert "make the mug red" in request.prompt and "the mug on a desk" in request.prompt
    assert request.prompt.startswith("Edit the first image")

    (revision,) = summary["revisions"]
    made = sidecar_of(store, revision["asset_id"])
    assert (made.revision, made.revision_of, made.revision_note) == (1, old_a, "make the mug red")
    assert [r["sha256"] for r in made.references] == [rejected.sha256, mug_sha]
    assert [r.name for r in made.renditions] == ["thumb"]
    assert made.created_at > rejected.created_at
    rows = catalog(store)
    assert rows[old_a]["superseded_by"] == revision["asset_id"]
    assert rows[revision["asset_id"]]["review_state"] == "pending"
    assert rows[revision["asset_id"]]["rendition_credentials"]  # provenance, as any run
    assert rows[old_c]["superseded_by"] is None  # still rejected, still current
    assert (
        "changed_reference" in store.read_bytes(f"_runs/{summary['run_id']}/rejects.csv").decode()
    )


@flow_test
def test_revise_out_of_budget_reports_budget_exhausted(
    sdk_env: FakeOpenAI, seed: Seed, store: AssetStore, tmp_path: Path
) -> None:
    fake = sdk_env
    jobs = seed([{"id": "a", "prompt": "a red chair"}])
    reject(store, jobs["a"].asset_id, "legs bent")
    fake.reset()
    result, summary = run_revise(config_file(tmp_path, store), "--budget", "0.0001")
    assert result.exit_code == 1
    assert (summary["budget_exhausted"], summary["generated"]) == (1, 0)
    assert summary["cost_usd"] == 0 and fake.requests == []
    old = catalog(store)[jobs["a"].asset_id]
    assert (old["review_state"], old["superseded_by"]) == ("rejected", None)


@flow_test
def test_revise_in_batch_mode_submits_and_collect_stores_the_revision(
    sdk_env: FakeOpenAI, seed: Seed, store: AssetStore, tmp_path: Path, prices: PriceTable
) -> None:
    fake = sdk_env
    Image.new("RGB", (800, 600), "white").save(tmp_path / "mug.png")
    jobs = seed(
        [{"id": "a", "prompt": "the mug on a desk", "reference_images": str(tmp_path / "mug.png")}]
    )
    old = jobs["a"].asset_id
    reject(store, old, "make the mug red")
    rejected = sidecar_of(store, old)
    cfg = config_file(tmp_path, store)
    fake.reset()
    fake.hold_batches = True

    result, submitted = run_revise(cfg, "--mode", "batch")
    assert result.exit_code == 0, result.output
    assert (submitted["submitted"], len(submitted["batches"]), submitted["sent_online"]) == (
        1,
        1,
        0,
    )
    uploaded = {u.filename: u for u in fake.uploads.values() if u.purpose == "vision"}
    assert uploaded["original.png"].bytes == rejected.bytes
    # Revising again meanwhile sends nothing: the revision waits in its batch.
    _, again = run_revise(cfg, "--mode", "batch")
    assert (again["submitted"], again["pending_in_batch"]) == (0, 1)

    fake.hold_batches = False
    batch_cfg = load_job_config(cfg, {"mode": "batch"})
    report = collect(store, batch_cfg, prices, "collect-1", wait=True)
    assert report.generated == 1
    (line,) = [r for r in fake.requests if r.endpoint == "batch:edits"]
    assert line.images_sha256[0] == rejected.sha256 and "make the mug red" in line.prompt
    rows = catalog(store)
    (new,) = [r for r in rows.values() if r["revision_of"] == old]
    assert (new["revision"], new["review_state"], new["superseded_by"]) == (1, "pending", None)
    assert rows[old]["superseded_by"] == new["asset_id"]
