"""Scale-out: plan once, split the jobs into shards, run each shard on a Prefect work pool.

The parent (`generate_sharded`) plans the manifest, drops what the store
already has, splits the rest by asset_id (a repeated image always lands in
one shard, so it is never paid twice) and writes each shard's jobs into the
shared store. Each shard is a run of the `generate_shard` deployment, picked
up by any worker of the pool, with its share of the rate limit (the shares
add up to the run's); all shards claim their money from the run's one cap in
the store's ledger. The parent waits and merges the shard summaries into one.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.states import StateType

from assetgen.flows.generate import (
    TASK_OPTIONS,
    add_shared,
    complete_stored,
    contact_sheet,
    generate_images,
    make_shared,
    plan_jobs,
    skip_existing,
    waiting_for_review,
)
from assetgen.tasks.config.job import ConfigError, JobConfig, load_job_config
from assetgen.tasks.generation.run import open_account, period_figures
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.reporting.artifacts import publish_artifacts
from assetgen.tasks.reporting.contact_sheet import run_ids_of
from assetgen.tasks.reporting.summary import merge_partitions, outcome_counts, plan_part
from assetgen.tasks.store.assets import AssetStore, now_utc
from assetgen.tasks.store.runs import RUNS, new_run_id

SHARD_DEPLOYMENT = "generate_shard/generate-shard"
POLL_S = 2.0
FINAL_STATES = {StateType.COMPLETED, StateType.FAILED, StateType.CRASHED, StateType.CANCELLED}
# Counts summed over shards into the run's summary.
SUMMED = (
    "generated",
    "failed",
    "budget_exhausted",
    "stopped",
    "skipped_existing",
    "pending_in_batch",
    "requests",
    "catalog_rows",
)


def shard_of(asset_id: str, shards: int) -> int:
    """Which shard an asset belongs to (stable: the same asset, the same shard)."""
    return int(asset_id[:12], 36) % shards


def shard_overrides(cfg: JobConfig, overrides: dict[str, Any], shards: int) -> dict[str, Any]:
    """A shard's config: its share of the rate (shares sum to the run's).

    The budget is not split: every shard claims from the run's one cap in
    the store's ledger (its account is in the run's group), so money goes
    where the work is and the shards together never pass the cap.
    """
    limits = cfg.limits
    mine = dict(overrides)
    mine["limits.ipm"] = limits.ipm / shards
    if limits.rpm is not None:
        mine["limits.rpm"] = limits.rpm / shards
    if limits.concurrency is not None:
        mine["limits.concurrency"] = max(1, limits.concurrency // shards)
    return mine


def jobs_path(run_id: str, shard: int) -> str:
    return f"{RUNS}/{run_id}/shards/{shard}/jobs.jsonl"


def summary_path(run_id: str, shard: int) -> str:
    return f"{RUNS}/{run_id}/shards/{shard}/summary.json"


@task(name="write-shards", **TASK_OPTIONS)
def write_shards(store: AssetStore, run_id: str, jobs: list[Job], shards: int) -> list[int]:
    """Each shard's jobs into the store; returns how many each has."""
    parts: list[list[Job]] = [[] for _ in range(shards)]
    for job in jobs:
        parts[shard_of(job.asset_id, shards)].append(job)
    for i, part in enumerate(parts):
        data = "".join(job.model_dump_json() + "\n" for job in part).encode()
        store.write_bytes(jobs_path(run_id, i), data)
    return [len(part) for part in parts]


def _start(deployment: str, parameters: list[dict[str, Any]], run_id: str) -> list[FlowRun]:
    return [
        run_deployment(
            deployment,
            parameters=params,
            timeout=0,
            # A restarted parent finds its shard runs instead of starting more.
            idempotency_key=f"{run_id}-shard-{i}",
            flow_run_name=f"{run_id}-shard-{i}",
        )
        for i, params in enumerate(parameters)
    ]


