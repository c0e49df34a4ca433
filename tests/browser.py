"""A headless Chromium driven over the Chrome DevTools Protocol, for tests and screenshots.

No browser-automation package: Chromium is started with
`--remote-debugging-port=0`, writes the port it picked to DevToolsActivePort
in its profile folder, and a page target is driven through its WebSocket
with the `websockets` library (Prefect brings it). Commands carry ids; events
that arrive meanwhile are kept until waited for.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

START_TIMEOUT_S = 20.0
COMMAND_TIMEOUT_S = 20.0


class BrowserError(RuntimeError):
    """Chromium did not start, or a DevTools command failed."""


def find_chromium() -> str | None:
    """$CHROMIUM, else the first of chromium / chromium-browser / google-chrome on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


class Page:
    """One page target: send commands, wait for events."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    def send(self, method: str, timeout: float = COMMAND_TIMEOUT_S, **params: Any) -> Any:
        """Run one command; its result, or BrowserError with the protocol's message."""
        command_id = next(self._ids)
        self._ws.send(json.dumps({"id": command_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline, method)
            if message.get("id") == command_id:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._events.append(message)

    def wait_for(self, event: str, timeout: float = COMMAND_TIMEOUT_S) -> dict[str, Any]:
        """The params of the first `event` since the last wait (kept if it came already)."""
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self._events):
                if message["method"] == event:
                    del self._events[: i + 1]
                    return message.get("params", {})
            message = self._receive(deadline, event)
            if "method" in message:
                self._events.append(message)

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BrowserError(f"timed out waiting for {waiting_for}")
        try:
            return json.loads(self._ws.recv(timeout=left))
        except TimeoutError:
            raise BrowserError(f"timed out waiting for {waiting_for}") from None

    def navigate(self, url: str, timeout: float = COMMAND_TIMEOUT_S) -> None:
        """Load `url` and wait for its load event (every <img> that loads has loaded)."""
        self.send("Page.enable")
        self._events.clear()
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise BrowserError(f"cannot load {url}: {result['errorText']}")
        self.wait_for("Page.loadEventFired", timeout)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (JSON-able values only)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, width: int = 1280, max_height: int | None = None) -> Path:
        """A PNG of the whole page at `width` CSS pixels (cut at `max_height` if given)."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=800,
            deviceScaleFactor=1,
            mobile=False,
        )
        metrics = self.send("Page.getLayoutMetrics")
        height = int(metrics["cssContentSize"]["height"] + 0.5)
        if max_height:
            height = min(height, max_height)
        shot = self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path


class Chromium:
    """A headless Chromium of our own (own profile folder, own process group)."""

    def __init__(self, executable: str) -> None:
        self.executable = executable
        self.profile = Path(tempfile.mkdtemp(prefix="assetgen-chromium-"))
        self.port: int | None = None
        self._log = (self.profile.parent / f"{self.profile.name}.log").open("w+b")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Chromium:
        args = [
            self.executable,
            "--headless=new",
            "--no-sandbox",  # root in containers and CI has no user namespace sandbox
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--mute-audio",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            "--window-size=1280,800",
            "about:blank",
        ]
        # A process group of its own: close() ends the renderers and helpers
        # this browser started, and nothing else.
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.port = self._wait_for_port()
        return self

    def _wait_for_port(self) -> int:
        assert self._proc is not None
        marker = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BrowserError(f"chromium exited ({self._proc.returncode}): {self.log_tail()}")
            with contextlib.suppress(FileNotFoundError, ValueError, IndexError):
                # Written once the DevTools server listens: first line, the port.
                return int(marker.read_text().splitlines()[0])
            time.sleep(0.05)
        raise BrowserError(f"chromium wrote no DevToolsActivePort in {START_TIMEOUT_S} s")

    def log_tail(self, size: int = 2000) -> str:
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")[-size:]

    @contextlib.contextmanager
    def page(self) -> Iterator[Page]:
        """The browser's first tab, connected."""
        with httpx.Client(trust_env=False, timeout=10) as http:
            targets = http.get(f"http://127.0.0.1:{self.port}/json/list").json()
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            raise BrowserError(f"no page target in {targets}")
        # No proxy (loopback); no size limit (full-page screenshots are megabytes).
        with connect(pages[0]["webSocketDebuggerUrl"], proxy=None, max_size=None) as ws:
            yield Page(ws)

    def close(self) -> None:
        """End the browser and every process it started; remove its profile."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if proc is not None:
            # Helpers of the group that outlived the browser (zygotes).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
