"""One rate limiter shared by every request of a run, that slows down when the server says so."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping

# Multiplicative decrease on a 429 without rate headers, then a slow climb
# back: about 1% of the configured rate per success.
BACKOFF_FACTOR = 0.8
RECOVERY_STEP = 0.01
FLOOR_FRACTION = 0.05


class RateLimiter:
    """GCRA on requests: each acquire gets the next slot `60 / rate` seconds after the last.

    Slots are handed out in order, so a run holds the configured rate without
    bursts that would trip the server's own bucket. A 429 pauses everyone,
    not just the request that got it.
    """

    def __init__(self, per_minute: float, clock=time.monotonic) -> None:
        self.configured = per_minute
        self.ceiling = per_minute  # lowered by the server's x-ratelimit-limit-* headers
        self.rate = per_minute
        self._clock = clock
        self._next = 0.0
        self._paused_until = 0.0
        self.pauses = 0

    @property
    def interval(self) -> float:
        return 60.0 / self.rate

    async def acquire(self) -> None:
        """Wait for this request's slot."""
        while True:
            now = self._clock()
            at = max(self._next, self._paused_until, now)
            self._next = at + self.interval
            if at > now:
                await asyncio.sleep(at - now)
            # A pause that began while we slept voids the slot: take a new one.
            if self._clock() >= self._paused_until:
                return

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
        self.observe(headers)
        self.rate = min(self.ceiling, self.rate + self.ceiling * RECOVERY_STEP)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read `x-ratelimit-limit-*` (a ceiling) and `x-ratelimit-remaining-*` (0: pause)."""
        lowered = {k.lower(): v for k, v in headers.items()}
        for kind in ("requests", "images"):
            limit = _number(lowered.get(f"x-ratelimit-limit-{kind}"))
            if limit and limit < self.ceiling:
                self.ceiling = limit
                self.rate = min(self.rate, limit)
            remaining = _number(lowered.get(f"x-ratelimit-remaining-{kind}"))
            reset = parse_duration(lowered.get(f"x-ratelimit-reset-{kind}"))
            if remaining is not None and remaining < 1 and reset:
                self.pause(reset)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | None) -> float | None:
    """`6m0s`, `1.5s`, `120ms` (OpenAI's reset headers) in seconds."""
    if not text:
        return None
    parts = _DURATION.findall(text.strip())
    if not parts or "".join(n + u for n, u in parts) != text.strip():
        return _number(text)
    return sum(float(n) * _UNIT_S[u] for n, u in parts)