@task(name="run-shards", **TASK_OPTIONS)
def run_shards(deployment: str, parameters: list[dict[str, Any]], run_id: str) -> dict[int, str]:
    """Start every shard's flow run, then wait for all; returns each shard's final state."""
    try:
        runs = _start(deployment, parameters, run_id)
    except ObjectNotFound:
        raise ConfigError(
            f"no deployment {deployment} on the Prefect server: deploy deployments/prefect.yaml "
            "and start workers on its pool (README: Deploying)"
        ) from None
    states: dict[int, str] = {}
    with get_client(sync_client=True) as client:
        while len(states) < len(runs):
            for i, run in enumerate(runs):
                if i not in states:
                    state = client.read_flow_run(run.id).state
                    if state is not None and state.type in FINAL_STATES:
                        states[i] = state.name
            if len(states) < len(runs):
                time.sleep(POLL_S)
    return states


@flow(name="generate_sharded", log_prints=False)
def generate_sharded(
    manifest: str,
    shards: int,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    fmt: str | None = None,
    deployment: str = SHARD_DEPLOYMENT,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Generate `manifest` as `shards` runs of `deployment` on its work pool; one summary."""
    if shards < 1:
        raise ConfigError("shards must be at least 1")
    started, started_at = time.monotonic(), now_utc()
    run_id = run_id or new_run_id(started_at)
    overrides = overrides or {}
    cfg = load_job_config(config, overrides)
    if cfg.mode == "batch":
        raise ConfigError("batch mode needs no shards: the Batch API does the fan-out")
    store = AssetStore(cfg.store, cfg.store_options)
    logger = get_run_logger()
    warnings = []
    if store.is_local:
        warnings.append(
            f"the store {cfg.store} is a local folder: only workers on this machine can "
            "write to it; use a shared store (s3://...) for workers on other machines"
        )
        logger.warning(warnings[-1])
    # The parent spends nothing itself; its account only reads the period's figures.
    account = open_account(cfg, store, run_id, started_at)
    before = account.period_total()
    planned = plan_jobs(manifest, fmt, cfg, store.uri(f"{RUNS}/{run_id}/rejects.csv"))
    todo = skip_existing(store, planned.jobs)
    write_shards(store, run_id, todo.jobs, shards)
    parameters = [
        {
            "jobs": jobs_path(run_id, i),
            "config": config,
            "overrides": shard_overrides(cfg, overrides, shards),
            "run_id": run_id,
            "shard": i,
            "started_at": started_at.isoformat(),
        }
        for i in range(shards)
    ]
    states = run_shards(deployment, parameters, run_id)
    completed = complete_stored(store, cfg, todo.skipped, run_id) if todo.skipped else 0
    summary = merge_shards(store, run_id, states)
    # Rows sharing a picture a shard paid for: made here, once the shards are done.
    add_shared(summary, make_shared(store, cfg, todo.shared, run_id))
    plan = plan_part(run_id, manifest, cfg, planned, todo)
    summary |= {
        **plan,
        "skipped_existing": summary["skipped_existing"] + plan["skipped_existing"],
        "pending_in_batch": summary["pending_in_batch"] + plan["pending_in_batch"],
        "budget_usd": cfg.budget.cap_usd,
        "period": period_figures(account, before),
        "ipm": cfg.limits.ipm,
        "estimate_usd": round(planned.summary.cost.expected, 6),
        "completed_existing": completed,
        "warnings": warnings,
        "seconds": round(time.monotonic() - started, 3),
    }
    summary["review"] = waiting_for_review(store, cfg, run_id, run_ids_of(summary))
    summary["report"] = contact_sheet(store, summary, todo.skipped)
    store.write_json(f"{RUNS}/{run_id}/summary.json", summary)
    publish_artifacts(summary)
    logger.info(
        "sharded run %s: %d shards, %d generated, %d failed, $%.4f spent",
        run_id,
        shards,
        summary["generated"],
        summary["failed"],
        summary["cost_usd"],
    )
    return summary


def merge_shards(store: AssetStore, run_id: str, states: dict[int, str]) -> dict[str, Any]:
    """The shard summaries as one; a shard that left no summary is reported, not hidden."""
    merged: dict[str, Any] = {key: 0 for key in SUMMED}
    merged |= {
        "cost_usd": 0.0,
        "uncertain_cost_usd": 0.0,
        "errors": Counter(),
        "stop_reason": None,
        "interrupted": False,
        "submitted": 0,
        "batches": [],
        "batch_reserved_usd": 0.0,
        "rendition_errors": [],
        "shards": [],
    }
    failures: Counter[str] = Counter()
    partitions: list[dict[str, Any]] = []
    for i, state in sorted(states.items()):
        try:
            s = store.read_json(summary_path(run_id, i))
        except FileNotFoundError:
            merged["shards"].append({"shard": i, "state": state, "summary": None})
            merged["stop_reason"] = merged["stop_reason"] or f"shard {i} ended {state}"
            continue
        for key in SUMMED:
            merged[key] += s[key]
        merged["cost_usd"] += s["cost_usd"]
        merged["uncertain_cost_usd"] += s["uncertain_cost_usd"]
        merged["errors"].update(s["errors"])
        merged["stop_reason"] = merged["stop_reason"] or s["stop_reason"]
        merged["interrupted"] = merged["interrupted"] or s["interrupted"]
        merged["rendition_errors"] += s["rendition_errors"]
        failures.update({f["reason"]: f["count"] for f in s["top_failures"]})
        partitions += s["partitions"]
        merged["shards"].append(
            {
                "shard": i,
                "state": state,
                "worker": s["worker"],
                "generated": s["generated"],
                "failed": s["failed"],
                "cost_usd": s["cost_usd"],
                "budget_usd": s["budget_usd"],
                "ipm": s["ipm"],
                "seconds": s["seconds"],
            }
        )
    merged["errors"] = dict(merged["errors"])
    merged["cost_usd"] = round(merged["cost_usd"], 6)
    merged["top_failures"] = [{"reason": r, "count": n} for r, n in failures.most_common(10)]
    merged["rendition_errors"] = merged["rendition_errors"][:10]
    merged["partitions"] = merge_partitions(partitions)
    return merged


@flow(name="generate_shard", log_prints=False)
def generate_shard(
    jobs: str,
    run_id: str,
    shard: int,
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    started_at: str | None = None,
) -> dict[str, Any]:
    """One shard of a sharded run: the jobs at `jobs` (a path in the store), nothing else.

    `started_at` (ISO 8601): when the sharded run started; its spend counts in
    that period, whenever the shard runs.
    """
    started = datetime.fromisoformat(started_at) if started_at else now_utc()
    cfg = load_job_config(config, overrides)
    store = AssetStore(cfg.store, cfg.store_options)
    mine = [Job.model_validate_json(line) for line in store.read_bytes(jobs).splitlines() if line]
    # Checked again here: another run may have made some of them meanwhile.
    todo = skip_existing(store, mine)
    shard_run = f"{run_id}-s{shard}"
    report = generate_images(todo.jobs, cfg, store, shard_run, started, group=run_id)
    summary = {
        "run_id": shard_run,
        "shard": shard,
        # Which machine ran it: ASSETGEN_WORKER if the worker's environment names it.
        "worker": os.environ.get("ASSETGEN_WORKER") or f"{socket.gethostname()}:{os.getpid()}",
        **outcome_counts(report.outcomes),
        "skipped_existing": len(todo.skipped),
        "pending_in_batch": todo.pending_in_batch,
        "stop_reason": report.stop_reason,
        "interrupted": report.interrupted,
        "cost_usd": round(report.spent_usd, 6),
        "uncertain_cost_usd": round(report.uncertain_usd, 6),
        "budget_usd": report.cap_usd,
        "ipm": cfg.limits.ipm,
        "requests": report.requests_sent,
        "errors": dict(report.errors),
        "rendition_errors": report.rendition_errors[:10],
        "catalog_rows": report.catalog_rows,
        "seconds": round(report.seconds, 3),
    }
    store.write_json(summary_path(run_id, shard), summary)
    get_run_logger().info(
        "shard %d of run %s: %d generated, $%.4f",
        shard,
        run_id,
        summary["generated"],
        summary["cost_usd"],
    )
    return summary
