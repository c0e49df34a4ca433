"""The `generate_assets` flow: manifest -> plan -> skip what exists -> generate -> summary."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NONE

from tasks.batch import BatchBook
from tasks.batch_submit import SubmitReport, submit
from tasks.capabilities import load_model_table
from tasks.config import JobConfig, load_job_config
from tasks.dispatch import JobOutcome
from tasks.generate import GenerationReport, generate, open_account
from tasks.manifest import Reject
from tasks.plan import Job, Planner, PlanSummary
from tasks.postprocess import incomplete, refresh_assets
from tasks.pricing import load_price_table
from tasks.progress import DISPLAY, Progress, Snapshot, Watch, watched
from tasks.rejects import rejects_file
from tasks.report import Report, build_report, group_key, report_folder, save_report
from tasks.rows import RowContext
from tasks.store import AssetStore, now_utc

RUNS = "_runs"
ARTIFACT_EVERY_S = 2.0  # progress artifact updates: one API call each
MAX_PARTITIONS = 50  # rows of the by-partition table (a partition per SKU makes thousands)
STATUSES = ("generated", "failed", "budget_exhausted", "stopped")
SUMMED_BY_PARTITION = (*STATUSES, "cost_usd")
EMPTY: dict[str, Any] = {**dict.fromkeys(STATUSES, 0), "cost_usd": 0.0}
NO_PARTITION = "(no partition)"
SAMPLE_IMAGES = 6  # image artifacts per run
SIGNED_FOR_S = 7 * 24 * 3600  # how long their presigned links work (S3's longest)
# Jobs pass between tasks by reference in one process: no caching, no result
# persistence (both would serialise every job).
TASK_OPTIONS: dict[str, Any] = {"cache_policy": NONE, "persist_result": False}


@dataclass
class Planned:
    jobs: list[Job]
    summary: PlanSummary
    rejects_url: str


@dataclass
class ToDo:
    jobs: list[Job]
    skipped: dict[str, str]  # asset_id -> folder of jobs already in the store
    duplicates: int
    pending_in_batch: int = 0  # paid for in a batch not yet collected


def new_run_id(now: datetime) -> str:
    """Sortable and unique: `20261125T101500Z-3fa9c2`."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


@task(name="plan", **TASK_OPTIONS)
def plan_jobs(manifest: str, fmt: str | None, cfg: JobConfig, rejects_url: str) -> Planned:
    """Read and validate the manifest; rejects go to a CSV in the store."""
    planner = Planner(RowContext.build(cfg, load_model_table()), load_price_table())
    summary = PlanSummary()
    jobs: list[Job] = []
    with rejects_file(rejects_url, cfg.store_options) as write_reject:
        for item in planner.plan(manifest, fmt):
            summary.add(item)
            if isinstance(item, Reject):
                write_reject(item)
            else:
                jobs.append(item)
    return Planned(jobs, summary, rejects_url)


@task(name="skip-existing", **TASK_OPTIONS)
def skip_existing(store: AssetStore, jobs: list[Job]) -> ToDo:
    """Drop jobs already stored or waiting in an uncollected batch, and repeated asset_ids."""
    existing = store.existing()
    pending = BatchBook(store).pending_asset_ids()
    seen: set[str] = set()
    todo: list[Job] = []
    skipped: dict[str, str] = {}
    duplicates = in_batch = 0
    for job in jobs:
        if job.asset_id in seen:
            duplicates += 1
        elif job.asset_id in existing:
            skipped[job.asset_id] = existing[job.asset_id]
        elif job.asset_id in pending:
            in_batch += 1
        else:
            todo.append(job)
        seen.add(job.asset_id)
    return ToDo(todo, skipped, duplicates, in_batch)


