"""Review decisions: what a reviewer said of one original, kept in the store as the truth.

Each decision is its own file, `<asset folder>/reviews/<time>-<nonce>.json`,
created whole and never changed, so two reviewers deciding at once both
keep theirs and the history of an asset is its folder. The latest decision
about the asset's current bytes (sha256) is its state; an asset without
one is `pending` (or `approved` where its job config said `review: off`).
"""

from __future__ import annotations

import getpass
import os
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from assetgen.tasks.store.assets import AssetStore, now_utc
from assetgen.tasks.store.fsio import create_exclusive

REVIEWS = "reviews"
State = Literal["pending", "approved", "rejected"]
STATES: tuple[State, ...] = ("pending", "approved", "rejected")
UNDO = "undo"  # a decision that takes the one before it back
Verdict = Literal["approved", "rejected", "undo"]
REVIEW_OFF = "review: off"  # reviewed_by of an asset its job config did not send to review
NOTE_MAX = 2000


class Decision(BaseModel):
    """One decision about one asset's original (`undo`: the one before it taken back)."""

    asset_id: str
    state: Verdict
    note: str | None = Field(None, max_length=NOTE_MAX)
    reviewer: str = Field(min_length=1, max_length=200)
    decided_at: datetime
    sha256: str | None  # of the original judged: a decision holds for those bytes only


class ReviewState(BaseModel):
    """Where an asset stands: the catalog's review columns."""

    review_state: State
    review_note: str | None = None
    reviewed_by: str | None = None
    reviewed_at: datetime | None = None


def default_reviewer() -> str:
    """The OS user, for decisions without --reviewer."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return os.environ.get("USER") or "unknown"


def new_decision(
    asset_id: str, state: Verdict, sha256: str | None, reviewer: str, note: str | None = None
) -> Decision:
    return Decision(
        asset_id=asset_id,
        state=state,
        note=(note or "").strip() or None,
        reviewer=reviewer,
        decided_at=now_utc(),
        sha256=sha256,
    )


def write_decision(store: AssetStore, folder: str, decision: Decision) -> str:
    """Store `decision` in the asset's folder as a new file; its path inside the store."""
    stamp = decision.decided_at.strftime("%Y%m%dT%H%M%S%fZ")
    data = decision.model_dump_json(indent=2).encode()
    while True:
        relative = f"{folder}/{REVIEWS}/{stamp}-{secrets.token_hex(4)}.json"
        if create_exclusive(store.fs, store.path(relative), data):
            return relative


def read_decisions(store: AssetStore, folder: str) -> list[Decision]:
    """Every decision stored for the asset in `folder`, oldest first."""
    root = store.path(f"{folder}/{REVIEWS}")
    store.fs.invalidate_cache(root)
    try:
        names = sorted(p for p in store.fs.ls(root, detail=False) if p.endswith(".json"))
    except FileNotFoundError:
        return []
    return sorted(
        (Decision.model_validate_json(store.fs.cat_file(p)) for p in names),
        key=lambda d: d.decided_at,
    )


def decisions_by_folder(store: AssetStore) -> dict[str, list[Decision]]:
    """Every stored decision of the store, by asset folder (one listing: `rebuild`)."""
    root = store.path("").rstrip("/")
    store.fs.invalidate_cache(root)
    if not store.fs.exists(root):
        return {}
    found: dict[str, list[Decision]] = {}
    marker = f"/{REVIEWS}/"
    for path in store.fs.find(root):
        relative = path[len(root) + 1 :] if path.startswith(root + "/") else path
        if marker not in relative or not relative.endswith(".json") or relative.startswith("_"):
            continue
        folder = relative.rsplit(marker, 1)[0]
        found.setdefault(folder, []).append(Decision.model_validate_json(store.fs.cat_file(path)))
    return found


def current_state(
    decisions: list[Decision], sha256: str | None, review: Callable[[], str]
) -> ReviewState:
    """The asset's state: its latest decision about these bytes (an undo takes the one
    before it back), else where it starts.

    `review` gives the asset's job config setting (`required` or `off`), asked
    only when the start state is needed.
    """
    standing: list[Decision] = []
    mine = sorted((d for d in decisions if d.sha256 == sha256), key=lambda d: d.decided_at)
    for decision in mine:
        if decision.state == UNDO:
            if standing:
                standing.pop()
        else:
            standing.append(decision)
    if standing:
        last = standing[-1]
        state = ReviewState(
            review_state=last.state,  # type: ignore[arg-type]
            review_note=last.note,
            reviewed_by=last.reviewer,
        )
    elif review() == "off":
        state = ReviewState(review_state="approved", reviewed_by=REVIEW_OFF)
    else:
        state = ReviewState(review_state="pending")
    if mine:
        # As of the latest decision, undo included: a catalog commit of an older
        # state never overwrites it (commit_reviews).
        state.reviewed_at = mine[-1].decided_at
        if mine[-1].state == UNDO:
            state.reviewed_by = mine[-1].reviewer
    return state
