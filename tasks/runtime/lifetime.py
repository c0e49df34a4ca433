"""Child processes that end with the process that started them, however it ended."""

from __future__ import annotations

import os
import threading
import time

POLL_S = 0.5


def exit_with_parent(parent: int, poll_s: float = POLL_S) -> None:
    """End this process as soon as `parent` (the pid that started it) is gone.

    A parent killed outright (SIGKILL, the OOM killer) cannot stop its
    children; the child notices it was re-parented and exits. The parent's
    pid comes from the parent, not from `os.getppid()` here: a child still
    starting up when the parent died is already re-parented. Polling, not
    PR_SET_PDEATHSIG: that fires when the parent *thread* ends, and pools
    are often started from short-lived threads.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
