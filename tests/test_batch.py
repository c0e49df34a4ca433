"""Batch API mode on the test server: submit, survive the exit, collect once, re-plan the rest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from PIL import Image
from typer.testing import CliRunner

from assetgen.flows.cli.app import app
from assetgen.flows.generate import skip_existing
from assetgen.tasks.batch.collect import CollectReport, collect
from assetgen.tasks.batch.records import BatchBook, split_batches
from assetgen.tasks.batch.submit import SubmitReport, submit
from assetgen.tasks.budget.ledger import Ledger, day_of, month_of
from assetgen.tasks.catalog.table import read_catalog
from assetgen.tasks.config.job import JobConfig, load_job_config
from assetgen.tasks.generation.run import generate
from assetgen.tasks.plan.jobs import Job, Planner
from assetgen.tasks.plan.pricing import PriceTable
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar, now_utc
from tests.conftest import FAKE_KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import plan_all, write_manifest
from tests.test_openai_run import provider


@pytest.fixture
def sdk_env(fake: FakeOpenAI, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAI:
    """The SDK's own environment pointed at the test server."""
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    return fake


def config(**overrides: Any) -> JobConfig:
    base = {"provider": "openai", "mode": "batch", "batch.poll_s": 0.01, "renditions": []}
    return load_job_config(None, base | {k.replace("__", "."): v for k, v in overrides.items()})


Plan = Callable[..., list[Job]]


@pytest.fixture
def plan(tmp_path: Path, make_planner: Callable[..., Planner]) -> Plan:
    def go(prompts: list[str], **extra: Any) -> list[Job]:
        rows = [{"id": f"r{i}", "prompt": p, **extra} for i, p in enumerate(prompts)]
        jobs, rejects = plan_all(make_planner(), write_manifest(str(tmp_path / "m.csv"), rows))
        assert not rejects
        return jobs

    return go


def do_submit(
    jobs: list[Job], store: AssetStore, prices: PriceTable, cfg: JobConfig | None = None
) -> SubmitReport:
    return submit(jobs, cfg or config(), store, "run-b", now_utc(), prices)


def do_collect(store: AssetStore, prices: PriceTable, **kwargs: Any) -> CollectReport:
    cfg = kwargs.pop("cfg", None) or config()
    return collect(store, cfg, prices, "collect-1", **kwargs)


def sidecars(store: AssetStore) -> dict[str, Sidecar]:
    return {
        asset_id: Sidecar.model_validate_json(store.read_bytes(f"{folder}/{SIDECAR}"))
        for asset_id, folder in store.existing().items()
    }


def ledger_total(store: AssetStore) -> float:
    """Spent and held today by every account of the store's ledger."""
    day = day_of(now_utc())
    return Ledger(store, month_of(day)).read().period_total(day, "day")


