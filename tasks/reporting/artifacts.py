"""A run's Prefect artifacts: live progress, outcome and partition tables, summary, samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.reporting.contact_sheet import Report, build_report, report_folder, save_report
from assetgen.tasks.reporting.progress import DISPLAY, Snapshot, Watch
from assetgen.tasks.store.assets import AssetStore

ARTIFACT_EVERY_S = 2.0  # progress artifact updates: one API call each
SAMPLE_IMAGES = 6  # image artifacts per run
SIGNED_FOR_S = 7 * 24 * 3600  # how long their presigned links work (S3's longest)


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


def write_contact_sheet(
    store: AssetStore, summary: dict[str, Any], skipped: dict[str, str]
) -> str | None:
    """Write the run's HTML contact sheet and report.json, and link them as artifacts.

    Returns the sheet's URI; None if it could not be written (the images, the
    catalog and summary.json are what matter: the run goes on). Call it after
    the stored assets are complete, so that they have their catalog rows.
    """
    try:
        report = build_report(store, summary, skipped)
        uri = save_report(store, report)
    except Exception as e:
        get_run_logger().warning("contact sheet not written: %s", e)
        return None
    publish_report_artifacts(store, report, uri)
    return uri


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
    if s.get("provenance"):
        lines.append(f"- {s['provenance']}")
    if (review := s.get("review") or {}).get("pending"):
        lines.append(f"- **{review['pending']} wait for review**: `{review['command']}`")
    if s["stop_reason"]:
        lines.append(f"- **run stopped**: {s['stop_reason']}")
    lines += [f"- {f['count']} x {f['reason']}" for f in s["top_failures"]]
    create_markdown_artifact("\n".join(lines), key="run-summary", description="Cost vs budget")
