"""Claims on the shared ledger: money a spender holds ahead of what it sends, within every cap.

A run does not write to the ledger per image: it claims a block (the worst
case of the requests it is about to send), reserves each request inside it,
claims more as it goes and hands back what is unused when it ends. Every
claim is decided on the ledger's state at that moment against the run cap
(shared by the accounts of one group: the shards of a sharded run) and the
period cap (every account of the store in the period), so caps hold however
many spenders claim at once. Near a cap a claim takes at most half of what
is left, so concurrent runs share the rest instead of one holding it all.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from assetgen.tasks.budget.ledger import (
    LEDGER,
    Account,
    Kind,
    Ledger,
    LedgerState,
    Period,
    day_of,
    month_of,
)
from assetgen.tasks.config.job import BudgetConfig
from assetgen.tasks.store.assets import AssetStore, now_utc

EPSILON = 1e-9
HEARTBEAT_S = 15.0


@dataclass(frozen=True)
class Caps:
    """The caps a claim must fit: the run's (per group) and the period's (per store)."""

    run_usd: float | None = None
    period: Period | None = None
    period_usd: float | None = None

    @classmethod
    def from_config(cls, budget: BudgetConfig) -> Caps:
        return cls(budget.cap_usd, budget.period, budget.period_cap_usd)


def room(state: LedgerState, account: Account, caps: Caps) -> tuple[float, str | None]:
    """How much more `account` may count beyond `account.total`, and the cap that decides it."""
    current = state.accounts.get(account.id)
    mine = current.total if current else 0.0
    left, which = math.inf, None
    if caps.run_usd is not None:
        others = state.group_total(account.group) - mine
        left, which = caps.run_usd - others - account.total, "the run's budget"
    if caps.period_usd is not None and caps.period is not None:
        others = state.period_total(account.day, caps.period, exclude=account.id)
        period_left = caps.period_usd - others - account.total
        if period_left < left:
            left, which = period_left, f"the {caps.period}'s cap"
    return max(0.0, left), which


def grant(left: float, needed: float, wanted: float, share: bool) -> float:
    """What to give of `left` to a claim of at least `needed`, at most `wanted` (0: refused)."""
    if needed > left + EPSILON:
        return 0.0
    give = min(wanted, left)
    if share and give > left / 2:
        # Near the cap: half of what is left, so other spenders still find some.
        give = min(left, max(needed, left / 2))
    return max(give, needed)


class LedgerAccount:
    """One spender's account in the store's ledger (a run, a shard, a batch submit)."""

    def __init__(
        self,
        store: AssetStore,
        account_id: str,
        kind: Kind,
        started_at: datetime,
        caps: Caps,
        group: str | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        day = day_of(started_at)
        self.store = store
        self.caps = caps
        self.ledger = ledger or Ledger(store, month_of(day))
        self.template = Account(
            id=account_id,
            kind=kind,
            group=group or account_id,
            day=day,
            opened_at=started_at,
            host=socket.gethostname(),
            pid=os.getpid(),
            updated_at=started_at,
        )
        self.claimed = 0.0  # spent + held, as last written
        self.shortfall: str | None = None  # why the last claim got less than it wanted

    @property
    def id(self) -> str:
        return self.template.id

    def period_total(self, state: LedgerState | None = None) -> float | None:
        """Spent and held in this account's period by everyone else; None without a period cap."""
        if self.caps.period is None:
            return None
        state = state or self.ledger.read()
        return state.period_total(self.template.day, self.caps.period, exclude=self.id)

    def claim(self, at_least: float, up_to: float, spent: float, share: bool = True) -> float:
        """Raise what this account holds to at least `at_least` (at most `up_to`) in total.

        `spent` is what it has spent so far (recorded with the claim). Returns
        the new total; unchanged when the caps leave no room (see `shortfall`).
        """
        result = self.claimed

        def decide(state: LedgerState) -> list[Account] | None:
            nonlocal result
            mine = self._current(state)
            if mine.closed:
                self.shortfall = f"ledger account {self.id} is closed"
                result = mine.total
                return None
            spent_now = max(mine.spent_usd, spent)
            base = max(mine.total, spent_now)
            result = base
            if at_least <= base + EPSILON:
                return None
            left, which = room(
                state,
                mine.model_copy(update={"held_usd": base - spent_now, "spent_usd": spent_now}),
                self.caps,
            )
            wanted = max(up_to, at_least) - base
            given = grant(left, at_least - base, wanted, share)
            self.shortfall = f"${left:.4f} left of {which}" if given < wanted else None
            if given <= 0:
                return None
            result = base + given
            return [self._changed(mine, spent_now, result - spent_now)]

        self.ledger.commit(decide, by=self.id)
        self.claimed = result
        return result

    def move(self, to: str, amount: float, kind: Kind = "batch") -> None:
        """Pass `amount` of what this account holds to a new account `to` of the same group."""

        def decide(state: LedgerState) -> list[Account] | None:
            mine = self._current(state)
            if to in state.accounts:
                return None  # moved already
            if mine.held_usd + EPSILON < amount:
                raise ValueError(f"{self.id} holds ${mine.held_usd:.4f}, not ${amount:.4f}")
            now = now_utc()
            target = self.template.model_copy(
                update={"id": to, "kind": kind, "held_usd": amount, "updated_at": now}
            )
            return [self._changed(mine, mine.spent_usd, mine.held_usd - amount), target]

        self.ledger.commit(decide, by=self.id)
        self.claimed -= amount

    def close(self, spent: float) -> None:
        """The spender is done: what it spent stays, what it held goes back."""

        result = spent

        def decide(state: LedgerState) -> list[Account] | None:
            nonlocal result
            mine = state.accounts.get(self.id)
            if mine is None and spent <= 0:
                return None  # never claimed anything
            mine = mine or self.template
            result = mine.total if mine.closed else max(mine.spent_usd, spent)
            if mine.closed:
                return None
            changed = self._changed(mine, result, 0.0)
            return [changed.model_copy(update={"closed": True})]

        self.ledger.commit(decide, by=self.id)
        self.claimed = result

    def _current(self, state: LedgerState) -> Account:
        return state.accounts.get(self.id) or self.template

    def _changed(self, account: Account, spent: float, held: float) -> Account:
        return account.model_copy(
            update={"spent_usd": spent, "held_usd": max(0.0, held), "updated_at": now_utc()}
        )


