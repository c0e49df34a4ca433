"""One picture, many rows: each row's own asset over a picture another row paid for.

With overlay renditions, rows whose image-deciding fields are equal share one
paid picture (its asset_id); the planner makes every later row a sharing job
(Job.shares). Here, once that picture is in the store, each sharing job
becomes an asset of its own, without a request and at no cost: a copy of the
original (so every folder stays whole by itself: review, publish, refresh
and rebuild read it as any other) and a sidecar with the row's id and
columns, then its renditions drawn with its own text, and its catalog row.
A picture not stored yet (failed, left for budget, in an open batch) leaves
its sharing rows waiting: the next run makes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from dataclasses import dataclass, field

from assetgen.tasks.catalog.writer import CatalogWriter
from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import Usage
from assetgen.tasks.renditions.postprocess import PostProcessor, rendition_pool
from assetgen.tasks.renditions.signing import signing_material
from assetgen.tasks.store.assets import SIDECAR, AssetStore, Sidecar, now_utc


@dataclass
class SharedReport:
    made: int = 0
    waiting: list[str] = field(default_factory=list)  # rows whose picture is not stored yet
    errors: list[str] = field(default_factory=list)


def shared_sidecar(job: Job, picture: Sidecar, run_id: str) -> Sidecar:
    """The sidecar of `job`'s own asset over `picture`: the picture's facts, the row's own
    id, columns and review; nothing paid, nothing sent."""
    return picture.model_copy(
        update={
            "asset_id": job.asset_id,
            "run_id": run_id,
            "created_at": now_utc(),
            "row": job.row,
            "row_id": job.row_id,
            "variant": job.variant,
            "partition": job.partition,
            "metadata": job.metadata,
            "renditions": [],
            "usage": Usage(),
            "cost_usd": 0.0,
            "request_id": None,
            "latency_s": 0.0,
            "attempts": 0,
            "batch_id": None,
            "review": job.review,
            "revision": 0,
            "revision_of": None,
            "revision_note": None,
            "shares": job.shares,
        }
    )


def make_shared(store: AssetStore, cfg: JobConfig, jobs: list[Job], run_id: str) -> SharedReport:
    """Store, render and catalog every sharing job whose picture is in the store."""
    if not jobs:
        return SharedReport()
    return asyncio.run(_make(store, cfg, jobs, run_id))


async def _make(store: AssetStore, cfg: JobConfig, jobs: list[Job], run_id: str) -> SharedReport:
    report = SharedReport()
    existing = await asyncio.to_thread(store.existing)
    presets = {name: cfg.presets[name] for name in cfg.renditions}
    catalog = CatalogWriter(store, run_id)
    pool = rendition_pool(cfg.render_workers) if presets else None
    with pool or contextlib.nullcontext():
        post = PostProcessor(store, presets, catalog, pool, signing_material(cfg))
        # One picture in memory at a time, however many rows share it.
        by_picture = itertools.groupby(
            sorted(jobs, key=lambda j: j.shares or ""), lambda j: j.shares
        )
        for picture_id, group in by_picture:
            rows = list(group)
            folder = existing.get(picture_id or "")
            if folder is None:
                report.waiting += [
                    f"row {j.row} (id {j.row_id}): waits for picture {picture_id}, not stored yet"
                    for j in rows
                ]
                continue
            try:
                raw = await asyncio.to_thread(store.read_bytes, f"{folder}/{SIDECAR}")
                picture = Sidecar.model_validate_json(raw)
                image = await asyncio.to_thread(store.read_bytes, f"{folder}/{picture.original}")
            except (OSError, ValueError) as e:
                report.errors += [
                    f"row {j.row} (id {j.row_id}): picture {picture_id} unreadable: {e}"
                    for j in rows
                ]
                continue
            for job in rows:
                sidecar = shared_sidecar(job, picture, run_id)
                dest = store.asset_dir(job)
                try:
                    await asyncio.to_thread(
                        store.write_asset, dest, sidecar.original, image, sidecar
                    )
                except OSError as e:
                    report.errors.append(f"row {job.row} (id {job.row_id}): not stored: {e}")
                    continue
                await post.submit(dest, image, sidecar)
                report.made += 1
        await post.drain()
    await asyncio.to_thread(catalog.flush)
    report.errors += post.errors + [f"catalog commit: {e}" for e in catalog.errors]
    return report
