"""The hard budget cap: reserve the worst case before a request, settle with the bill after.

Reservations are taken from money claimed in blocks: from the store's ledger
(tasks/budget/claims.py) in a run, or from a fixed cap where no ledger is involved.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Protocol

from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import PriceTable

# Output tokens seen for an unpublished size are the truth for that size and
# quality; keep a small margin over them when they replace the table's bound.
OBSERVED_MARGIN = 1.05
EPSILON = 1e-12


class Claims(Protocol):
    """Where a budget gets its money from (tasks.claims.LedgerAccount in a run)."""

    shortfall: str | None

    def claim(self, at_least: float, up_to: float, spent: float) -> float:
        """Hold at least `at_least` (at most `up_to`) in total; returns the new total."""
        ...


class NoLedger:
    """A budget with no ledger behind it: its cap is all it ever has (tests, benchmarks)."""

    shortfall: str | None = None

    def claim(self, at_least: float, up_to: float, spent: float) -> float:
        return 0.0


@dataclass
class Reservation:
    job: Job
    amount: float


class Budget:
    """Spend plus held reservations never exceed what is claimed, whatever runs concurrently.

    All calls come from one event loop, so no lock is needed but for claims.
    """

    def __init__(self, cap_usd: float | None, prices: PriceTable, claims: Claims | None = None):
        self.claims: Claims = claims or NoLedger()
        # Without a ledger the whole cap is held from the start.
        self.claimed = 0.0 if claims else (math.inf if cap_usd is None else cap_usd)
        self.spent = 0.0
        self.reserved = 0.0
        # Money that may have been billed but no bill came back (timeouts):
        # counted as spent at the reserved worst case.
        self.uncertain = 0.0
        self.claim_calls = 0
        self._prices = prices
        self._observed: dict[tuple[str, str, str], int] = {}
        self._changed = asyncio.Event()
        self._claiming = asyncio.Lock()

    @property
    def available(self) -> float:
        return self.claimed - self.spent - self.reserved

    def worst_case(self, job: Job) -> float:
        """The job's worst case, tightened by output tokens seen for its unpublished size."""
        key = (job.model, job.size, job.quality)
        seen = self._observed.get(key)
        if seen is None:
            return job.cost_worst
        table = self._prices.output_tokens(*key).worst
        bound = seen * OBSERVED_MARGIN
        if bound >= table:
            return job.cost_worst
        per_token = self._prices.pricing(job.model).per_million_tokens.image_output / 1e6
        return job.cost_worst - (table - bound) * per_token

    def try_reserve(self, job: Job) -> Reservation | None:
        """Hold the job's worst case from what is claimed already, or None if it does not fit."""
        amount = self.worst_case(job)
        if amount > self.available + EPSILON:
            return None
        self.reserved += amount
        return Reservation(job, amount)

    async def reserve(self, job: Job, ahead: int = 1) -> Reservation | None:
        """Hold the job's worst case, claiming more (for about `ahead` such jobs) when needed.

        Waits while running jobs may still give money back; None means it
        cannot fit: nothing is held that could be returned.
        """
        while (reservation := self.try_reserve(job)) is None:
            if await self._claim_more(self.worst_case(job), ahead):
                continue
            if self.reserved <= EPSILON:
                return None
            self._changed.clear()
            await self._changed.wait()
        return reservation

    async def _claim_more(self, amount: float, ahead: int) -> bool:
        async with self._claiming:
            at_least = self.spent + self.reserved + amount
            if at_least <= self.claimed + EPSILON:
                return True  # another reservation's claim made room meanwhile
            up_to = at_least + amount * max(0, ahead - 1)
            self.claim_calls += 1
            total = await asyncio.to_thread(self.claims.claim, at_least, up_to, self.spent)
            grew = total > self.claimed + EPSILON
            self.claimed = max(self.claimed, total)
            return grew and at_least <= self.claimed + EPSILON

    @property
    def shortfall(self) -> str:
        """What was left when the last claim was refused."""
        return self.claims.shortfall or f"${max(self.available, 0):.4f} left of the budget"

    def settle(self, reservation: Reservation, billed: float, output_tokens: int) -> None:
        """Replace the hold with the bill; learn the output tokens of this size."""
        job = reservation.job
        key = (job.model, job.size, job.quality)
        if job.size != "auto" and job.quality != "auto":
            self._observed[key] = max(self._observed.get(key, 0), output_tokens)
        self.reserved -= reservation.amount
        self.spent += billed
        self._changed.set()

    def release(self, reservation: Reservation) -> None:
        """Nothing was billed: give the hold back."""
        self.reserved -= reservation.amount
        self._changed.set()

    def forfeit(self, reservation: Reservation) -> None:
        """A bill may exist that we never saw: count the worst case as spent."""
        self.reserved -= reservation.amount
        self.spent += reservation.amount
        self.uncertain += reservation.amount
        self._changed.set()
