"""The `generate_assets` flow: manifest -> plan -> skip what exists -> generate -> summary."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE

from assetgen.tasks.batch.submit import SubmitReport, submit
from assetgen.tasks.config.job import JobConfig, load_job_config
from assetgen.tasks.generation.run import GenerationReport, generate, open_account
from assetgen.tasks.generation.shared import SharedReport
from assetgen.tasks.generation.shared import make_shared as _make_shared
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.plan.todo import Planned, ToDo, plan_manifest
from assetgen.tasks.plan.todo import skip_existing as _skip_existing
from assetgen.tasks.renditions.postprocess import complete_stored as _complete_stored
from assetgen.tasks.reporting.artifacts import (
    progress_watches,
    publish_artifacts,
    write_contact_sheet,
)
from assetgen.tasks.reporting.contact_sheet import run_ids_of
from assetgen.tasks.reporting.progress import Progress, watched
from assetgen.tasks.reporting.summary import batch_run_summary, run_summary
from assetgen.tasks.review.waiting import waiting_for_review as _waiting_for_review
from assetgen.tasks.store.assets import AssetStore, now_utc
from assetgen.tasks.store.runs import new_run_id, run_file

# Jobs pass between tasks by reference in one process: no caching, no result
# persistence (both would serialise every job).
TASK_OPTIONS: dict[str, Any] = {"cache_policy": NONE, "persist_result": False}

plan_jobs = task(plan_manifest, name="plan", **TASK_OPTIONS)
skip_existing = task(_skip_existing, name="skip-existing", **TASK_OPTIONS)
complete_stored = task(_complete_stored, name="complete-stored", **TASK_OPTIONS)
make_shared = task(_make_shared, name="make-shared", **TASK_OPTIONS)
contact_sheet = task(write_contact_sheet, name="contact-sheet", **TASK_OPTIONS)
waiting_for_review = task(_waiting_for_review, name="waiting-for-review", **TASK_OPTIONS)


@task(name="generate", **TASK_OPTIONS)
def generate_images(
    jobs: list[Job],
    cfg: JobConfig,
    store: AssetStore,
    run_id: str,
    started_at: datetime,
    group: str | None = None,
    account_id: str | None = None,
) -> GenerationReport:
    """Send every job through the provider; each image is stored, rendered and catalogued.

    `group`: the run whose cap this shares (the sharded run of a shard, the
    batch-mode run of its online part); `account_id`: its ledger account
    (default: `run_id`).
    """
    progress = Progress(len(jobs), cfg.limits.ipm, cfg.budget.cap_usd)
    kind = "shard" if group and not account_id else "run"
    account = open_account(cfg, store, account_id or run_id, started_at, kind, group)
    with watched(progress, progress_watches(run_id, cfg)):
        return generate(
            jobs,
            cfg,
            store,
            run_id,
            started_at,
            load_price_table(),
            on_outcome=progress.record,
            account=account,
        )


@task(name="submit-batches", **TASK_OPTIONS)
def submit_batches(
    jobs: list[Job], cfg: JobConfig, store: AssetStore, run_id: str, started_at: datetime
) -> SubmitReport:
    """Send every job to OpenAI's Batch API; `assetgen collect` stores the results."""
    return submit(jobs, cfg, store, run_id, started_at, load_price_table())


def send_jobs(
    todo: ToDo,
    planned: Planned,
    cfg: JobConfig,
    store: AssetStore,
    run_id: str,
    started_at: datetime,
    source: str | None,
) -> dict[str, Any]:
    """Generate `todo`'s jobs, or submit them to the Batch API in batch mode; the summary."""
    if cfg.mode != "batch":
        report = generate_images(todo.jobs, cfg, store, run_id, started_at)
        return run_summary(run_id, source, cfg, planned, todo, report)
    batched = [job for job in todo.jobs if job.batchable]
    submitted = submit_batches(batched, cfg, store, run_id, started_at)
    # Edits in sizes the Batch API's JSON edit body does not take go online.
    online = [job for job in todo.jobs if not job.batchable]
    sent = None
    if online:
        online_id = f"{run_id}-online"
        sent = generate_images(online, cfg, store, run_id, started_at, run_id, online_id)
    return batch_run_summary(run_id, source, cfg, planned, todo, submitted, sent)


def finish_run(
    summary: dict[str, Any], todo: ToDo, cfg: JobConfig, store: AssetStore, run_id: str
) -> None:
    """What every run does after sending: the rows' own assets over shared pictures,
    complete stored assets, count what waits for review, write the contact sheet and the
    summary, publish the artifacts."""
    add_shared(summary, make_shared(store, cfg, todo.shared, run_id))
    completed = complete_stored(store, cfg, todo.skipped, run_id) if todo.skipped else 0
    summary["completed_existing"] = completed
    summary["review"] = waiting_for_review(store, cfg, run_id, run_ids_of(summary))
    summary["report"] = contact_sheet(store, summary, todo.skipped)
    store.write_json(run_file(run_id, "summary.json"), summary)
    publish_artifacts(summary)


def add_shared(summary: dict[str, Any], report: SharedReport) -> None:
    """The summary with the sharing rows made (no request, no cost) and those waiting."""
    summary["shared"] = report.made
    summary["shared_waiting"] = report.waiting[:20]
    summary.setdefault("rendition_errors", [])
    summary["rendition_errors"] = [*summary["rendition_errors"], *report.errors]


@flow(name="generate_assets", log_prints=False)
def generate_assets(
    manifest: str,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    fmt: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Generate every valid row of `manifest` into the store; returns the run summary."""
    started_at = now_utc()
    run_id = run_id or new_run_id(started_at)
    cfg = load_job_config(config, overrides)
    store = AssetStore(cfg.store, cfg.store_options)
    planned = plan_jobs(manifest, fmt, cfg, store.uri(run_file(run_id, "rejects.csv")))
    todo = skip_existing(store, planned.jobs)
    summary = send_jobs(todo, planned, cfg, store, run_id, started_at, manifest)
    finish_run(summary, todo, cfg, store, run_id)
    get_run_logger().info(
        "run %s: %d generated, %d submitted in batches, %d failed, %d left for budget, "
        "$%.4f spent, $%.4f reserved in batches",
        run_id,
        summary["generated"],
        summary["submitted"],
        summary["failed"],
        summary["budget_exhausted"],
        summary["cost_usd"],
        summary["batch_reserved_usd"],
    )
    return summary
