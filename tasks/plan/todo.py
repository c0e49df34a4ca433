"""What a run has to do: the manifest's jobs, less what the store has or an open batch holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from assetgen.tasks.batch.records import BatchBook
from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.config.models import load_model_table
from assetgen.tasks.manifest.read import Reject
from assetgen.tasks.manifest.rejects import rejects_file
from assetgen.tasks.manifest.rows import RowContext
from assetgen.tasks.plan.jobs import Job, Planner, PlanSummary
from assetgen.tasks.plan.pricing import load_price_table
from assetgen.tasks.store.assets import AssetStore


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
    # Rows' own assets over another row's stored picture (Job.shares), not in the store
    # yet: made without a request once the picture is there (tasks/generation/shared.py).
    shared: list[Job] = field(default_factory=list)


def plan_manifest(manifest: str, fmt: str | None, cfg: JobConfig, rejects_url: str) -> Planned:
    """Read and validate the manifest into jobs; every reject goes to the CSV at `rejects_url`."""
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


def skip_existing(store: AssetStore, jobs: list[Job]) -> ToDo:
    """Drop jobs already stored or waiting in an uncollected batch, and repeated asset_ids."""
    existing = store.existing()
    pending = BatchBook(store).pending_asset_ids()
    seen: set[str] = set()
    todo: list[Job] = []
    skipped: dict[str, str] = {}
    shared: list[Job] = []
    duplicates = in_batch = 0
    for job in jobs:
        if job.asset_id in seen:
            duplicates += 1
        elif job.asset_id in existing:
            skipped[job.asset_id] = existing[job.asset_id]
        elif job.shares is not None:
            shared.append(job)  # never sent: its picture is another job's
        elif job.asset_id in pending:
            in_batch += 1
        else:
            todo.append(job)
        seen.add(job.asset_id)
    return ToDo(todo, skipped, duplicates, in_batch, shared)