@task(name="generate", **TASK_OPTIONS)
def generate_images(
    jobs: list[Job],
    cfg: JobConfig,
    store: AssetStore,
    run_id: str,
    started_at: datetime,
    group: str | None = None,
) -> GenerationReport:
    """Send every job through the provider; each image is stored, rendered and catalogued.

    `group`: the sharded run this is a shard of (its run cap is shared by all shards).
    """
    progress = Progress(len(jobs), cfg.limits.ipm, cfg.budget.cap_usd)
    kind = "shard" if group else "run"
    account = open_account(cfg, store, run_id, started_at, kind, group)
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


def progress_watches(run_id: str, cfg: JobConfig) -> list[Watch]:
    """The Prefect progress artifact, and the terminal display or else plain log lines."""
    logger = get_run_logger()
    artifact_id = create_progress_artifact(
        0.0, key="run-progress", description=f"Run {run_id}: starting"
    )

    def to_artifact(s: Snapshot) -> None:
        try:
            update_progress_artifact(
                artifact_id, round(100 * s.fraction, 1), f"Run {run_id}: {s.line()}"
            )
        except Exception as e:  # the run goes on without its progress artifact
            logger.warning("progress artifact not updated: %s", e)

    def to_log(s: Snapshot) -> None:
        logger.info("progress: %s", s.line())

    return [
        Watch(to_artifact, ARTIFACT_EVERY_S),
        DISPLAY.get() or Watch(to_log, cfg.progress_log_s),
    ]


@task(name="submit-batches", **TASK_OPTIONS)
def submit_batches(
    jobs: list[Job], cfg: JobConfig, store: AssetStore, run_id: str, started_at: datetime
) -> SubmitReport:
    """Send every job to OpenAI's Batch API; `assetgen collect` stores the results."""
    return submit(jobs, cfg, store, run_id, started_at, load_price_table())


@task(name="complete-stored", **TASK_OPTIONS)
def complete_stored(store: AssetStore, cfg: JobConfig, skipped: dict[str, str], run_id: str) -> int:
    """Renditions and catalog rows that a killed run left undone for stored assets."""
    presets = {name: cfg.presets[name] for name in cfg.renditions}
    folders = incomplete(store, presets, skipped)
    if folders:
        refresh_assets(store, presets, folders, run_id, cfg.render_workers, missing_only=True)
    return len(folders)


@task(name="contact-sheet", **TASK_OPTIONS)
def contact_sheet(
    store: AssetStore, summary: dict[str, Any], skipped: dict[str, str]
) -> str | None:
    """Write the run's HTML contact sheet and report.json, and link them as artifacts.

    Returns the sheet's URI; None if it could not be written (the images, the
    catalog and summary.json are what matter: the run goes on). Runs after
    complete-stored, so the assets that finished have their catalog rows.
    """
    try:
        report = build_report(store, summary, skipped)
        uri = save_report(store, report)
    except Exception as e:
        get_run_logger().warning("contact sheet not written: %s", e)
        return None
    publish_report_artifacts(store, report, uri)
    return uri


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
    planned = plan_jobs(manifest, fmt, cfg, store.uri(f"{RUNS}/{run_id}/rejects.csv"))
    todo = skip_existing(store, planned.jobs)
    if cfg.mode == "batch":
        submitted = submit_batches(todo.jobs, cfg, store, run_id, started_at)
        summary = batch_run_summary(run_id, manifest, cfg, planned, todo, submitted)
    else:
        report = generate_images(todo.jobs, cfg, store, run_id, started_at)
        summary = run_summary(run_id, manifest, cfg, planned, todo, report)
    completed = complete_stored(store, cfg, todo.skipped, run_id) if todo.skipped else 0
    summary["completed_existing"] = completed
    summary["report"] = contact_sheet(store, summary, todo.skipped)
    store.write_json(f"{RUNS}/{run_id}/summary.json", summary)
    publish_artifacts(summary)
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


