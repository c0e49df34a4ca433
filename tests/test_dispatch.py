"""The dispatcher with a scripted in-process provider: budget, retries, stops, concurrency."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from assetgen.tasks.budget.reservations import Budget
from assetgen.tasks.generation.dispatch import Attempted, Dispatcher, JobOutcome, RetryPolicy
from assetgen.tasks.generation.limiter import RateLimiter
from assetgen.tasks.generation.providers import ImageResult, ProviderError, Usage
from assetgen.tasks.plan.jobs import Job
from assetgen.tasks.plan.pricing import PriceTable

FAST = 60_000_000  # per minute: the limiter never waits


def make_job(
    i: int, *, size: str = "1024x1024", quality: str = "medium", worst: float = 0.06
) -> Job:
    return Job(
        asset_id=f"a{i:05d}",
        row=i + 1,
        row_id=f"r{i}",
        variant=0,
        model="gpt-image-2",
        prompt=f"prompt {i}",
        size=size,
        quality=quality,
        output_format="png",
        output_compression=None,
        background="auto",
        cost_low=0.05,
        cost_expected=0.053,
        cost_worst=worst,
    )


class Scripted:
    """Answers each job from a script: a list of errors to raise before succeeding."""

    name = "scripted"

    def __init__(self, script: dict[str, list[ProviderError]] | None = None, delay: float = 0.0):
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.delay = delay
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.rng = random.Random(1)

    async def generate(self, job: Job) -> ImageResult:
        self.calls[job.asset_id] += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay * self.rng.random())
            pending = self.script.get(job.asset_id)
            if pending:
                raise pending.pop(0)
            return ImageResult(
                image=b"img",
                output_format="png",
                size=job.size,
                quality=job.quality,
                background="opaque",
                usage=Usage(text_input_tokens=10, output_tokens=1756),
            )
        finally:
            self.in_flight -= 1

    async def aclose(self) -> None:
        pass


async def _memory_writer(job: Job, done: Attempted) -> str:
    return f"memory://{job.asset_id}"


def run(
    jobs: list[Job],
    provider: Scripted,
    prices: PriceTable,
    *,
    cap: float | None = None,
    per_minute: float = FAST,
    write: Callable[[Job, Attempted], Awaitable[str]] | None = None,
    **kwargs,
) -> tuple[list[JobOutcome], Dispatcher]:
    async def go() -> tuple[list[JobOutcome], Dispatcher]:
        dispatcher = Dispatcher(
            provider=provider,
            limiter=RateLimiter(per_minute),
            budget=Budget(cap, prices),
            prices=prices,
            write=write or _memory_writer,
            retry=RetryPolicy(max_attempts=4, backoff_base_s=0.001, backoff_max_s=0.01),
            rng=random.Random(0),
            **kwargs,
        )
        return await dispatcher.run(jobs), dispatcher

    return asyncio.run(go())


def by_status(outcomes: list[JobOutcome]) -> Counter[str]:
    return Counter(o.status for o in outcomes)


BILL = (10 * 5 + 1756 * 30) / 1e6  # what Scripted bills per image at gpt-image-2 prices


def test_every_job_generated_once(prices: PriceTable) -> None:
    provider = Scripted(delay=0.002)
    outcomes, d = run([make_job(i) for i in range(50)], provider, prices, concurrency=8)
    assert by_status(outcomes) == {"generated": 50}
    assert set(provider.calls.values()) == {1}
    assert d.budget.spent == pytest.approx(50 * BILL)
    assert provider.max_in_flight <= 8


@pytest.mark.parametrize("concurrency", [1, 7, 64])
def test_budget_cap_holds_under_concurrency(prices: PriceTable, concurrency: int) -> None:
    cap = 1.0  # room for 16 worst cases of $0.06, 18 real bills of $0.0527
    provider = Scripted(delay=0.003)
    outcomes, d = run(
        [make_job(i) for i in range(60)], provider, prices, cap=cap, concurrency=concurrency
    )
    counts = by_status(outcomes)
    assert d.budget.spent <= cap
    assert d.budget.spent == pytest.approx(counts["generated"] * BILL)
    # Settled bills return the unused part of each hold, so more than
    # cap / worst-case images fit.
    assert counts["generated"] == 18
    assert counts["budget_exhausted"] == 42
    assert sum(provider.calls.values()) == 18
    assert all("budget" in o.reason for o in outcomes if o.status == "budget_exhausted")


def test_transient_errors_are_retried_then_succeed(prices: PriceTable) -> None:
    script = {
        "a00000": [ProviderError("transient", "boom", status=500)] * 2,
        "a00001": [ProviderError("transient", "overloaded", status=503, retry_after_s=0.01)],
    }
    provider = Scripted(script)
    outcomes, d = run([make_job(0), make_job(1), make_job(2)], provider, prices)
    assert by_status(outcomes) == {"generated": 3}
    assert provider.calls == {"a00000": 3, "a00001": 2, "a00002": 1}
    assert {o.job.asset_id: o.attempts for o in outcomes} == {"a00000": 3, "a00001": 2, "a00002": 1}
    assert d.errors == {"500": 2, "503": 1}


def test_retries_stop_at_max_attempts(prices: PriceTable) -> None:
    provider = Scripted({"a00000": [ProviderError("transient", "boom", status=502)] * 10})
    outcomes, _ = run([make_job(0)], provider, prices)
    assert outcomes[0].status == "failed"
    assert "gave up after 4 attempts" in outcomes[0].reason
    assert provider.calls["a00000"] == 4


def test_row_error_is_final_for_its_row_only(prices: PriceTable) -> None:
    refusal = ProviderError(
        "row", "rejected by the safety system", status=400, code="moderation_blocked"
    )
    provider = Scripted({"a00001": [refusal]})
    outcomes, d = run([make_job(i) for i in range(4)], provider, prices)
    assert by_status(outcomes) == {"generated": 3, "failed": 1}
    failed = next(o for o in outcomes if o.status == "failed")
    assert failed.job.asset_id == "a00001"
    assert "moderation_blocked" in failed.reason and "safety system" in failed.reason
    assert provider.calls["a00001"] == 1
    assert d.budget.reserved == pytest.approx(0)


def test_run_error_stops_all_dispatch(prices: PriceTable) -> None:
    denied = ProviderError("run", "Incorrect API key provided", status=401, code="invalid_api_key")
    provider = Scripted({"a00000": [denied]})
    outcomes, d = run([make_job(i) for i in range(20)], provider, prices, concurrency=1)
    assert sum(provider.calls.values()) == 1
    counts = by_status(outcomes)
    assert counts == {"failed": 1, "stopped": 19}
    assert "401" in d.stop_reason and "API key" in d.stop_reason
    assert d.budget.spent == 0 and d.budget.reserved == pytest.approx(0)


def test_maybe_billed_attempt_is_counted_against_the_budget(prices: PriceTable) -> None:
    timeout = ProviderError("transient", "request timed out", code="timeout", maybe_billed=True)
    provider = Scripted({"a00000": [timeout]})
    outcomes, d = run([make_job(0)], provider, prices, cap=1.0)
    assert outcomes[0].status == "generated"
    assert d.budget.uncertain == pytest.approx(0.06)
    assert d.budget.spent == pytest.approx(0.06 + BILL)


def test_maybe_billed_retry_needs_budget_of_its_own(prices: PriceTable) -> None:
    timeout = ProviderError("transient", "request timed out", code="timeout", maybe_billed=True)
    provider = Scripted({"a00000": [timeout]})
    outcomes, d = run([make_job(0)], provider, prices, cap=0.1)
    assert outcomes[0].status == "budget_exhausted"
    assert provider.calls["a00000"] == 1
    assert d.budget.spent <= 0.1


def test_rate_limited_429_pauses_the_whole_run(prices: PriceTable) -> None:
    limited = ProviderError("transient", "Rate limit reached", status=429, retry_after_s=0.2)
    provider = Scripted({"a00000": [limited]})
    outcomes, d = run([make_job(i) for i in range(3)], provider, prices, per_minute=FAST)
    assert by_status(outcomes) == {"generated": 3}
    assert d.limiter.pauses == 1
    assert d.limiter.rate < FAST


def test_store_failure_is_reported_and_still_billed(prices: PriceTable) -> None:
    async def broken(job: Job, done: Attempted) -> str:
        raise OSError("disk full")

    outcomes, d = run([make_job(0)], Scripted(), prices, write=broken)
    assert outcomes[0].status == "failed"
    assert "paid but could not be stored" in outcomes[0].reason
    assert d.budget.spent == pytest.approx(BILL)


def test_concurrency_defaults_to_rate_times_latency(prices: PriceTable) -> None:
    async def go() -> tuple[int, int]:
        d = Dispatcher(
            provider=Scripted(),
            limiter=RateLimiter(250),
            budget=Budget(None, prices),
            prices=prices,
            write=_memory_writer,
        )
        d.latency_s = 90
        slow = d.in_flight_target()
        d.latency_s = 1
        return slow, d.in_flight_target()

    slow, fast = asyncio.run(go())
    assert slow >= 250 / 60 * 90  # about 375 in flight to hold 250/min at 90 s
    assert fast < 20


def test_unpublished_size_reservation_tightens_after_a_bill(prices: PriceTable) -> None:
    budget = Budget(None, prices)
    job = make_job(0, size="2048x1152", worst=0.5)
    first = budget.worst_case(job)
    reservation = budget.try_reserve(job)
    assert reservation is not None
    budget.settle(reservation, 0.1, output_tokens=3000)
    tightened = budget.worst_case(job)
    assert tightened < first
    per_token = prices.models["gpt-image-2"].per_million_tokens.image_output / 1e6
    table = prices.output_tokens("gpt-image-2", "2048x1152", "medium").worst
    assert tightened == pytest.approx(0.5 - (table - 3000 * 1.05) * per_token)
