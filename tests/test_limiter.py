"""The shared limiter: even spacing, run-wide pauses, learning from the server."""

from __future__ import annotations

import asyncio
import time

import pytest

from assetgen.tasks.generation.limiter import BACKOFF_FACTOR, RateLimiter


def _acquire_times(per_minute: float, count: int) -> list[float]:
    """When a limiter let each of `count` requests asking at once go (its own clock).

    Its reading at the decision, not the time the caller resumed: a loaded machine
    may resume one coroutine late and the next on time, which says nothing about
    the spacing the limiter kept.
    """
    last = [0.0]

    def clock() -> float:
        last[0] = time.monotonic()
        return last[0]

    limiter = RateLimiter(per_minute, clock=clock)

    async def go() -> list[float]:
        stamps: list[float] = []

        async def one() -> None:
            await limiter.acquire()
            stamps.append(last[0])  # acquire reads the clock last when it lets one go

        await asyncio.gather(*(one() for _ in range(count)))
        return sorted(stamps)

    return asyncio.run(go())


def test_slots_are_spaced_by_the_rate_even_when_all_ask_at_once() -> None:
    stamps = _acquire_times(60 * 50, 11)  # 20 ms apart
    # No burst: the k-th request never starts before k intervals have passed. (One gap
    # may be shorter: a turn counts from when it was due, so a late wake-up is made up.)
    for k, at in enumerate(stamps):
        assert at - stamps[0] >= k * 0.020 - 0.002, k


def test_pause_holds_back_every_request() -> None:
    limiter = RateLimiter(per_minute=60_000)

    async def go() -> float:
        await limiter.acquire()
        limiter.pause(0.15)
        start = time.monotonic()
        await asyncio.gather(limiter.acquire(), limiter.acquire())
        return time.monotonic() - start

    assert asyncio.run(go()) >= 0.15 - 0.005


def test_a_pause_during_a_wait_voids_the_slot() -> None:
    limiter = RateLimiter(per_minute=600)  # 100 ms apart

    async def go() -> float:
        await limiter.acquire()  # takes the slot at t=0; the next is at 100 ms
        waiter = asyncio.create_task(limiter.acquire())
        await asyncio.sleep(0.02)
        limiter.pause(0.3)
        start = time.monotonic()
        await waiter
        return time.monotonic() - start + 0.02

    assert asyncio.run(go()) >= 0.3 - 0.005


def test_one_rate_cut_per_burst_of_429s() -> None:
    limiter = RateLimiter(per_minute=600)
    for _ in range(5):  # five in-flight requests answer 429 together
        limiter.rate_limited(1.0, {})
    assert limiter.rate == pytest.approx(600 * BACKOFF_FACTOR)
    assert limiter.pauses == 1


def test_successes_climb_back_but_never_past_the_ceiling() -> None:
    limiter = RateLimiter(per_minute=600)
    limiter.rate_limited(0.0, {})
    for _ in range(100):
        limiter.succeeded({})
    assert limiter.rate == 600


def test_server_limit_header_lowers_the_ceiling() -> None:
    limiter = RateLimiter(per_minute=1200)
    limiter.succeeded({"x-ratelimit-limit-requests": "600", "x-ratelimit-remaining-requests": "7"})
    assert limiter.ceiling == 600
    assert limiter.rate == 600
    assert limiter.pauses == 0
    # A higher limit than configured never raises our rate.
    limiter.succeeded({"X-RateLimit-Limit-Requests": "5000"})
    assert limiter.ceiling == 600


def test_nothing_remaining_holds_the_rate_instead_of_climbing() -> None:
    limiter = RateLimiter(per_minute=600)
    limiter.rate_limited(0.0, {})
    cut = limiter.rate
    for _ in range(10):
        limiter.succeeded({"x-ratelimit-remaining-requests": "0"})
    assert limiter.rate == cut
    assert limiter.pauses == 0
    limiter.succeeded({"x-ratelimit-remaining-requests": "3"})
    assert limiter.rate > cut
