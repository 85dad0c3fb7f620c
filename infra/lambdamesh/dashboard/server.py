"""The dashboard's HTTP server: the page and the JSON it asks for, on loopback only.

Standard library only (``http.server``): a handful of GET routes for one local user need no web
framework. Each request is answered by a provider function (see :class:`Providers`), so the
server is tested without AWS. A request whose ``Host`` is not a name of this machine is refused
(DNS rebinding: a web page elsewhere must not read the system through the user's browser), as
the emulator's own gateway does.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from lambdamesh_localstack.host_check import allowed_host
from lambdamesh_localstack.listen_addresses import is_loopback_address

LOG = logging.getLogger(__name__)

DEFAULT_ORDERS = 20
MAX_ORDERS = 100
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


@dataclass(frozen=True)
class Providers:
    """What answers each JSON route; each may raise, and the page is told why.

    Attributes
    ----------
    status
        ``GET /api/status``: services, topics, queues and DLQs with their depths.
    orders
        ``GET /api/orders?limit=N``: the newest orders.
    history
        ``GET /api/orders/<id>/events``: an order's events.
    trace
        ``GET /api/trace/<correlation id>``: a request's hops.
    topology
        ``GET /api/topology``: the topology picture (``{"svg", "mermaid"}``).
    """

    status: Callable[[], Any]
    orders: Callable[[int], Any]
    history: Callable[[str], Any]
    trace: Callable[[str], Any]
    topology: Callable[[], Any]


ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/api/status$"), "status"),
    (re.compile(r"^/api/orders$"), "orders"),
    (re.compile(r"^/api/orders/(?P<arg>[^/]+)/events$"), "history"),
    (re.compile(r"^/api/trace/(?P<arg>[^/]+)$"), "trace"),
    (re.compile(r"^/api/topology$"), "topology"),
]


STATIC = {"/": ("page.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript")}
"""Path → (file of this package, content type): the page and its script (a file of its own,
so the Content-Security-Policy can forbid inline scripts)."""


def static_file(name: str) -> bytes:
    """A file of the page, from this package."""
    return resources.files(__package__).joinpath(name).read_bytes()


def _limit(query: str) -> int:
    values = parse_qs(query).get("limit", [])
    try:
        limit = int(values[0]) if values else DEFAULT_ORDERS
    except ValueError:
        limit = DEFAULT_ORDERS
    return max(1, min(limit, MAX_ORDERS))


class DashboardHandler(BaseHTTPRequestHandler):
    """Answers the page and its JSON routes; refuses foreign hosts and other methods."""

    server: DashboardServer
    server_version = "lambdamesh-dashboard"

    def do_GET(self) -> None:
        """Serve one GET."""
        if not allowed_host(self.headers.get("Host")):
            self._json(
                HTTPStatus.FORBIDDEN,
                {"error": "not a name of this machine; use localhost or 127.0.0.1"},
            )
            return
        url = urlsplit(self.path)
        if url.path in STATIC:
            name, content_type = STATIC[url.path]
            self._send(HTTPStatus.OK, content_type, static_file(name))
            return
        for pattern, name in ROUTES:
            matched = pattern.match(url.path)
            if matched is None:
                continue
            provider = getattr(self.server.providers, name)
            try:
                if name == "orders":
                    body = provider(_limit(url.query))
                elif "arg" in matched.groupdict():
                    body = provider(unquote(matched["arg"]))
                else:
                    body = provider()
            except LookupError as missing:
                self._json(HTTPStatus.NOT_FOUND, {"error": str(missing)})
            except Exception as error:
                LOG.warning("dashboard %s failed: %s", name, error)
                self._json(HTTPStatus.BAD_GATEWAY, {"error": f"{type(error).__name__}: {error}"})
            else:
                self._json(HTTPStatus.OK, body)
            return
        self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path}"})

    def do_POST(self) -> None:
        """Refuse: the dashboard only reads."""
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "the dashboard only reads (GET)"})

    def do_PUT(self) -> None:
        """Refuse: the dashboard only reads."""
        self.do_POST()

    def do_DELETE(self) -> None:
        """Refuse: the dashboard only reads."""
        self.do_POST()

    def _json(self, status: HTTPStatus, body: Any) -> None:
        self._send(status, "application/json", json.dumps(body, default=str).encode())

    def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in SECURITY_HEADERS.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Requests go to the debug log, not to the terminal the user reads."""
        LOG.debug("%s %s", self.address_string(), format % args)


class NotLoopbackError(ValueError):
    """The dashboard was asked to listen on an address that is not loopback."""


class DashboardServer(ThreadingHTTPServer):
    """The dashboard on ``host:port`` (a loopback address only; port 0 picks a free one).

    Raises
    ------
    NotLoopbackError
        For any other address.
    """

    daemon_threads = True

    def __init__(self, host: str, port: int, providers: Providers) -> None:
        if not is_loopback_address(host):
            raise NotLoopbackError(
                f"the dashboard listens on loopback only (127.0.0.1 or ::1), not {host!r}"
            )
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.providers = providers
        super().__init__((host, port), DashboardHandler)

    @property
    def url(self) -> str:
        """The page's address."""
        address = self.server_address
        host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{address[1]}/"