# --- the whole story through the command line ----------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_batch_run_survives_exit_and_collects_each_asset_once(
    sdk_env: FakeOpenAI, tmp_path: Path
) -> None:
    fake = sdk_env
    ref = tmp_path / "product.png"
    Image.new("RGB", (1024, 1024), "navy").save(ref)
    manifest = write_manifest(
        str(tmp_path / "m.csv"),
        [
            {"id": "a", "prompt": "a chair"},
            {"id": "b", "prompt": "a table"},
            {"id": "c", "prompt": "a lamp [[moderation]]"},
            {"id": "d", "prompt": "the product on a beach", "reference_images": str(ref)},
        ],
    )
    store = tmp_path / "store"
    cfg_file = tmp_path / "job.yaml"
    cfg_file.write_text(f"store: {store}\nprovider: openai\nbatch: {{poll_s: 0.01}}\n")
    fake.hold_batches = True
    # Submitted by a process that then exits.
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    cli = str(Path(sys.executable).parent / "assetgen")
    cmd = [cli, "run", manifest, "-c", str(cfg_file), "--mode", "batch", "--budget", "1", "--json"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    submitted = json.loads(done.stdout)
    assert (submitted["submitted"], len(submitted["batches"])) == (4, 2)  # generations + edits
    assert submitted["cost_usd"] == 0 and fake.images_billed == 0
    uploads = {u.purpose for u in fake.uploads.values()}
    assert uploads == {"batch", "vision"}  # the reference image travelled as a file

    runner = CliRunner()
    collect_cmd = ["collect", "-c", str(cfg_file), "--json"]
    waiting = json.loads(runner.invoke(app, collect_cmd).stdout)
    assert (len(waiting["collected"]), len(waiting["waiting"])) == (0, 2)
    assert AssetStore(str(store)).existing() == {}

    fake.hold_batches = False
    result = runner.invoke(app, [*collect_cmd, "--wait"])
    assert result.exit_code == 1, result.output  # one line failed
    summary = json.loads(result.stdout)
    assert (summary["generated"], summary["failed"], summary["returned"]) == (3, 1, 0)
    assert "moderation_blocked" in summary["top_failures"][0]
    s = AssetStore(str(store))
    stored = sidecars(s)
    assert len(stored) == 3 == fake.images_billed
    assert all(sc.batch_id and sc.run_id == submitted["run_id"] for sc in stored.values())
    assert {sc.row_id for sc in stored.values() if sc.references} == {"d"}
    catalog = read_catalog(s)
    assert Counter(catalog.column("status").to_pylist()) == {"generated": 3, "failed": 1}
    # Spend: settled from the usage at the batch price, within the budget.
    assert summary["cost_usd"] == pytest.approx(fake.billed_usd, abs=1e-6)
    assert ledger_total(s) == pytest.approx(fake.billed_usd, abs=1e-6)
    assert fake.billed_usd <= 1
    assert sum(sc.cost_usd for sc in stored.values()) == pytest.approx(fake.billed_usd, abs=1e-6)
    # The submitting run's contact sheet is written again, with the images.
    sheet = store / "_reports" / submitted["run_id"]
    assert summary["reports"] == {submitted["run_id"]: str(sheet / "index.html")}
    report = json.loads((sheet / "report.json").read_text())
    assert report["counts"] == {"generated": 3, "failed": 1}
    html = (sheet / "index.html").read_text()
    assert html.count("<img") == 3 and "moderation_blocked" in html
    assert '<div class="stat generated"><b>3</b>' in html  # the header counts them
    assert '<div class="stat failed"><b>1</b>' in html
    assert sum(e["cost_usd"] for e in report["entries"]) == pytest.approx(fake.billed_usd)
    assert f"${fake.billed_usd:,.4f}" in html  # spent, at the batch price

    # A second collect has nothing to do: it does not even reach the API.
    dead = runner.invoke(app, collect_cmd, env={"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    again = json.loads(dead.stdout)
    assert dead.exit_code == 0 and again["collected"] == [] and again["errors"] == []
    assert len(sidecars(s)) == 3 and fake.images_billed == 3

    listed = runner.invoke(app, ["batches", "list", "--store", str(store), "--all", "--json"])
    records = [json.loads(line) for line in listed.stdout.splitlines()]
    assert {r["state"] for r in records} == {"collected"}


# --- collect ------------------------------------------------------------------------------


def test_expired_batch_stores_what_finished_and_its_other_jobs_run_again(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    fake = sdk_env
    store = AssetStore(str(tmp_path / "store"))
    jobs = plan([f"picture {i}" for i in range(5)])
    fake.expire_batches_after = 2
    sent = do_submit(jobs, store, prices)
    assert skip_existing.fn(store, jobs).pending_in_batch == 5  # not sent again meanwhile
    report = do_collect(store, prices, wait=True)
    assert (report.generated, report.failed, report.returned) == (2, 0, 3)
    record = BatchBook(store).get(sent.batches[0].key)
    assert (record.state, record.status) == ("collected", "expired")
    todo = skip_existing.fn(store, jobs)
    assert (len(todo.skipped), todo.pending_in_batch, len(todo.jobs)) == (2, 0, 3)
    # The returned jobs can run online (or in a new batch).
    online = generate(
        todo.jobs,
        config(mode="online", limits__ipm=60_000),
        store,
        "run-2",
        now_utc(),
        prices,
        provider(fake),
    )
    assert sum(o.status == "generated" for o in online.outcomes) == 3
    assert len(store.existing()) == 5 == fake.images_billed  # each asset paid once


def test_collect_cut_short_is_completed_by_the_next_collect_at_no_cost(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    fake = sdk_env
    store = AssetStore(str(tmp_path / "store"))
    do_submit(plan([f"picture {i}" for i in range(4)]), store, prices)
    real_write = AssetStore.write_asset
    calls = 0

    def crash_from_third(self: AssetStore, *args: Any) -> str:
        nonlocal calls
        calls += 1
        if calls >= 3:
            raise OSError("disk went away")
        return real_write(self, *args)

    AssetStore.write_asset = crash_from_third  # type: ignore[method-assign]
    try:
        # Each collect looks once; the batch finishes after a few looks.
        for _ in range(5):
            first = do_collect(store, prices)
            if first.errors:
                break
    finally:
        AssetStore.write_asset = real_write  # type: ignore[method-assign]
    assert first.collected == [] and "disk went away" in first.errors[0]
    assert len(store.existing()) == 2
    second = do_collect(store, prices, wait=True)
    assert (second.generated, len(second.stored_before), len(second.collected)) == (2, 2, 1)
    assert len(store.existing()) == 4 == fake.images_billed
    # The batch was paid once; settling twice does not count it twice.
    assert ledger_total(store) == pytest.approx(fake.billed_usd, abs=1e-9)


@pytest.mark.usefixtures("prefect_harness")
def test_collect_killed_before_renditions_is_completed_by_the_next(
    sdk_env: FakeOpenAI,
    tmp_path: Path,
    plan: Plan,
    prices: PriceTable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = AssetStore(str(tmp_path / "store"))
    do_submit(plan(["a", "b", "c"]), store, prices)
    real_write = AssetStore.write_asset
    written: list[str] = []

    def die_after_two(self: AssetStore, folder: str, *args: Any) -> str:
        if len(written) == 2:
            raise OSError("killed")
        written.append(folder)
        return real_write(self, folder, *args)

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None  # as if killed before any rendition or catalog row

    with monkeypatch.context() as m:
        m.setattr(AssetStore, "write_asset", die_after_two)
        m.setattr("assetgen.tasks.renditions.postprocess.PostProcessor.submit", nothing)
        for _ in range(5):
            if do_collect(store, prices).errors:
                break
    assert len(store.existing()) == 2
    result = CliRunner().invoke(app, ["collect", "--store", store.url, "--json"])
    summary = json.loads(result.stdout)
    assert (summary["generated"], summary["already_stored"]) == (1, 2)
    assert summary["completed_existing"] == 2
    for sidecar in sidecars(store).values():
        assert {r.name for r in sidecar.renditions} == {"thumb", "listing"}
    assert read_catalog(store).num_rows == 3


def test_cancelled_batch_returns_its_jobs(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    fake = sdk_env
    store = tmp_path / "store"
    jobs = plan(["a", "b", "c"])
    do_submit(jobs, AssetStore(str(store)), prices)
    result = CliRunner().invoke(app, ["batches", "cancel", "--all", "--store", str(store)])
    assert result.exit_code == 0, result.output
    report = do_collect(AssetStore(str(store)), prices, wait=True)
    assert (report.generated, report.returned, fake.images_billed) == (0, 3, 0)
    assert report.collected[0].status == "cancelled"
    assert len(skip_existing.fn(AssetStore(str(store)), jobs).jobs) == 3


def test_batch_refused_by_validation_returns_its_jobs(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    sdk_env.max_batch_requests = 2  # the server's limit is lower than we were told
    store = AssetStore(str(tmp_path / "store"))
    jobs = plan(["a", "b", "c"])
    do_submit(jobs, store, prices)
    report = do_collect(store, prices, wait=True)
    assert (report.generated, report.returned, sdk_env.images_billed) == (0, 3, 0)
    assert report.collected[0].status == "failed"
    assert report.failures[0].startswith("run-b-000: batch failed:")
    assert len(skip_existing.fn(store, jobs).jobs) == 3


# --- submit -------------------------------------------------------------------------------


def test_budget_is_reserved_at_the_batch_price(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    fake = sdk_env
    store = AssetStore(str(tmp_path / "store"))
    jobs = plan([f"picture {i}" for i in range(10)])
    worst_online = jobs[0].cost_worst
    cap = worst_online * 3.2  # 3 jobs online, 6 at the batch price
    report = do_submit(jobs, store, prices, config(budget__cap_usd=cap))
    assert report.submitted == 6
    assert [o.status for o in report.outcomes] == ["budget_exhausted"] * 4
    assert report.reserved_usd <= cap
    left = read_catalog(store)  # in the catalog (and the contact sheet) as online runs do
    assert Counter(left["status"].to_pylist()) == {"budget_exhausted": 4}
    assert "not submitted: worst case" in left["error"][0].as_py()
    assert ledger_total(store) == pytest.approx(report.reserved_usd)  # held until collected
    do_collect(store, prices, wait=True)
    assert fake.billed_usd <= cap
    assert ledger_total(store) == pytest.approx(fake.billed_usd, abs=1e-9)
    statuses = Counter(read_catalog(store)["status"].to_pylist())
    assert statuses == {"generated": 6, "budget_exhausted": 4}


def test_batches_respect_the_request_and_size_limits(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    fake = sdk_env
    fake.max_batch_requests = 2
    store = AssetStore(str(tmp_path / "store"))
    jobs = plan([f"picture {i}" for i in range(5)])
    report = do_submit(jobs, store, prices, config(batch__max_requests=2))
    assert [len(b.asset_ids) for b in report.batches] == [2, 2, 1]
    done = do_collect(store, prices, wait=True)
    assert done.generated == 5 and {b.status for b in done.collected} == {"completed"}
    chunks = list(split_batches(jobs, {}, 50_000, 1200))
    assert len(chunks) > 1 and all(len(data) <= 1200 for _, _, data in chunks)
    assert [j.asset_id for _, c, _ in chunks for j in c] == [j.asset_id for j in jobs]
    # One model per batch: the API refuses mixed ones.
    mixed = [jobs[0], jobs[1].model_copy(update={"model": "gpt-image-1.5"}), jobs[2]]
    split = [[j.model for j in c] for _, c, _ in split_batches(mixed, {}, 50_000, 10**6)]
    assert split == [["gpt-image-2", "gpt-image-2"], ["gpt-image-1.5"]]


def test_batch_creation_cut_short_is_found_again_by_collect(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    fake = sdk_env
    store = AssetStore(str(tmp_path / "store"))
    client = openai.OpenAI(api_key=FAKE_KEY, base_url=fake.base_url, max_retries=0)
    real_create = client.batches.create

    def created_but_lost(**kwargs: Any) -> Any:
        real_create(**kwargs)  # the batch exists at OpenAI...
        raise openai.APITimeoutError(request=None)  # type: ignore[arg-type]  # ...we never heard

    client.batches.create = created_but_lost  # type: ignore[method-assign]
    client.with_options = lambda **_: client  # type: ignore[method-assign]
    jobs = plan(["a", "b"])
    report = submit(jobs, config(), store, "run-b", now_utc(), prices, client)
    assert report.batches[0].state == "submitting" and report.batches[0].batch_id is None
    assert skip_existing.fn(store, jobs).pending_in_batch == 2  # never sent twice meanwhile
    collected = do_collect(store, prices, wait=True)
    assert collected.generated == 2 == fake.images_billed


def test_batch_never_created_is_given_up_and_its_jobs_planned_again(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    fake = sdk_env
    store = AssetStore(str(tmp_path / "store"))
    client = openai.OpenAI(api_key=FAKE_KEY, base_url=fake.base_url, max_retries=0)

    def lost(**kwargs: Any) -> Any:
        raise openai.APIConnectionError(request=None)  # type: ignore[arg-type]

    client.batches.create = lost  # type: ignore[method-assign]
    client.with_options = lambda **_: client  # type: ignore[method-assign]
    jobs = plan(["a", "b"])
    submit(jobs, config(), store, "run-b", now_utc(), prices, client)
    assert ledger_total(store) > 0  # held while it may exist
    early = do_collect(store, prices)
    assert early.collected == [] and len(early.waiting) == 1  # too soon to give up
    do_collect(store, prices, cfg=config(batch__recover_after_s=0.001))
    assert BatchBook(store).records()[0].state == "abandoned"
    assert len(skip_existing.fn(store, jobs).jobs) == 2
    assert ledger_total(store) == 0


def test_rejected_submission_fails_its_jobs_and_holds_nothing(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    sdk_env.api_key = "sk-another-key-entirely"
    store = AssetStore(str(tmp_path / "store"))
    report = do_submit(plan(["a", "b"]), store, prices)
    assert report.batches == [] and {o.status for o in report.outcomes} == {"failed"}
    assert report.stop_reason and "401" in report.stop_reason
    assert FAKE_KEY not in report.stop_reason
    assert ledger_total(store) == 0 and not BatchBook(store).pending_asset_ids()


def test_batch_mode_needs_the_openai_provider(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["run", "m.csv", "--mode", "batch", "--provider", "placeholder", "--json"]
    )
    assert result.exit_code == 2
    assert "needs provider openai" in json.loads(result.stdout.splitlines()[0])["error"]


# --- a 500 MB output file ----------------------------------------------------------------

COLLECT_SCRIPT = """
import json, resource, sys
from assetgen.tasks.batch.collect import collect
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.store.assets import AssetStore
cfg = load_job_config(None, {"provider": "openai", "mode": "batch", "renditions": [],
                             "batch.poll_s": 0.01})
r = collect(AssetStore(sys.argv[1]), cfg, load_price_table(), "collect", wait=True)
print(json.dumps({"generated": r.generated, "errors": r.errors,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _collect_in_child(store: Path, fake: FakeOpenAI) -> dict[str, Any]:
    env = {**os.environ, "OPENAI_API_KEY": FAKE_KEY, "OPENAI_BASE_URL": fake.base_url}
    done = subprocess.run(
        [sys.executable, "-c", COLLECT_SCRIPT, str(store)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_500_mb_output_file_is_collected_with_flat_memory(
    sdk_env: FakeOpenAI, tmp_path: Path, plan: Plan, prices: PriceTable
) -> None:
    fake = sdk_env
    # Random-noise PNGs do not compress: each output line is ~4.2 MB of base64.
    small, big = AssetStore(str(tmp_path / "small")), AssetStore(str(tmp_path / "big"))
    do_submit(plan([f"noise {i} [[noise]]" for i in range(3)]), small, prices)
    do_submit(plan([f"noise {i} [[noise]]" for i in range(125)]), big, prices)
    baseline = _collect_in_child(tmp_path / "small", fake)
    large = _collect_in_child(tmp_path / "big", fake)
    assert (baseline["generated"], large["generated"]) == (3, 125)
    assert large["errors"] == []
    stored = sum(os.path.getsize(p) for p in (tmp_path / "big").rglob("original.png"))
    assert stored * 4 / 3 > 500e6  # the base64 of what was stored: the file was over 500 MB
    # Holding the file (or the images) would add hundreds of MB; streaming adds a few lines.
    assert large["peak_mb"] - baseline["peak_mb"] < 100, (baseline, large)
    print(f"peak RSS: 3 lines {baseline['peak_mb']:.0f} MB, 125 lines {large['peak_mb']:.0f} MB")
