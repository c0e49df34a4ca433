"""Fan jobs out to a provider: bounded in-flight work, one shared limiter, retries, budget."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from assetgen.tasks.budget.reservations import Budget, Reservation
from assetgen.tasks.generation.limiter import RateLimiter
from assetgen.tasks.generation.providers import ImageResult, Provider, ProviderError
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import PriceTable, usage_cost

Status = Literal["generated", "failed", "budget_exhausted", "stopped", "skipped_existing"]

# Before any answer, assume a slow model (DESIGN: up to ~2 minutes) so the
# first wave of requests is large enough to hold the rate.
INITIAL_LATENCY_S = 60.0
LATENCY_SMOOTHING = 0.2
MIN_CONCURRENCY, MAX_CONCURRENCY = 4, 2000
# Money is claimed from the ledger for this many requests at a time (or the
# requests in flight, if more): one ledger write per block, not per image.
CLAIM_AHEAD = 32


@dataclass
class JobOutcome:
    """What became of one job; per-image detail lives in the sidecar."""

    job: Job
    status: Status
    reason: str | None = None
    cost_usd: float = 0.0
    attempts: int = 0
    uri: str | None = None


@dataclass
class Attempted:
    """A finished request, handed to the writer."""

    result: ImageResult
    attempts: int
    latency_s: float
    cost_usd: float


# Stores a finished image; returns where. Slow work belongs in threads or
# processes: the writer runs on the dispatch loop.
Writer = Callable[[Job, Attempted], Awaitable[str]]


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 60.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential backoff with full jitter."""
        return rng.uniform(0, min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1)))


@dataclass
class Dispatcher:
    """Runs jobs through `provider` as fast as `limiter` allows, never past `budget`."""

    provider: Provider
    limiter: RateLimiter
    budget: Budget
    prices: PriceTable
    write: Writer
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    concurrency: int | None = None
    on_outcome: Callable[[JobOutcome], None] | None = None
    rng: random.Random = field(default_factory=random.Random)
    stop_reason: str | None = None
    requests_sent: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latency_s: float = INITIAL_LATENCY_S
    _in_flight: set[asyncio.Task] = field(default_factory=set)
    _slot_freed: asyncio.Event = field(default_factory=asyncio.Event)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self, reason: str) -> None:
        """Send no further request; requests already sent finish and are stored."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self._stopped.set()

    def in_flight_target(self) -> int:
        """Requests to keep open: rate x latency, with headroom for latency spread."""
        if self.concurrency:
            return self.concurrency
        wanted = math.ceil(self.limiter.rate / 60 * self.latency_s * 1.5) + 2
        return max(MIN_CONCURRENCY, min(MAX_CONCURRENCY, wanted))

    async def run(self, jobs: Iterable[Job]) -> list[JobOutcome]:
        """Every job's outcome; jobs not sent because the run stopped are `stopped`."""
        outcomes: list[JobOutcome] = []

        def finish(outcome: JobOutcome) -> None:
            outcomes.append(outcome)
            if self.on_outcome:
                self.on_outcome(outcome)

        jobs = list(jobs)
        for done, job in enumerate(jobs):
            while len(self._in_flight) >= self.in_flight_target() and not self.stop_reason:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            if self.stop_reason:
                finish(JobOutcome(job, "stopped", f"not sent: {self.stop_reason}"))
                continue
            # Money is held for requests about to go out, not for a queue
            # waiting on the limiter: other runs may need it meanwhile.
            turn = await self.limiter.acquire()
            ahead = min(max(CLAIM_AHEAD, self.in_flight_target()), len(jobs) - done)
            reservation = None if self.stop_reason else await self.budget.reserve(job, ahead)
            if reservation is None or self.stop_reason:
                self.limiter.refund(turn)
                if reservation:
                    self.budget.release(reservation)
                if self.stop_reason:
                    finish(JobOutcome(job, "stopped", f"not sent: {self.stop_reason}"))
                else:
                    finish(JobOutcome(job, "budget_exhausted", _no_budget(self.budget, job)))
                continue
            task = asyncio.create_task(self._run_job(job, reservation, turn_taken=True))
            task.add_done_callback(lambda t: finish(t.result()) if not t.cancelled() else None)
            task.add_done_callback(self._release_slot)
            self._in_flight.add(task)
        if self._in_flight:
            await asyncio.gather(*self._in_flight)
        return outcomes

    def _release_slot(self, task: asyncio.Task) -> None:
        self._in_flight.discard(task)
        self._slot_freed.set()

    async def _run_job(
        self, job: Job, reservation: Reservation, turn_taken: bool = False
    ) -> JobOutcome:
        held: Reservation | None = reservation
        attempts = 0
        while True:
            if not turn_taken:
                await self.limiter.acquire()
            turn_taken = False
            if self.stop_reason:
                self.budget.release(held)
                return JobOutcome(job, "stopped", f"not sent: {self.stop_reason}", 0, attempts)
            attempts += 1
            self.requests_sent += 1
            sent = time.monotonic()
            try:
                result = await self.provider.generate(job)
            except ProviderError as e:
                self.errors[e.describe().split(":", 1)[0]] += 1
                if e.maybe_billed:
                    self.budget.forfeit(held)
                    held = None
                final = self._final_reason(e, attempts)
                if final is not None:
                    if held:
                        self.budget.release(held)
                    return JobOutcome(job, "failed", final, 0.0, attempts)
                if held is None and (held := await self.budget.reserve(job)) is None:
                    reason = "an earlier attempt may have been billed; no budget for another"
                    return JobOutcome(job, "budget_exhausted", reason, 0.0, attempts)
                await self._wait(self._retry_delay(e, attempts))
                continue
            return await self._finish(job, held, result, attempts, time.monotonic() - sent)

    async def _finish(
        self, job: Job, held: Reservation, result: ImageResult, attempts: int, latency: float
    ) -> JobOutcome:
        self.latency_s += LATENCY_SMOOTHING * (latency - self.latency_s)
        self.limiter.succeeded(result.headers)
        cost = usage_cost(self.prices, job.model, result.usage)
        self.budget.settle(held, cost, result.usage.output_tokens)
        try:
            uri = await self.write(job, Attempted(result, attempts, latency, cost))
        except Exception as e:
            reason = f"paid but could not be stored: {type(e).__name__}: {e}"
            return JobOutcome(job, "failed", reason, cost, attempts)
        return JobOutcome(job, "generated", None, cost, attempts, uri)

    def _final_reason(self, e: ProviderError, attempts: int) -> str | None:
        """Why the job ends here, or None to retry."""
        if e.scope == "run":
            self.stop(e.describe())
            return e.describe()
        if e.scope == "row":
            return e.describe()
        if attempts >= self.retry.max_attempts:
            return f"gave up after {attempts} attempts: {e.describe()}"
        if self.stop_reason:
            return f"{e.describe()} (not retried: {self.stop_reason})"
        return None

    def _retry_delay(self, e: ProviderError, attempts: int) -> float:
        if e.rate_limited:
            # The limiter now holds every request back for the server's
            # retry-after; this one waits its turn there like the rest.
            self.limiter.rate_limited(e.retry_after_s, e.headers)
            return 0.0
        self.limiter.observe(e.headers)
        return max(e.retry_after_s or 0.0, self.retry.backoff(attempts, self.rng))

    async def _wait(self, seconds: float) -> None:
        """Sleep, but wake at once if the run stops."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), seconds)


def _no_budget(budget: Budget, job: Job) -> str:
    return f"not started: worst case ${budget.worst_case(job):.4f} exceeds the {budget.shortfall}"
