"""The hard budget cap: reserve the worst case before a request, settle with the bill after."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from tasks.plan import Job
from tasks.pricing import PriceTable

# Output tokens seen for an unpublished size are the truth for that size and
# quality; keep a small margin over them when they replace the table's bound.
OBSERVED_MARGIN = 1.05


@dataclass
class Reservation:
    job: Job
    amount: float


class Budget:
    """Spend plus held reservations never exceed the cap, whatever runs concurrently.

    All calls come from one event loop, so no lock is needed.
    """

    def __init__(self, cap_usd: float | None, prices: PriceTable) -> None:
        self.cap = math.inf if cap_usd is None else cap_usd
        self.spent = 0.0
        self.reserved = 0.0
        # Money that may have been billed but no bill came back (timeouts):
        # counted as spent at the reserved worst case.
        self.uncertain = 0.0
        self._prices = prices
        self._observed: dict[tuple[str, str, str], int] = {}
        self._changed = asyncio.Event()

    @property
    def available(self) -> float:
        return self.cap - self.spent - self.reserved

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
        """Hold the job's worst case, or None if it does not fit now."""
        amount = self.worst_case(job)
        if amount > self.available + 1e-12:
            return None
        self.reserved += amount
        return Reservation(job, amount)

    async def reserve(self, job: Job) -> Reservation | None:
        """Hold the job's worst case, waiting while running jobs may still give money back.

        None means it cannot fit: nothing is held that could be returned.
        """
        while (reservation := self.try_reserve(job)) is None:
            if self.reserved <= 1e-12:
                return None
            self._changed.clear()
            await self._changed.wait()
        return reservation

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
