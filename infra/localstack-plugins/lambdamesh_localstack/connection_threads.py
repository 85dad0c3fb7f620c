"""LocalStack's gateway served over HTTP/1.1 by one thread per connection.

Why a server of its own. Every AWS request of an order goes through one Python process, and on
a no-op request most of that process's CPU was the serving itself, not LocalStack. Measured on
one machine in one hour (``lambda:GetAccountSettings``, 300 sequential requests, the emulator's
CPU per request; ``tests/benchmarks/test_emulator_request_cost.py``): LocalStack's twisted
server 0.83 ms, werkzeug's threaded server 0.87 ms, hypercorn (h11 on asyncio, LocalStack's
other choice) 1.87 ms, this server 0.43 ms; a DynamoDB ``GetItem`` 1.30 → 0.73 ms, ``PutItem``
1.57 → 0.93 ms. In twisted a request crosses threads twice (the reactor parses it, a pool thread
runs the gateway, the reactor writes the answer) and goes through general machinery at each
step; werkzeug's server parses headers with the e-mail parser and builds its WSGI environment
anew; h11 parses byte by byte in Python. Here the connection's own thread reads the request from
a buffered socket file, runs the gateway (rolo's WSGI adapter, as the twisted server does) and
writes the answer in one ``sendall`` when it can (:mod:`lambdamesh_localstack.http_framing`).

What it serves: HTTP/1.1 and 1.0 (1.0 connections closed after one answer), keep-alive and
pipelining; request bodies framed by ``Content-Length`` or ``chunked``, read by the gateway as it
needs them; ``Expect: 100-continue``; answers streamed as the gateway yields them, framed by the
gateway's ``Content-Length``, else by the whole body when it came in one piece, else ``chunked``;
HTTPS on the same port as HTTP, as LocalStack's twisted server offers it (a connection whose
first byte opens a TLS handshake is wrapped). Not served: HTTP/2 and WebSocket upgrades (no
service this project runs uses them; LocalStack's ``loopback-twisted`` server still offers them).
A malformed request is answered 400 (431 for too many or too long header lines, 505 for another
HTTP version, 501 for a transfer coding other than chunked) and its connection closed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from itertools import count
from typing import Any, Final, cast

from lambdamesh_localstack.http_framing import (
    LineReader,
    MalformedRequestError,
    ResponseWriter,
    answer_refusal,
    read_head,
    request_body,
    wsgi_environ,
)

LOG = logging.getLogger(__name__)

IDLE_TIMEOUT_S: Final = 300.0
"""A connection is closed when a read or a write on it waits this long."""
DRAIN_LIMIT: Final = 1 << 20
"""Bytes of a request body the gateway did not read that are read away to keep the connection;
a larger rest closes it."""
TLS_HANDSHAKE: Final = 0x16
"""The first byte of a TLS record carrying a handshake (a ClientHello)."""

WsgiApp = Callable[[dict[str, Any], Callable[..., Callable[[bytes], None]]], Iterable[bytes]]


class ConnectionThreadsServer:
    """Serves a WSGI application on listening sockets, one thread per connection.

    Parameters
    ----------
    app
        The WSGI application (LocalStack's gateway behind rolo's ``WsgiGateway``).
    tls
        The context to serve HTTPS with on the same ports; ``None`` serves HTTP only.
    """

    def __init__(self, app: WsgiApp, tls: ssl.SSLContext | None = None) -> None:
        self._app = app
        self._tls = tls
        self._listeners: list[socket.socket] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._numbers = count(1)

    def listen(self, host: str, port: int) -> int:
        """Bind and listen now (``OSError`` if the port is taken), to be served by
        :meth:`serve`; the port bound (the one the system chose for port 0)."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listener = socket.create_server((host, port), family=family, backlog=1024)
        self._listeners.append(listener)
        bound: int = listener.getsockname()[1]
        return bound

    def serve(self) -> None:
        """Accept connections on every listening socket until :meth:`stop`."""
        for listener in self._listeners:
            threading.Thread(
                target=self._accept, args=(listener,), name="gateway-accept", daemon=True
            ).start()
        self._stopped.wait()

    def stop(self) -> None:
        """Stop accepting, close every open connection, and let :meth:`serve` return."""
        self._stopped.set()
        with self._lock:
            sockets = [*self._listeners, *self._connections]
        for sock in sockets:
            with contextlib.suppress(OSError):  # not connected, or already shut
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                sock, client = listener.accept()
            except OSError as error:
                if self._stopped.is_set():
                    return
                LOG.warning("gateway could not accept a connection: %s", error)
                self._stopped.wait(0.05)  # e.g. out of file descriptors: let some close
                continue
            threading.Thread(
                target=self._serve_connection,
                args=(sock, client, listener.getsockname()),
                name=f"gateway-connection-{next(self._numbers)}",
                daemon=True,
            ).start()

    def _serve_connection(
        self, sock: socket.socket, client: tuple[Any, ...], server: tuple[Any, ...]
    ) -> None:
        served = sock
        with self._lock:
            if self._stopped.is_set():
                sock.close()
                return
            self._connections.add(sock)
        try:
            sock.settimeout(IDLE_TIMEOUT_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            served = self._maybe_tls(sock)
            secure = served is not sock
            # typeshed types a binary makefile as IOBase: with buffering, it is a BufferedReader
            with cast(io.BufferedReader, served.makefile("rb", buffering=65536)) as rfile:
                while self._serve_request(served, rfile, client, server, secure=secure):
                    pass
        except (OSError, ValueError, MalformedRequestError):
            pass  # the client went away or sent garbage, timed out, or the server is stopping
        except Exception:
            LOG.exception("gateway connection from %s failed", client[0])
        finally:
            with self._lock:
                self._connections.discard(sock)
                self._connections.discard(served)
            served.close()
            sock.close()

    def _maybe_tls(self, sock: socket.socket) -> socket.socket:
        """``sock``, or a TLS socket over it when its first byte opens a TLS handshake."""
        if self._tls is None or sock.recv(1, socket.MSG_PEEK)[:1] != bytes([TLS_HANDSHAKE]):
            return sock
        wrapped = self._tls.wrap_socket(sock, server_side=True)
        with self._lock:
            self._connections.add(wrapped)
        return wrapped

    def _serve_request(
        self,
        sock: socket.socket,
        rfile: LineReader,
        client: tuple[Any, ...],
        server: tuple[Any, ...],
        *,
        secure: bool,
    ) -> bool:
        """Serve one request; whether the connection stays open for the next."""
        try:
            head = read_head(rfile)
            if head is None:
                return False
            body = request_body(head, rfile)
            environ = wsgi_environ(head, body, client=client[:2], server=server[:2], secure=secure)
        except MalformedRequestError as refusal:
            answer_refusal(sock, refusal.status, refusal.reason)
            return False
        if head.version == b"HTTP/1.1" and b"100-continue" in head.tokens(b"expect"):
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer = ResponseWriter(sock, head)
        result: Iterable[bytes] = ()
        try:
            result = self._app(environ, writer.start_response)
            writer.answer(result)
            writer.finish()
        except OSError:
            raise  # the connection is gone: nothing more can be said on it
        except Exception:
            LOG.exception("the gateway failed on %r %r", head.method, head.target)
            if not writer.sent_head:
                answer_refusal(sock, "500 Internal Server Error", "the gateway failed")
            return False  # an answer cut short cannot be framed: the close ends it
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if not writer.keep_alive or self._stopped.is_set():
            return False
        try:
            return body.drain(DRAIN_LIMIT)
        except (MalformedRequestError, ConnectionError):
            return False  # the rest of the body was malformed: the connection cannot go on


def tls_context(ssl_creds: tuple[str, str] | None) -> ssl.SSLContext | None:
    """The server-side TLS context of LocalStack's certificate and key files, if given."""
    if not ssl_creds:
        return None
    cert_file_name, key_file_name = ssl_creds
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file_name, key_file_name)
    context.set_alpn_protocols(["http/1.1"])
    return context
