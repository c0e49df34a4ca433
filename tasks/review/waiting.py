"""How many of a run's assets wait for review, and the command that opens them."""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from assetgen.tasks.catalog.table import read_catalog
from assetgen.tasks.config.job import JobConfig
from assetgen.tasks.store.assets import AssetStore


def waiting_for_review(
    store: AssetStore, cfg: JobConfig, run_id: str, run_ids: Iterable[str]
) -> dict[str, Any]:
    """The summary's `review`: required or off, the run's assets still pending, the command."""
    if cfg.review == "off":
        return {"required": False, "pending": 0, "command": None}
    ids = pa.array(sorted(set(run_ids)), pa.string())
    table = read_catalog(
        store,
        columns=["run_id", "status", "review_state", "superseded_by"],
        filter=pc.field("run_id").isin(ids),
    )
    pending = table.filter(
        pc.and_(pc.equal(table["review_state"], "pending"), pc.is_null(table["superseded_by"]))
    ).num_rows
    command = f"assetgen review serve --store {shlex.quote(cfg.store)} --run {run_id}"
    return {"required": True, "pending": pending, "command": command}
