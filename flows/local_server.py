"""A Prefect API for one command when none is configured: a local server that ends with it.

Prefect's own no-server mode starts the same server as a child process, but
a command killed with SIGKILL (or by the OOM killer) leaves that child
running forever. This one runs in a child that watches its parent
(tasks.lifetime) and exits when the command is gone, however it ended.
Run as `python -m flows.local_server PORT PARENT_PID` by `prefect_api()`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx

STARTUP_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 10.0
START_ATTEMPTS = 3  # a port picked free can be taken before the server binds it


@contextlib.contextmanager
def prefect_api() -> Iterator[None]:
    """Use PREFECT_API_URL if it is set; else start a local server for the duration."""
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        yield
        return
    server, url = _start()
    # Process-wide (the environment, then Prefect's global settings), not a
    # context variable: threads that report progress must reach this server too.
    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()
    try:
        yield
    finally:
        _drain()
        os.environ.pop("PREFECT_API_URL", None)
        refresh_global_settings_context()
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _drain() -> None:
    """Send the logs and events Prefect still holds while the server is there to take them."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        with contextlib.suppress(Exception):  # a worker that never started
            worker.drain_all(timeout=DRAIN_TIMEOUT_S)


def _start() -> tuple[subprocess.Popen[bytes], str]:
    from prefect.settings import get_current_settings

    env = {
        **os.environ,
        **get_current_settings().to_environment_variables(exclude_unset=True),
        # What Prefect's own temporary server sets: no UI, ephemeral database handling.
        "PREFECT_UI_ENABLED": "0",
        "PREFECT__SERVER_EPHEMERAL": "1",
        "PREFECT__SERVER_FINAL": "1",
    }
    from prefect.logging import get_logger

    for _ in range(START_ATTEMPTS):
        port = _free_port()
        get_logger("assetgen").info("Starting a local Prefect server on 127.0.0.1:%d", port)
        command = [sys.executable, "-m", "assetgen.flows.local_server", str(port), str(os.getpid())]
        server = subprocess.Popen(command, env=env)
        url = f"http://127.0.0.1:{port}/api"
        if _wait_healthy(server, url):
            return server, url
    raise RuntimeError(f"the local Prefect server did not start (last tried {url})")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(server: subprocess.Popen[bytes], url: str) -> bool:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            if server.poll() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{url}/health").status_code == 200:
                    return True
            time.sleep(0.1)
    server.kill()
    server.wait()
    return False


def main() -> None:
    """The server process: Prefect's API on 127.0.0.1:PORT until PARENT_PID is gone."""
    import uvicorn

    from assetgen.tasks.runtime.lifetime import exit_with_parent

    exit_with_parent(int(sys.argv[2]))
    uvicorn.run(
        "prefect.server.api.server:create_app",
        factory=True,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="error",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
