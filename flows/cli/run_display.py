"""The live progress display of `assetgen run` on a terminal (rich)."""

from __future__ import annotations

import threading
from types import TracebackType

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from assetgen.tasks.reporting.progress import Snapshot, format_duration

REFRESH_S = 0.5


def render(s: Snapshot) -> RenderableType:
    """Jobs done/failed/left, rate vs limit, spend vs budget and ETA, as a few lines."""
    bar = Table.grid(padding=(0, 1))
    bar.add_row(
        ProgressBar(total=max(s.total, 1), completed=s.done, width=40),
        Text(f"{s.fraction:4.0%}  {s.done:,}/{s.total:,} jobs", style="bold"),
    )
    counts = Table.grid(padding=(0, 3))
    counts.add_row(
        Text(f"generated {s.generated:,}", style="green"),
        Text(f"failed {s.failed:,}", style="red" if s.failed else "dim"),
        Text(
            f"left for budget {s.budget_exhausted:,}",
            style="yellow" if s.budget_exhausted else "dim",
        ),
        Text(f"left {s.left:,}"),
    )
    budget = "no cap" if s.budget_usd is None else f"${s.budget_usd:,.2f}"
    near_cap = s.budget_usd is not None and s.spent_usd >= 0.9 * s.budget_usd
    rate = Table.grid(padding=(0, 3))
    rate.add_row(
        Text(f"{s.images_per_min:,.0f} img/min of {s.limit_ipm:,.0f} limit"),
        Text(f"spent ${s.spent_usd:,.2f} of {budget}", style="yellow" if near_cap else ""),
        Text(f"ETA {format_duration(s.eta_s)}"),
        Text(f"elapsed {format_duration(s.elapsed_s)}", style="dim"),
    )
    return Group(bar, counts, rate)


class LiveProgress:
    """A watcher (tasks.progress) that redraws a live display; starts at its first snapshot."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None
        self._lock = threading.Lock()

    def __call__(self, snapshot: Snapshot) -> None:
        with self._lock:
            if self._live is None:
                self._live = Live(console=self.console, auto_refresh=False, transient=False)
                self._live.start()
            self._live.update(render(snapshot), refresh=True)

    def __enter__(self) -> LiveProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Leave the last frame on screen; later output goes below it."""
        with self._lock:
            if self._live is not None:
                self._live.stop()
                self._live = None
