"""One rate limiter shared by every request of a run, that slows down when the server says so."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping

# Multiplicative decrease on a 429 without rate headers, then a slow climb
# back: about 1% of the configured rate per success.
BACKOFF_FACTOR = 0.8
RECOVERY_STEP = 0.01
FLOOR_FRACTION = 0.05


class RateLimiter:
    """Requests leave one at a time, `60 / rate` seconds apart, in the order they asked.

    Only the request at the head of the queue waits on the clock, and it
    re-reads the rate and any pause each time it wakes, so a 429 or a lower
    limit from the server takes effect for every queued request at once.
    No burst: time left idle is not saved up.
    """

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = per_minute  # lowered by the server's x-ratelimit-limit-* headers
        self.rate = per_minute
        self._clock = clock
        self._last = -math.inf
        self._before_last = -math.inf
        self._turns = 0
        self._paused_until = 0.0
        self._queue = asyncio.Lock()  # FIFO: first to ask, first to go
        self.pauses = 0

    @property
    def interval(self) -> float:
        return 60.0 / self.rate

    async def acquire(self) -> int:
        """Wait for this request's turn; returns the turn's number (see `refund`)."""
        async with self._queue:
            while True:
                now = self._clock()
                due = max(self._last + self.interval, self._paused_until)
                if due <= now:
                    break
                await asyncio.sleep(due - now)
            self._before_last = self._last
            # Count from when the turn was due, so sleep overshoot does not
            # slow the rate, unless we were idle (that would make a burst).
            self._last = due if now - due < self.interval else now
            self._turns += 1
            return self._turns

    def refund(self, turn: int) -> None:
        """The turn was not used (nothing was sent): the next request need not wait for it.

        Only the latest turn can be given back; a later one was counted from it.
        """
        if turn == self._turns:
            self._last = self._before_last

    def pause(self, seconds: float) -> None:
        """No request starts in the next `seconds`."""
        now = self._clock()
        if seconds > 0 and now >= self._paused_until:
            self.pauses += 1
        self._paused_until = max(self._paused_until, now + seconds)

    def rate_limited(self, retry_after_s: float | None, headers: Mapping[str, str]) -> None:
        """A 429 `rate_limit_exceeded`: wait as told, and send slower from now on."""
        # Requests already in flight when the first 429 came answer 429 too:
        # one cut per pause, not one per answer.
        first = self._clock() >= self._paused_until
        self.observe(headers)
        if first:
            self.rate = max(self.rate * BACKOFF_FACTOR, self.ceiling * FLOOR_FRACTION)
        self.pause(retry_after_s if retry_after_s is not None else self.interval)

    def succeeded(self, headers: Mapping[str, str]) -> None:
        """Learn from a success's headers and climb back toward the ceiling."""
        if self.observe(headers):
            self.rate = min(self.ceiling, self.rate + self.ceiling * RECOVERY_STEP)

    def observe(self, headers: Mapping[str, str]) -> bool:
        """Read `x-ratelimit-limit-*` as a ceiling; False when `x-ratelimit-remaining-*` is 0.

        Nothing left means we already send at the server's edge: hold the rate
        there rather than climb. (The reset header says when the bucket is
        full again, not when the next request fits, so it does not pause us.)
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        room = True
        for kind in ("requests", "images"):
            limit = _number(lowered.get(f"x-ratelimit-limit-{kind}"))
            if limit and limit < self.ceiling:
                self.ceiling = limit
                self.rate = min(self.rate, limit)
            remaining = _number(lowered.get(f"x-ratelimit-remaining-{kind}"))
            if remaining is not None and remaining < 1:
                room = False
        return room


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
