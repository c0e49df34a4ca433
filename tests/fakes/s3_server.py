"""A moto S3 server in a process of its own, on 127.0.0.1.

Its own process, not a thread of the test process: delta-rs calls hold the
GIL while they wait for S3, so an in-process server could not answer them.
The server ends with the process that started it, however that one ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx

_MAIN = (
    "import sys;"
    "from assetgen.tasks.runtime.lifetime import exit_with_parent;"
    "exit_with_parent(int(sys.argv[1]));"
    "from moto.server import main;"
    "main(sys.argv[2:])"
)


def start_moto(timeout_s: float = 30.0) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server; the process and its endpoint URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", _MAIN, str(os.getpid()), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            httpx.get(endpoint, timeout=1)
            return proc, endpoint
        except httpx.HTTPError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto server did not start (pip install -e '.[test]')") from None
            time.sleep(0.1)


def stop_moto(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server started by start_moto."""
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
