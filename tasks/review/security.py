"""What keeps the review app to its one user: the access token, a session cookie, CSRF and
same-origin checks on every change, a Host check against DNS rebinding, and strict headers.

One ASGI middleware (`Guard`) in front of every route, static files included:

- The Host header must name the address the app is bound to (DNS rebinding: a
  page of evil.example that resolves to 127.0.0.1 still sends `Host:
  evil.example`). Checked first, before anything else is answered.
- The first visit brings the token (`/?token=...`, the URL `serve` prints): it
  opens a session, whose id goes in an HttpOnly SameSite=Strict cookie, and is
  redirected to the same URL without the token (so it stays out of the history
  and out of any screenshot). Every request after that needs the cookie.
- A POST needs the session's CSRF token (the page's meta tag, sent back as the
  X-CSRF-Token header, compared in constant time), an Origin (or Referer) of
  this very host, and a JSON body: no form of another site can send one.
- Every response carries a Content-Security-Policy with no inline script or
  style (the page's JS and CSS are static files), nosniff, no-referrer, and
  frame-ancestors 'none'.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_PARAM = "token"
CSRF_HEADER = "x-csrf-token"
MAX_SESSIONS = 1000  # a session per visit with the token: the oldest go first
SAFE_METHODS = {"GET", "HEAD"}
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
WILDCARDS = {"", "0.0.0.0", "::"}


def new_token() -> str:
    """An access token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: only this machine can connect."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def url_host(host: str) -> str:
    """`host` as it goes in a URL or a Host header (an IPv6 address in brackets)."""
    bare = host.strip("[]")
    try:
        return f"[{bare}]" if ipaddress.ip_address(bare).version == 6 else bare
    except ValueError:
        return host


@dataclass(frozen=True)
class HostRule:
    """Which Host headers name this app: the bound address and port, nothing else.

    Bound to loopback: 127.0.0.1 (or ::1) and localhost. Bound to one address or
    name: that one. Bound to every interface (0.0.0.0): any IP address (a rebinding
    attack needs a domain name of its own) and this machine's own names.
    """

    bind: str
    port: int
    names: frozenset[str] = field(default_factory=frozenset)
    any_ip: bool = False

    @classmethod
    def for_bind(cls, bind: str, port: int) -> HostRule:
        host = bind.strip("[]").lower()
        if host in WILDCARDS:
            own = {socket.gethostname().lower(), socket.getfqdn().lower(), *LOOPBACK_NAMES}
            return cls(bind, port, frozenset(own), any_ip=True)
        names = {url_host(host).lower()}
        if is_loopback(host):
            names |= {"localhost", "127.0.0.1"} if ":" not in host else {"localhost", "[::1]"}
        return cls(bind, port, frozenset(names))

    def allows(self, header: str | None) -> bool:
        """Does a Host header (`name[:port]`) name this app?"""
        if not header:
            return False
        name, port = _split_host(header.strip().lower())
        if port != self.port:
            return False
        if name in self.names:
            return True
        if self.any_ip:
            try:
                ipaddress.ip_address(name.strip("[]"))
                return True
            except ValueError:
                return False
        return False


def _split_host(header: str) -> tuple[str, int | None]:
    """`127.0.0.1:8080` -> ("127.0.0.1", 8080); `[::1]:80` -> ("[::1]", 80); no port: 80."""
    if header.startswith("["):
        end = header.find("]")
        name, rest = header[: end + 1], header[end + 1 :]
    else:
        name, _, port_text = header.partition(":")
        rest = f":{port_text}" if port_text else ""
    if not rest:
        return name, 80
    if not rest.startswith(":") or not rest[1:].isdigit():
        return name, None
    return name, int(rest[1:])


@dataclass
class Session:
    """One browser that came with the token: its CSRF token and reviewer name (if typed)."""

    csrf: str
    reviewer: str | None = None