def run_summary(
    run_id: str,
    manifest: str,
    cfg: JobConfig,
    planned: Planned,
    todo: ToDo,
    report: GenerationReport,
) -> dict[str, Any]:
    """The run's outcome as one JSON-able dict (the `--json` output)."""
    return {
        **plan_part(run_id, manifest, cfg, planned, todo),
        **outcome_counts(report.outcomes),
        "stop_reason": report.stop_reason,
        "interrupted": report.interrupted,
        "cost_usd": round(report.spent_usd, 6),
        "uncertain_cost_usd": round(report.uncertain_usd, 6),
        "budget_usd": report.cap_usd,
        "period": report.period,
        "estimate_usd": round(planned.summary.cost.expected, 6),
        "requests": report.requests_sent,
        "errors": dict(report.errors),
        "rendition_errors": report.rendition_errors[:10],
        "catalog_rows": report.catalog_rows,
        "submitted": 0,
        "batches": [],
        "batch_reserved_usd": 0.0,
        "seconds": round(report.seconds, 3),
    }


def batch_run_summary(
    run_id: str,
    manifest: str,
    cfg: JobConfig,
    planned: Planned,
    todo: ToDo,
    report: SubmitReport,
) -> dict[str, Any]:
    """A batch-mode run: what was submitted, where it is recorded, what it may cost."""
    return {
        **plan_part(run_id, manifest, cfg, planned, todo),
        **outcome_counts(report.outcomes),
        "stop_reason": report.stop_reason,
        "interrupted": False,
        "cost_usd": 0.0,
        "uncertain_cost_usd": 0.0,
        "budget_usd": report.cap_usd,
        "period": report.period,
        "estimate_usd": round(planned.summary.batch_cost(load_price_table()).expected, 6),
        "requests": 0,
        "errors": {},
        "rendition_errors": [],
        "catalog_rows": 0,
        "submitted": report.submitted,
        "batches": [
            {"key": b.key, "batch_id": b.batch_id, "jobs": len(b.asset_ids), "state": b.state}
            for b in report.batches
        ],
        "batch_reserved_usd": round(report.reserved_usd, 6),
        "seconds": round(report.seconds, 3),
    }


def outcome_counts(outcomes: list[JobOutcome]) -> dict[str, Any]:
    """Jobs by final status and by partition, and the most frequent failure reasons."""
    by_status = Counter(o.status for o in outcomes)
    failures = Counter(o.reason for o in outcomes if o.status == "failed")
    return {
        "generated": by_status["generated"],
        "failed": by_status["failed"],
        "budget_exhausted": by_status["budget_exhausted"],
        "stopped": by_status["stopped"],
        "top_failures": [{"reason": r, "count": n} for r, n in failures.most_common(10)],
        "partitions": partition_counts(outcomes),
    }


def partition_counts(outcomes: list[JobOutcome]) -> list[dict[str, Any]]:
    """Jobs by status and spend per partition (see merge_partitions)."""
    return merge_partitions(
        {
            "partition": group_key(o.job.partition) or NO_PARTITION,
            o.status: 1,
            "cost_usd": o.cost_usd,
        }
        for o in outcomes
    )


