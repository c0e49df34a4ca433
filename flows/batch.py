"""The `collect_batches` flow: store what finished batches made, settle what they cost."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from assetgen.flows.generate import TASK_OPTIONS, complete_stored
from assetgen.tasks.batch.collect import CollectReport, collect
from assetgen.tasks.batch.records import BatchRecord
from assetgen.tasks.config.job import JobConfig, load_job_config
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.reporting.contact_sheet import listed_existing_ids, write_report
from assetgen.tasks.store.assets import AssetStore, now_utc
from assetgen.tasks.store.runs import RUNS, new_run_id


@task(name="collect", **TASK_OPTIONS)
def collect_results(cfg: JobConfig, store: AssetStore, run_id: str, wait: bool) -> CollectReport:
    """Every finished batch: originals, sidecars, renditions, catalog rows, spend."""
    return collect(store, cfg, load_price_table(), run_id, wait=wait)


@flow(name="collect_batches", log_prints=False)
def collect_batches(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    wait: bool = False,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Collect the store's finished batches (with `wait`: until none is left open)."""
    run_id = run_id or new_run_id(now_utc())
    cfg = load_job_config(config, overrides)
    store = AssetStore(cfg.store, cfg.store_options)
    report = collect_results(cfg, store, run_id, wait)
    completed = 0
    if report.stored_before:
        completed = complete_stored(store, cfg, report.stored_before, run_id)
    summary = collect_summary(run_id, cfg, report)
    summary["completed_existing"] = completed
    summary["reports"] = contact_sheets(store, {b.run_id for b in report.collected})
    if report.collected or report.abandoned or report.errors:
        store.write_json(f"{RUNS}/{run_id}/summary.json", summary)
        create_markdown_artifact(
            _markdown(summary), key="collect-summary", description="Batches collected"
        )
    get_run_logger().info(
        "collect %s: %d batches collected, %d waiting; %d generated, %d failed, %d returned, "
        "$%.4f spent",
        run_id,
        len(report.collected),
        len(report.waiting),
        report.generated,
        report.failed,
        report.returned,
        report.spent_usd,
    )
    return summary


@task(name="contact-sheets", **TASK_OPTIONS)
def contact_sheets(store: AssetStore, run_ids: set[str]) -> dict[str, str]:
    """The contact sheets of the runs that submitted the collected batches, now with images."""
    sheets = {}
    for run_id in sorted(run_ids):
        try:
            summary = store.read_json(f"{RUNS}/{run_id}/summary.json")
            sheets[run_id] = write_report(store, summary, listed_existing_ids(store, run_id))
        except Exception as e:  # the images and the catalog are what matter
            get_run_logger().warning("contact sheet of run %s not written: %s", run_id, e)
    return sheets


def collect_summary(run_id: str, cfg: JobConfig, r: CollectReport) -> dict[str, Any]:
    """One collect as a JSON-able dict (the `--json` output)."""
    return {
        "run_id": run_id,
        "store": cfg.store,
        "collected": [_batch(b) for b in r.collected],
        "waiting": [_batch(b) for b in r.waiting],
        "abandoned": [_batch(b) for b in r.abandoned],
        "generated": r.generated,
        "already_stored": len(r.stored_before),
        "failed": r.failed,
        "returned": r.returned,
        "cost_usd": round(r.spent_usd, 6),
        "top_failures": r.failures[:10],
        "errors": r.errors,
        "rendition_errors": r.rendition_errors[:10],
        "catalog_rows": r.catalog_rows,
        "seconds": round(r.seconds, 3),
    }


def _batch(b: BatchRecord) -> dict[str, Any]:
    return {
        "key": b.key,
        "batch_id": b.batch_id,
        "state": b.state,
        "status": b.status,
        "jobs": len(b.asset_ids),
        "generated": b.generated,
        "failed": b.failed,
        "returned": b.returned,
        "reserved_usd": round(b.reserved_usd, 6),
        "spent_usd": round(b.spent_usd, 6),
    }


def _markdown(s: dict[str, Any]) -> str:
    lines = [
        f"# Collect {s['run_id']}",
        f"- {len(s['collected'])} batches collected, {len(s['waiting'])} still running",
        f"- {s['generated']} images stored, {s['failed']} failed, {s['returned']} returned to "
        f"the plan; spent **${s['cost_usd']:.4f}** at the batch price",
    ]
    lines += [f"- {failure}" for failure in s["top_failures"]]
    lines += [f"- error: {error}" for error in s["errors"]]
    return "\n".join(lines)
