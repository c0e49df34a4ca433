"""A run's progress as jobs finish: counts, rate, spend and ETA, pushed to whoever watches.

The dispatch loop records each outcome; watchers (the terminal display, log
lines, the Prefect progress artifact) read snapshots on their own clock from a
thread, so a slow watcher (an API call) never holds up dispatch.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from assetgen.tasks.generation.dispatch import JobOutcome

RATE_WINDOW_S = 60.0  # images/min is measured over the last minute


@dataclass(frozen=True)
class Snapshot:
    """Where a run stands at one moment."""

    total: int
    generated: int
    failed: int
    budget_exhausted: int
    stopped: int
    spent_usd: float
    budget_usd: float | None
    limit_ipm: float
    images_per_min: float
    elapsed_s: float

    @property
    def done(self) -> int:
        return self.generated + self.failed + self.budget_exhausted + self.stopped

    @property
    def left(self) -> int:
        return max(0, self.total - self.done)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def eta_s(self) -> float | None:
        """Seconds to go at the current rate; None before the first image."""
        if not self.left:
            return 0.0
        return self.left / self.images_per_min * 60 if self.images_per_min > 0 else None

    def line(self) -> str:
        """One plain line: for logs and terminals without a live display."""
        budget = "no cap" if self.budget_usd is None else f"${self.budget_usd:.2f}"
        return (
            f"{self.done}/{self.total} jobs done ({self.generated} generated, {self.failed} "
            f"failed, {self.budget_exhausted} left for budget), {self.left} left; "
            f"{self.images_per_min:.0f} img/min of {self.limit_ipm:.0f}; "
            f"${self.spent_usd:.2f} of {budget}; ETA {format_duration(self.eta_s)}"
        )


def format_duration(seconds: float | None) -> str:
    """`1h02m`, `4m05s`, `12s`; `?` when unknown."""
    if seconds is None:
        return "?"
    s = round(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """Counts outcomes as the dispatch loop reports them; snapshots from any thread."""

    def __init__(
        self,
        total: int,
        limit_ipm: float,
        budget_usd: float | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.limit_ipm, self.budget_usd = total, limit_ipm, budget_usd
        self._clock = clock
        self._started = clock()
        self._lock = threading.Lock()
        self._counts: collections.Counter[str] = collections.Counter()
        self._spent = 0.0
        self._recent: collections.deque[float] = collections.deque()  # when images arrived

    def record(self, outcome: JobOutcome) -> None:
        """Count one finished job (its cost is what it was billed)."""
        now = self._clock()
        with self._lock:
            self._counts[outcome.status] += 1
            self._spent += outcome.cost_usd
            if outcome.status == "generated":
                self._recent.append(now)

    def snapshot(self) -> Snapshot:
        """Counts now; the rate over the last minute (or since the start, if shorter)."""
        now = self._clock()
        with self._lock:
            while self._recent and self._recent[0] < now - RATE_WINDOW_S:
                self._recent.popleft()
            counts, spent, recent = dict(self._counts), self._spent, len(self._recent)
        elapsed = now - self._started
        window = min(elapsed, RATE_WINDOW_S)
        return Snapshot(
            total=self.total,
            generated=counts.get("generated", 0),
            failed=counts.get("failed", 0),
            budget_exhausted=counts.get("budget_exhausted", 0),
            stopped=counts.get("stopped", 0),
            spent_usd=spent,
            budget_usd=self.budget_usd,
            limit_ipm=self.limit_ipm,
            images_per_min=recent / window * 60 if window > 0 else 0.0,
            elapsed_s=elapsed,
        )


# Called with each snapshot, every `every_s` seconds and once more at the end.
Watcher = Callable[[Snapshot], None]


@dataclass
class Watch:
    """A watcher, how often it wants a snapshot, and what to call after the last one."""

    fn: Watcher
    every_s: float
    close: Callable[[], None] | None = None


@contextlib.contextmanager
def watched(progress: Progress, watches: list[Watch]) -> Iterator[None]:
    """Feed each watcher snapshots from its own thread while the block runs, and a last one."""
    done = threading.Event()

    def feed(watch: Watch) -> None:
        while not done.wait(watch.every_s):
            watch.fn(progress.snapshot())

    threads = [threading.Thread(target=feed, args=(w,), daemon=True) for w in watches]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        done.set()
        for t in threads:
            t.join()
        last = progress.snapshot()
        for w in watches:
            w.fn(last)
            if w.close:
                w.close()


# The terminal display `assetgen run` puts up while its flow runs in this
# thread (a context variable: the flow and its tasks run in the caller's
# context). None: nobody is looking at a terminal, log plain lines instead.
DISPLAY: contextvars.ContextVar[Watch | None] = contextvars.ContextVar("display", default=None)


@contextlib.contextmanager
def displaying(watch: Watch) -> Iterator[None]:
    """Show this run's progress through `watch` instead of log lines."""
    token = DISPLAY.set(watch)
    try:
        yield
    finally:
        DISPLAY.reset(token)
