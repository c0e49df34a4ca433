"""The processes a command started, read from /proc, to check that none outlives it."""

from __future__ import annotations

import time
from pathlib import Path


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may hold spaces.
    state, ppid = text.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def descendants(pid: int) -> set[int]:
    """Every process below `pid` right now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[1], []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan nobody reaps is dead all the same)."""
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")


def still_running(pids: set[int], within_s: float) -> set[int]:
    """Those of `pids` that are still running after `within_s` seconds (polling)."""
    deadline = time.monotonic() + within_s
    while (left := {p for p in pids if running(p)}) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left
