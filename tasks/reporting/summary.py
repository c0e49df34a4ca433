"""A run's summary: one JSON-able dict (`run --json`, `_runs/<run_id>/summary.json`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from assetgen.tasks.batch.submit import SubmitReport
from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.generation.dispatch import JobOutcome
from assetgen.tasks.generation.run import GenerationReport
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.plan.todo import Planned, ToDo
from assetgen.tasks.reporting.cards import group_key

MAX_PARTITIONS = 50  # rows of the by-partition table (a partition per SKU makes thousands)
STATUSES = ("generated", "failed", "budget_exhausted", "stopped")
SUMMED_BY_PARTITION = (*STATUSES, "cost_usd")
EMPTY: dict[str, Any] = {**dict.fromkeys(STATUSES, 0), "cost_usd": 0.0}
NO_PARTITION = "(no partition)"


def run_summary(
    run_id: str,
    manifest: str | None,
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
        "provenance": report.provenance,
        "catalog_rows": report.catalog_rows,
        "sent_online": 0,
        "submitted": 0,
        "batches": [],
        "batch_reserved_usd": 0.0,
        "seconds": round(report.seconds, 3),
    }


def batch_run_summary(
    run_id: str,
    manifest: str | None,
    cfg: JobConfig,
    planned: Planned,
    todo: ToDo,
    report: SubmitReport,
    online: GenerationReport | None = None,
) -> dict[str, Any]:
    """A batch-mode run: what was submitted, where it is recorded, what it may cost.

    `online`: the jobs the Batch API cannot take (Job.batchable), sent online.
    """
    sent = online or GenerationReport(outcomes=[])
    return {
        **plan_part(run_id, manifest, cfg, planned, todo),
        **outcome_counts(report.outcomes + sent.outcomes),
        "stop_reason": report.stop_reason or sent.stop_reason,
        "interrupted": sent.interrupted,
        "cost_usd": round(sent.spent_usd, 6),
        "uncertain_cost_usd": round(sent.uncertain_usd, 6),
        "budget_usd": report.cap_usd,
        # The online part ran last: its figures include the batches' holds.
        "period": sent.period if online else report.period,
        "estimate_usd": round(planned.summary.batch_cost(load_price_table()).expected, 6),
        "requests": sent.requests_sent,
        "errors": dict(sent.errors),
        "rendition_errors": sent.rendition_errors[:10],
        "catalog_rows": sent.catalog_rows,
        "sent_online": len(sent.outcomes),
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
    run_id: str, manifest: str | None, cfg: JobConfig, planned: Planned, todo: ToDo
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
