"""What the store's ledger says about a period: cap, spent, held, left, and every spender."""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel

from assetgen.tasks.budget.claims import heartbeat_path
from assetgen.tasks.budget.ledger import Account, Ledger, Period
from assetgen.tasks.store.assets import AssetStore, now_utc

# A spender whose last heartbeat is older than this is taken for dead (it
# beats every claims.HEARTBEAT_S). Its claim stays counted either way.
LEASE_S = 90.0

State = Literal["alive", "died", "ended", "open batch", "collected"]


class Beat(BaseModel):
    at: datetime
    host: str
    pid: int
    spent_usd: float = 0.0


class AccountRow(BaseModel):
    """One spender of a period as `assetgen budget` shows it."""

    id: str
    kind: str
    group: str
    opened_at: datetime
    spent_usd: float
    held_usd: float
    state: State


class PeriodReport(BaseModel):
    """One period (a UTC day or month) of one store."""

    period: Period
    key: str
    cap_usd: float | None
    spent_usd: float  # what spenders recorded as billed
    held_usd: float  # claimed by live runs and open batches
    died_holding_usd: float  # claimed by runs that died: counted as spent
    left_usd: float | None
    accounts: list[AccountRow]


def state_of(account: Account, beat: Beat | None, now: datetime) -> State:
    """Whether a spender is still at work, ended, or died holding its claim."""
    if account.kind == "batch":
        return "collected" if account.closed else "open batch"
    if account.closed:
        return "ended"
    if beat is None:
        # Between its first claim and its first beat a run is young, not dead.
        young = (now - account.opened_at).total_seconds() < LEASE_S
        return "alive" if young else "died"
    if beat.host == socket.gethostname() and not _pid_alive(beat.pid):
        return "died"
    return "alive" if (now - beat.at).total_seconds() < LEASE_S else "died"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def period_keys(period: Period, since: date, until: date) -> list[str]:
    """Every day (or month) from `since` to `until`, oldest first."""
    keys: list[str] = []
    day = since
    while day <= until:
        key = day.isoformat() if period == "day" else day.isoformat()[:7]
        if not keys or keys[-1] != key:
            keys.append(key)
        day += timedelta(days=1)
    return keys


def budget_report(
    store: AssetStore,
    period: Period,
    cap_usd: float | None,
    since: date | None = None,
    now: datetime | None = None,
) -> list[PeriodReport]:
    """The period now (or every period since `since`), from the ledger and the heartbeats."""
    now = now or now_utc()
    keys = period_keys(period, since or now.date(), now.date())
    months = sorted({k[:7] for k in keys})
    accounts: list[Account] = []
    beats: dict[str, Beat] = {}
    for month in months:
        accounts += Ledger(store, month).read().accounts.values()
        beats |= dict(_beats(store, month))
    reports = []
    for key in keys:
        rows = [
            _row(a, beats.get(a.id), now)
            for a in sorted(accounts, key=lambda a: a.opened_at)
            if a.day.startswith(key)
        ]
        spent = sum(r.spent_usd for r in rows)
        held = sum(r.held_usd for r in rows if r.state in ("alive", "open batch"))
        dead = sum(r.held_usd for r in rows if r.state == "died")
        left = None if cap_usd is None else max(0.0, cap_usd - spent - held - dead)
        reports.append(
            PeriodReport(
                period=period,
                key=key,
                cap_usd=cap_usd,
                spent_usd=round(spent, 6),
                held_usd=round(held, 6),
                died_holding_usd=round(dead, 6),
                left_usd=None if left is None else round(left, 6),
                accounts=rows,
            )
        )
    return reports


def _row(account: Account, beat: Beat | None, now: datetime) -> AccountRow:
    state = state_of(account, beat, now)
    spent = account.spent_usd
    if state == "alive" and beat is not None:
        # The heartbeat is fresher than the last claim; the total stays the ledger's.
        spent = min(account.total, max(spent, beat.spent_usd))
    return AccountRow(
        id=account.id,
        kind=account.kind,
        group=account.group,
        opened_at=account.opened_at,
        spent_usd=round(spent, 6),
        held_usd=round(account.total - spent, 6),
        state=state,
    )


def _beats(store: AssetStore, month: str) -> Iterator[tuple[str, Beat]]:
    fs = store.fs
    folder = store.path(heartbeat_path(month, "x")).rsplit("/", 1)[0]
    fs.invalidate_cache(folder)
    for path in fs.glob(f"{folder}/*.json"):
        with contextlib.suppress(FileNotFoundError, ValueError):
            beat = Beat.model_validate(json.loads(fs.cat_file(path)))
            yield path.rsplit("/", 1)[-1].removesuffix(".json"), beat
