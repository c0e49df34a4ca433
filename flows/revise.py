"""The `revise_rejected` flow: rejected assets -> revision jobs -> skip what exists -> generate.

A run like `generate_assets`, its jobs planned from the store's rejected,
current assets instead of a manifest (tasks/revise); the same tasks send,
store, render, catalog and report them.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger, task

from assetgen.flows.generate import TASK_OPTIONS, finish_run, send_jobs, skip_existing
from assetgen.tasks.config.job import load_job_config
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.revise.plan import SOURCE, plan_revise, revise_part
from assetgen.tasks.store.assets import AssetStore, now_utc
from assetgen.tasks.store.runs import new_run_id, run_file

plan_revisions = task(plan_revise, name="plan-revisions", **TASK_OPTIONS)


@flow(name="revise_rejected", log_prints=False)
def revise_rejected(
    config: str | None = None,
    overrides: dict[str, Any] | None = None,
    where: dict[str, str] | None = None,
    how: Literal["prompt", "edit"] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """A new version of every rejected, current asset (matching `where`); the run summary.

    `how`: edit the rejected image with the reviewer's note, or add the note to
    the prompt [default: the config's `revise.how`].
    """
    started_at = now_utc()
    run_id = run_id or new_run_id(started_at)
    cfg = load_job_config(config, {**(overrides or {}), **({"revise.how": how} if how else {})})
    store = AssetStore(cfg.store, cfg.store_options)
    rejects = store.uri(run_file(run_id, "rejects.csv"))
    planned, plan = plan_revisions(store, cfg, list((where or {}).items()), rejects)
    logger = get_run_logger()
    batch = cfg.mode == "batch"
    cost = planned.summary.batch_cost(load_price_table()) if batch else planned.summary.cost
    logger.info(
        "revise %s: %d rejected, %d revisions planned (%s), %d past max_revisions, %d refused; "
        "estimate $%.4f, worst case $%.4f",
        run_id,
        plan.selected,
        len(plan.jobs),
        cfg.revise.how,
        len(plan.over_max),
        len(plan.refused),
        cost.expected,
        cost.worst,
    )
    todo = skip_existing(store, planned.jobs)
    summary = send_jobs(todo, planned, cfg, store, run_id, started_at, SOURCE)
    summary |= revise_part(plan, cfg)
    finish_run(summary, todo, cfg, store, run_id)
    logger.info(
        "revise %s: %d generated, %d submitted in batches, %d failed, %d left for budget, "
        "$%.4f spent",
        run_id,
        summary["generated"],
        summary["submitted"],
        summary["failed"],
        summary["budget_exhausted"],
        summary["cost_usd"],
    )
    return summary
