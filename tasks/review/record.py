"""Recording decisions: the store first (the truth), then the catalog's review columns."""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from assetgen.tasks.catalog.rows import GENERATED, SUPERSEDED_BY
from assetgen.tasks.catalog.table import commit_reviews, query
from assetgen.tasks.review.decisions import (
    ReviewState,
    Verdict,
    current_state,
    new_decision,
    read_decisions,
    write_decision,
)
from assetgen.tasks.store.assets import SIDECAR, AssetStore, asset_folder

# What a decision needs of an asset's catalog row.
IO_THREADS = 16  # decisions are small files: on S3 the time is round trips
ROW_COLUMNS = ["asset_id", "partition", "status", "original_sha256", "review_state", SUPERSEDED_BY]


class UnknownAsset(ValueError):
    """An asset id that is not a generated asset of the catalog."""


def reviewable(
    store: AssetStore, asset_ids: Iterable[str] = (), where: Iterable[tuple[str, str]] = ()
) -> dict[str, dict[str, Any]]:
    """The generated assets named by `asset_ids` and matching `where`: asset_id -> row.

    Every id must be a generated asset of the catalog (UnknownAsset names the
    ones that are not); with `where` and no ids, every current asset matching.
    """
    ids = list(dict.fromkeys(asset_ids))
    where = list(where)
    if not ids and not where:
        return {}
    table = query(store, where, GENERATED, columns=ROW_COLUMNS, current_only=not ids)
    if ids:
        table = table.filter(pc.is_in(table["asset_id"], pa.array(ids, pa.string())))
    rows = {r["asset_id"]: r for r in table.to_pylist()}
    missing = [a for a in ids if a not in rows]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise UnknownAsset(f"not a generated asset of the catalog: {shown}")
    return rows


def decide(
    store: AssetStore,
    rows: dict[str, dict[str, Any]],
    state: Verdict,
    reviewer: str,
    note: str | None = None,
) -> dict[str, ReviewState]:
    """Record one decision per asset of `rows` (rows from `reviewable`); their states now."""

    def write(item: tuple[str, dict[str, Any]]) -> None:
        asset_id, row = item
        decision = new_decision(asset_id, state, row["original_sha256"], reviewer, note)
        write_decision(store, _folder(asset_id, row), decision)

    with ThreadPoolExecutor(IO_THREADS) as pool:
        list(pool.map(write, rows.items()))
    return sync_catalog(store, rows)


def sync_catalog(store: AssetStore, rows: dict[str, dict[str, Any]]) -> dict[str, ReviewState]:
    """Work out each asset's state from its stored decisions and put it in the catalog.

    From the store, not from the decision just made: another reviewer's later
    decision about the same asset, written meanwhile, is the one that counts.
    """

    def state_of(item: tuple[str, dict[str, Any]]) -> tuple[str, ReviewState]:
        asset_id, row = item
        folder = _folder(asset_id, row)

        def review() -> str:
            return store.read_json(f"{folder}/{SIDECAR}").get("review") or "required"

        return asset_id, current_state(
            read_decisions(store, folder), row["original_sha256"], review
        )

    with ThreadPoolExecutor(IO_THREADS) as pool:
        states = dict(pool.map(state_of, rows.items()))
    commit_reviews(store, states)
    return states


def _folder(asset_id: str, row: dict[str, Any]) -> str:
    return asset_folder(dict(row["partition"] or []), asset_id)
