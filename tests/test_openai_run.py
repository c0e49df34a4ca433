"""The OpenAI provider through the real SDK against the Images API test server."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from PIL import Image
from typer.testing import CliRunner

from assetgen.flows.cli.app import app
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.generation.openai_images import OpenAIProvider
from assetgen.tasks.generation.run import GenerationReport, generate
from assetgen.tasks.plan.jobs import Planner
from assetgen.tasks.plan.pricing import PriceTable
from assetgen.tasks.store.assets import AssetStore, now_utc
from tests.conftest import FAKE_KEY as KEY
from tests.fakes.images_api import FakeOpenAI
from tests.helpers import plan_all, write_manifest


def provider(fake: FakeOpenAI, *, key: str = KEY, timeout_s: float = 30) -> OpenAIProvider:
    client = openai.AsyncOpenAI(
        api_key=key, base_url=fake.base_url, max_retries=0, timeout=timeout_s
    )
    return OpenAIProvider(timeout_s=timeout_s, client=client)


RunJobs = Callable[..., GenerationReport]


@pytest.fixture
def run_jobs(
    tmp_path: Path, make_planner: Callable[..., Planner], prices: PriceTable, fake: FakeOpenAI
) -> RunJobs:
    """Plan `rows`, then generate them against the test server into a fresh store."""

    def go(
        rows: list[dict[str, Any]],
        *,
        key: str = KEY,
        timeout_s: float = 30,
        **limits: Any,
    ) -> GenerationReport:
        manifest = write_manifest(str(tmp_path / "m.csv"), rows)
        jobs, rejects = plan_all(make_planner(), manifest)
        assert not rejects, rejects
        overrides = {"limits.ipm": 60_000, "limits.backoff_base_s": 0.01}
        overrides |= {k.replace("__", "."): v for k, v in limits.items()}
        cfg = load_job_config(None, overrides)
        store = AssetStore(str(tmp_path / "store"))
        client = provider(fake, key=key, timeout_s=timeout_s)
        return generate(jobs, cfg, store, "run-1", now_utc(), prices, client)

    return go


def statuses(report: GenerationReport) -> Counter[str]:
    return Counter(o.status for o in report.outcomes)


def rows(*prompts: str, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "prompt": p, **extra} for i, p in enumerate(prompts)]


def test_generate_and_edit_write_images_and_sidecars(
    run_jobs: RunJobs, fake: FakeOpenAI, tmp_path: Path
) -> None:
    ref = tmp_path / "ref.png"
    Image.new("RGB", (1024, 1024), "navy").save(ref)
    mask = tmp_path / "mask.png"
    Image.new("RGBA", (1024, 1024), (0, 0, 0, 0)).save(mask)
    report = run_jobs(
        [
            {"id": "t2i", "prompt": "a red chair", "size": "1536x1024", "output_format": "webp"},
            {
                "id": "edit",
                "prompt": "the chair in blue",
                "reference_images": f"{ref};{ref}",
                "mask": str(mask),
            },
        ]
    )
    assert statuses(report) == {"generated": 2}
    by_endpoint = {r.endpoint: r for r in fake.requests}
    assert by_endpoint["edits"].n_images_in == 2 and by_endpoint["edits"].has_mask
    assert by_endpoint["generations"].size == "1536x1024"
    assert report.spent_usd == pytest.approx(fake.billed_usd)
    for outcome in report.outcomes:
        sidecar = json.loads(Path(outcome.uri).read_text())
        assert sidecar["request_id"].startswith("req_")
        assert sidecar["usage"]["output_tokens"] > 0
        assert sidecar["provider"] == "openai"
        original = Path(outcome.uri).parent / sidecar["original"]
        with Image.open(original) as img:
            assert f"{img.width}x{img.height}" == sidecar["returned"]["size"]
    webp = next(o for o in report.outcomes if o.job.row_id == "t2i")
    assert Path(webp.uri).parent.joinpath("original.webp").exists()


def test_5xx_is_retried_until_it_succeeds(run_jobs: RunJobs, fake: FakeOpenAI) -> None:
    report = run_jobs(rows("a chair [[status:500x2]]", "a table [[status:503x1]]", "a lamp"))
    assert statuses(report) == {"generated": 3}
    attempts = {o.job.row_id: o.attempts for o in report.outcomes}
    assert attempts == {"r0": 3, "r1": 2, "r2": 1}
    assert fake.count(500) == 2 and fake.count(503) == 1
    assert fake.images_billed == 3


def test_retries_give_up_after_max_attempts(run_jobs: RunJobs, fake: FakeOpenAI) -> None:
    report = run_jobs(rows("a chair [[status:502x9]]"), limits__max_attempts=3)
    assert statuses(report) == {"failed": 1}
    assert "gave up after 3 attempts" in report.outcomes[0].reason
    assert fake.count(502) == 3 and fake.billed_usd == 0


def test_429_pauses_the_whole_run_for_retry_after(run_jobs: RunJobs, fake: FakeOpenAI) -> None:
    fake.fail_next(429, "rate_limit_exceeded", retry_after_s=0.3)
    report = run_jobs(rows("a", "b", "c", "d"), limits__concurrency=1)
    assert statuses(report) == {"generated": 4}
    assert report.rate_limit_pauses == 1
    ok = sorted(r.started for r in fake.requests if r.status == 200)
    limited = next(r for r in fake.requests if r.status == 429)
    # No request of the run went out during the pause the server asked for.
    assert ok[0] - limited.finished >= 0.3 - 0.02


def test_moderation_refusal_fails_only_its_row(run_jobs: RunJobs, fake: FakeOpenAI) -> None:
    report = run_jobs(rows("a chair", "something [[moderation]]", "a lamp"))
    assert statuses(report) == {"generated": 2, "failed": 1}
    failed = next(o for o in report.outcomes if o.status == "failed")
    assert failed.job.row_id == "r1"
    assert "moderation_blocked" in failed.reason and "safety" in failed.reason
    assert failed.attempts == 1
    assert report.stop_reason is None


def test_bad_key_stops_the_run_after_the_first_failure(run_jobs: RunJobs, fake: FakeOpenAI) -> None:
    # One request a second: the first 401 is back long before a second could go.
    report = run_jobs(rows(*"abcdefgh"), key="sk-wrong", limits__ipm=60)
    assert len(fake.requests) == 1
    assert statuses(report) == {"failed": 1, "stopped": 7}
    assert "401" in report.stop_reason
    assert report.spent_usd == 0


def test_insufficient_quota_stops_the_run(run_jobs: RunJobs, fake: FakeOpenAI) -> None:
    fake.insufficient_quota = True
    report = run_jobs(rows(*"abcdef"), limits__ipm=60)
    assert len(fake.requests) == 1
    assert "insufficient_quota" in report.stop_reason
    assert statuses(report)["stopped"] == 5


def test_budget_covers_part_of_the_manifest(run_jobs: RunJobs, fake: FakeOpenAI) -> None:
    # medium 1024x1024 bills about $0.053 an image; $0.25 pays for four.
    report = run_jobs(
        rows(*(f"image {i}" for i in range(12))), budget__cap_usd=0.25, limits__concurrency=6
    )
    counts = statuses(report)
    assert fake.billed_usd <= 0.25
    assert report.spent_usd == pytest.approx(fake.billed_usd)
    assert counts["generated"] == fake.images_billed >= 4
    assert counts["budget_exhausted"] == 12 - counts["generated"]
    assert counts["failed"] == 0


def test_timeout_is_retried_and_counted_as_maybe_billed(
    run_jobs: RunJobs, fake: FakeOpenAI
) -> None:
    report = run_jobs(rows("slow [[slow:2]]"), timeout_s=0.5, limits__max_attempts=2)
    assert statuses(report) == {"failed": 1}
    assert "timed out" in report.outcomes[0].reason
    assert report.uncertain_usd > 0
    # What we count as spent covers whatever the server billed for the
    # requests we gave up on.
    assert report.spent_usd >= fake.billed_usd


def test_connection_refused_is_retried_and_not_counted(
    run_jobs: RunJobs, prices: PriceTable, tmp_path: Path, make_planner: Callable[..., Planner]
) -> None:
    manifest = write_manifest(str(tmp_path / "m.csv"), rows("a chair"))
    jobs, _ = plan_all(make_planner(), manifest)
    client = openai.AsyncOpenAI(api_key=KEY, base_url="http://127.0.0.1:9/v1", max_retries=0)
    cfg = load_job_config(None, {"limits.max_attempts": 2, "limits.backoff_base_s": 0.01})
    report = generate(
        jobs,
        cfg,
        AssetStore(str(tmp_path / "s")),
        "r",
        now_utc(),
        prices,
        OpenAIProvider(timeout_s=5, client=client),
    )
    assert statuses(report) == {"failed": 1}
    assert "connection" in report.outcomes[0].reason
    assert report.uncertain_usd == 0 and report.spent_usd == 0


@pytest.mark.usefixtures("prefect_harness")
def test_cli_run_with_sdk_environment_then_rerun_sends_nothing(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
    manifest = write_manifest(str(tmp_path / "m.csv"), rows("a chair", "a table", "a lamp"))
    args = [
        "run",
        manifest,
        "--provider",
        "openai",
        "--store",
        str(tmp_path / "s"),
        "--json",
        "--ipm",
        "6000",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout)["generated"] == 3
    assert len(fake.requests) == 3
    second = CliRunner().invoke(app, args)
    summary = json.loads(second.stdout)
    assert second.exit_code == 0
    assert summary["skipped_existing"] == 3 and summary["requests"] == 0
    assert len(fake.requests) == 3  # the second run sent nothing


@pytest.mark.parametrize(
    ("directive", "reason"),
    [
        ("[[badb64]]", "invalid base64"),
        ("[[truncated]]", "undecodable image"),
        ("[[wrongsize]]", "image is 512x512, 1024x1024 was asked for"),
    ],
)
def test_broken_image_fails_its_row_and_is_not_paid_for_twice(
    run_jobs: RunJobs, fake: FakeOpenAI, directive: str, reason: str
) -> None:
    report = run_jobs(rows("a chair", f"a lamp {directive}"))
    assert statuses(report) == {"generated": 1, "failed": 1}
    failed = next(o for o in report.outcomes if o.status == "failed")
    assert reason in failed.reason and failed.attempts == 1
    assert fake.images_billed == 2  # the broken answer was billed once, not retried
    assert report.spent_usd >= fake.billed_usd  # and the budget counted it
    assert len([o for o in report.outcomes if o.uri]) == 1  # nothing broken was stored


def test_connection_dropped_mid_body_is_retried(run_jobs: RunJobs, fake: FakeOpenAI) -> None:
    report = run_jobs(rows("a lamp [[drop]]"))
    assert statuses(report) == {"generated": 1}
    assert report.outcomes[0].attempts == 2
    assert fake.images_billed == 2  # the dropped answer was billed by the server
    assert report.uncertain_usd > 0 and report.spent_usd >= fake.billed_usd
