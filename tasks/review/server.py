"""Running the review app: bind a socket, print its URL, serve with uvicorn until stopped.

The socket is bound here, before uvicorn starts, so that `--port 0` has its
real port for the URL and for the Host check before the first request, and
a browser that connects early waits in the listen backlog.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn

from assetgen.tasks.review.security import (
    LOOPBACK_NAMES,
    TOKEN_PARAM,
    WILDCARDS,
    Guard,
    is_loopback,
    url_host,
)

GRACEFUL_S = 3  # open keep-alive connections of a browser get this long at the end


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` (0: any free port)."""
    # `localhost` may resolve to ::1 first while a browser tries 127.0.0.1: one address.
    host = "127.0.0.1" if host.lower() in LOOPBACK_NAMES else host
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def app_url(host: str, port: int, token: str) -> str:
    """The URL to open: the bound address (bound to every interface: 127.0.0.1, which the
    Host check accepts as well as this machine's names and addresses)."""
    shown = host
    if host in WILDCARDS or host.lower() in LOOPBACK_NAMES:
        shown = "127.0.0.1"
    return f"http://{url_host(shown)}:{port}/?{TOKEN_PARAM}={token}"


def public_warning(host: str) -> str | None:
    """What to tell a user who binds beyond loopback (None when it is loopback)."""
    if is_loopback(host):
        return None
    return (
        f"warning: the review app listens on {host}, not only on this machine: anyone who "
        "can reach it and has the URL's token can approve and reject. Plain HTTP: use it on "
        "a network you trust."
    )


@dataclass
class Running:
    """A server started in a thread (tests, bench): its port; `stop()` ends it."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def server(app: Guard, sock: socket.socket) -> uvicorn.Server:
    config = uvicorn.Config(
        app,
        interface="asgi3",
        lifespan="off",
        # No access log: the first request's URL holds the token, and tokens stay out of logs.
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_S,
        server_header=False,
    )
    return uvicorn.Server(config)


def run(app: Guard, sock: socket.socket) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's handlers end it gracefully)."""
    server(app, sock).run(sockets=[sock])


@contextlib.contextmanager
def in_thread(app: Guard, sock: socket.socket) -> Iterator[Running]:
    """Serve in a thread of this process for the block's duration."""
    srv = server(app, sock)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    running = Running(srv, thread, sock.getsockname()[1])
    try:
        while not srv.started and thread.is_alive():
            thread.join(0.01)
        yield running
    finally:
        running.stop()
        sock.close()