class Sessions:
    """Sessions by id, in memory: they last as long as the app (a new start, a new token)."""

    def __init__(self) -> None:
        self._by_id: OrderedDict[str, Session] = OrderedDict()
        self._lock = threading.Lock()

    def open(self) -> tuple[str, Session]:
        session_id, session = secrets.token_urlsafe(32), Session(csrf=secrets.token_urlsafe(32))
        with self._lock:
            self._by_id[session_id] = session
            while len(self._by_id) > MAX_SESSIONS:
                self._by_id.popitem(last=False)
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            # Looked up by key; a guessed id finds nothing in 2**256.
            return self._by_id.get(session_id)


class Guard:
    """The ASGI middleware that checks every request (see the module docstring)."""

    def __init__(self, app: ASGIApp, token: str, hosts: HostRule, sessions: Sessions) -> None:
        self.app = app
        self.token = token
        self.hosts = hosts
        self.sessions = sessions
        # Cookies do not keep ports apart: two apps on one host each need their own name.
        self.cookie = f"assetgen_review_{hosts.port}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # a WebSocket: the app has none, nor lets one in
            await send({"type": "websocket.close", "code": 1008})
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        headers = _headers(scope)
        host = headers.get("host")
        if not self.hosts.allows(host):
            await _refuse(send_with_headers, 403, "unknown Host: open the URL review serve printed")
            return
        method = scope["method"]
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        given = [v for k, v in query if k == TOKEN_PARAM]
        if given:
            if method not in SAFE_METHODS or not self._token_ok(given[-1]):
                await _refuse(send_with_headers, 401, "wrong access token")
                return
            await self._start_session(send_with_headers, scope["path"], query)
            return
        session = self.sessions.get(_cookies(headers).get(self.cookie))
        if session is None:
            await _refuse(
                send_with_headers, 401, "no access token: open the URL review serve printed"
            )
            return
        if method not in SAFE_METHODS:
            problem = self._unsafe_problem(headers, session, str(host))
            if problem:
                await _refuse(send_with_headers, 403, problem)
                return
        scope.setdefault("state", {})["session"] = session
        await self.app(scope, receive, send_with_headers)

    def _token_ok(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _start_session(self, send: Send, path: str, query: list[tuple[str, str]]) -> None:
        """A new session cookie, and the same URL again without the token."""
        session_id, _ = self.sessions.open()
        rest = urlencode([(k, v) for k, v in query if k != TOKEN_PARAM])
        # Only a path of this app: the request's own path, never a URL from the query.
        location = (path if path.startswith("/") and not path.startswith("//") else "/") + (
            f"?{rest}" if rest else ""
        )
        cookie = f"{self.cookie}={session_id}; Path=/; HttpOnly; SameSite=Strict"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1", "replace")),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    def _unsafe_problem(self, headers: dict[str, str], session: Session, host: str) -> str | None:
        """Why a state-changing request is refused, or None."""
        origin = (headers.get("origin") or "").lower() or None
        mine = f"http://{host.lower()}"
        if origin is not None:
            if origin != mine:  # "null" included: a sandboxed or opaque origin
                return "cross-origin request refused"
        else:
            referer = urlsplit(headers.get("referer", ""))
            if f"{referer.scheme}://{referer.netloc}".lower() != mine:
                return "request without a same-origin Origin or Referer refused"
        csrf = headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(csrf.encode(), session.csrf.encode()):
            return "missing or wrong CSRF token"
        if headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return "expected a JSON body"
        return None


def _headers(scope: Scope) -> dict[str, str]:
    """The request's headers by lower-case name (the last of repeated ones)."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(headers: dict[str, str]) -> dict[str, str]:
    found = {}
    for chunk in headers.get("cookie", "").split(";"):
        key, sep, value = chunk.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    return found


async def _refuse(send: Send, status: int, reason: str) -> None:
    body = f"{status}: {reason}\n".encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
