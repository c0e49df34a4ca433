"""A revise run's plan: rejected assets to revision jobs, counted and priced like a manifest's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.config.models import load_model_table
from assetgen.tasks.manifest.rejects import rejects_file
from assetgen.tasks.plan.jobs import PlanSummary
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.plan.todo import Planned
from assetgen.tasks.revise.jobs import How, RevisionPlan, plan_revisions, revision_rows
from assetgen.tasks.revise.select import rejected_assets
from assetgen.tasks.store.assets import AssetStore

SOURCE = "revise"  # the summary's `source`: what a run read its jobs from
MAX_LISTED = 200  # revisions listed one by one in a summary


def plan_revise(
    store: AssetStore,
    cfg: JobConfig,
    where: Iterable[tuple[str, str]] = (),
    rejects_url: str | None = None,
    how: How | None = None,
) -> tuple[Planned, RevisionPlan]:
    """The revision jobs of every rejected, current asset matching `where`, as a plan.

    Assets that get no revision (past max_revisions, inputs gone or changed) are
    lines of the rejects file at `rejects_url` (None: none is written).
    """
    rejected = rejected_assets(store, where)
    plan = plan_revisions(store, rejected, cfg, load_model_table(), load_price_table(), how)
    summary = PlanSummary()
    for job in plan.jobs:
        summary.add(job)
    not_revised = [*plan.over_max, *plan.refused]
    for refusal in not_revised:
        key = (refusal.reject().column or "(row)", refusal.code)
        summary.reasons[key] += 1
        summary.examples.setdefault(key, refusal.reject())
    # Counted by asset, not by manifest row: a rejected asset is a "row" of this plan.
    summary.rows = plan.selected
    summary.valid_rows = plan.selected - len(not_revised)
    summary.rejected_rows = len(not_revised)
    if rejects_url is not None:
        with rejects_file(rejects_url, cfg.store_options) as write:
            for refusal in not_revised:
                write(refusal.reject())
    return Planned(plan.jobs, summary, rejects_url or ""), plan


def revise_part(plan: RevisionPlan, cfg: JobConfig) -> dict[str, Any]:
    """What a revise summary has besides a run's: what was revised, from what, and what not."""
    rows = revision_rows(plan)
    return {
        "source": SOURCE,
        "manifest": None,
        "how": cfg.revise.how,
        "max_revisions": cfg.revise.max_revisions,
        "revised_from": plan.counts,
        "over_max_revisions": [r.asset_id for r in plan.over_max],
        "refused": [
            {"asset_id": r.asset_id, "row_id": r.row_id, "code": r.code, "reason": r.reason}
            for r in plan.refused
        ],
        "revisions": rows[:MAX_LISTED],
        "revisions_not_listed": max(0, len(rows) - MAX_LISTED),
    }