def close_account(store: AssetStore, template: Account, spent: float) -> None:
    """Close an account from another process (a batch, when it is collected): spend settled."""

    def decide(state: LedgerState) -> list[Account] | None:
        mine = state.accounts.get(template.id) or template
        if mine.closed:
            return None
        update = {
            "spent_usd": max(mine.spent_usd, spent),
            "held_usd": 0.0,
            "closed": True,
            "updated_at": now_utc(),
        }
        return [mine.model_copy(update=update)]

    Ledger(store, month_of(template.day)).commit(decide, by=f"close-{template.id}")


def heartbeat_path(month: str, account_id: str) -> str:
    return f"{LEDGER}/{month}/alive/{account_id}.json"


class Heartbeat:
    """Says every HEARTBEAT_S that the spender is alive (`assetgen budget` tells dead ones apart).

    A file of its own, not a ledger entry: it decides nothing, so it needs
    no atomicity, and the log stays small.
    """

    def __init__(self, account: LedgerAccount, spent: Callable[[], float]) -> None:
        self.store = account.store
        self.path = heartbeat_path(account.ledger.month, account.id)
        self.spent = spent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(OSError):
            self.store.fs.rm_file(self.store.path(self.path))

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            self._beat()

    def _beat(self) -> None:
        beat = {
            "at": now_utc().isoformat(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "spent_usd": round(self.spent(), 6),
        }
        with contextlib.suppress(OSError):  # a missed beat only delays what `budget` shows
            self.store.write_bytes(self.path, json.dumps(beat).encode())