def merge_partitions(counts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of the same partition summed; the biggest MAX_PARTITIONS - 1, then the rest as one."""
    merged: dict[str, dict[str, Any]] = {}
    for count in counts:
        row = merged.setdefault(count["partition"], {"partition": count["partition"], **EMPTY})
        for key in SUMMED_BY_PARTITION:
            row[key] += count.get(key, 0)
    ranked = sorted(merged.values(), key=lambda r: (-sum(r[k] for k in STATUSES), r["partition"]))
    if len(ranked) > MAX_PARTITIONS:
        rest = ranked[MAX_PARTITIONS - 1 :]
        label = f"({len(rest)} other partitions)"
        ranked = [
            *ranked[: MAX_PARTITIONS - 1],
            *merge_partitions({**r, "partition": label} for r in rest),
        ]
    return [{**r, "cost_usd": round(r["cost_usd"], 6)} for r in ranked]


def plan_part(
    run_id: str, manifest: str, cfg: JobConfig, planned: Planned, todo: ToDo
) -> dict[str, Any]:
    """The summary's facts about the plan: rows, jobs, what was skipped."""
    plan = planned.summary
    return {
        "run_id": run_id,
        "mode": cfg.mode,
        "manifest": manifest,
        "store": cfg.store,
        "provider": cfg.provider,
        "rows": plan.rows,
        "valid": plan.valid_rows,
        "rejected": plan.rejected_rows,
        "jobs": plan.jobs,
        "duplicates": todo.duplicates,
        "skipped_existing": len(todo.skipped),
        "pending_in_batch": todo.pending_in_batch,
        "rejects_file": planned.rejects_url,
    }


def publish_report_artifacts(store: AssetStore, report: Report, index_uri: str) -> None:
    """A link to the contact sheet, and a sample of the run's images.

    Image artifacts need a URL the browser showing Prefect's UI can fetch: an
    S3 store signs one per image; a local store has only file:// paths, which
    browsers do not load from a web page, so the sample is a list of links.
    """
    index = f"{report_folder(report.run_id)}/index.html"
    where = Path(store.path(index)).resolve().as_uri() if store.is_local else index_uri
    create_link_artifact(
        where, link_text=f"Contact sheet of run {report.run_id}", key="run-contact-sheet"
    )
    sample = [e for e in report.entries if e.status == "generated" and e.thumbnail_path]
    sample = sample[:SAMPLE_IMAGES]
    if store.is_local:
        lines = [f"# Sample of run {report.run_id}"]
        lines += [  # nothing from the manifest: the UI renders markdown
            f"- [{e.asset_id}]({Path(store.path(e.thumbnail_path)).resolve().as_uri()})"
            for e in sample
        ]
        create_markdown_artifact("\n".join(lines), key="run-sample")
        return
    for i, entry in enumerate(sample):
        try:
            url = store.fs.sign(store.path(entry.thumbnail_path), expiration=SIGNED_FOR_S)
        except NotImplementedError:  # a filesystem that cannot sign links
            return
        create_image_artifact(url, key=f"run-sample-{i + 1}", description=f"asset {entry.asset_id}")


def publish_artifacts(s: dict[str, Any]) -> None:
    """The run's outcome table and cost-vs-budget summary as Prefect artifacts."""
    rows = [
        {"status": k, "jobs": s[k]}
        for k in (
            "generated",
            "submitted",
            "skipped_existing",
            "pending_in_batch",
            "failed",
            "budget_exhausted",
            "stopped",
        )
    ]
    create_table_artifact(rows, key="run-outcome", description=f"Outcome of run {s['run_id']}")
    if s["partitions"]:
        create_table_artifact(
            s["partitions"],
            key="run-partitions",
            description=f"Jobs and spend by partition, run {s['run_id']}",
        )
    budget = "no cap" if s["budget_usd"] is None else f"${s['budget_usd']:.4f}"
    lines = [
        f"# Run {s['run_id']}",
        f"- spent **${s['cost_usd']:.4f}** of {budget} (estimate ${s['estimate_usd']:.4f})",
        f"- {s['generated']} generated, {s['skipped_existing']} already in the store, "
        f"{s['failed']} failed, {s['budget_exhausted']} left for budget, {s['rejected']} rows "
        "rejected",
    ]
    if s["submitted"]:
        lines.append(
            f"- {s['submitted']} submitted in {len(s['batches'])} batches, "
            f"${s['batch_reserved_usd']:.4f} reserved at the batch price; `assetgen collect` "
            "stores the results"
        )
    if s.get("report"):
        lines.append(f"- contact sheet: {s['report']}")
    if s["stop_reason"]:
        lines.append(f"- **run stopped**: {s['stop_reason']}")
    lines += [f"- {f['count']} x {f['reason']}" for f in s["top_failures"]]
    create_markdown_artifact("\n".join(lines), key="run-summary", description="Cost vs budget")
