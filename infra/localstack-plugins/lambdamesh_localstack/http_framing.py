"""HTTP/1.1 on a connection: a request's head read and checked, its body read as its framing
says, the WSGI environment made of them, and an answer written with the framing it needs.

Written here rather than taken from a library for the serving cost it saves
(:mod:`lambdamesh_localstack.connection_threads` has the figures): h11 parses in pure Python byte
by byte, ``http.server`` reads headers with the e-mail parser, twisted's parser is bound to its
reactor. A request is read from a buffered socket file line by line, as RFC 9112 frames it:
empty lines before the request line skipped; no space before a header's colon and no obsolete
line folding; a body framed by ``Content-Length`` (one value, digits) or ``chunked`` (extensions
and trailers read and dropped). What cannot be read is a :class:`MalformedRequestError` with the
status to answer: 400, 414, 431, 501 or 505.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Final, Protocol
from urllib.parse import unquote_to_bytes, urlsplit

MAX_LINE: Final = 65536
"""Longest request line or header line, in bytes."""
MAX_HEADERS: Final = 256
"""Most header lines a request may have."""
NO_BODY_STATUSES: Final = frozenset((204, 304))


class LineReader(Protocol):
    """What a request is read from: a buffered socket file."""

    def read(self, size: int | None = -1, /) -> bytes: ...

    def readline(self, size: int | None = -1, /) -> bytes: ...


class Sender(Protocol):
    """What an answer is written to: a socket."""

    def sendall(self, data: bytes, /) -> None: ...


class MalformedRequestError(Exception):
    """A request that cannot be read: answered with ``status`` and the connection closed."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class RequestHead:
    """A request's line and headers, as received."""

    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, list[bytes]]]
    """Each header name once, with the casing of its first occurrence, and its values in order
    (as twisted keeps them: AWS answers a header sent twice the same way)."""
    _by_name: dict[bytes, list[bytes]] = field(init=False, repr=False, compare=False)
    """The values of :attr:`headers` by lowercase name: a request's framing is read from
    several headers, each looked up once per request."""

    def __post_init__(self) -> None:
        by_name = {name.lower(): values for name, values in self.headers}
        object.__setattr__(self, "_by_name", by_name)

    def header(self, lowered: bytes) -> bytes | None:
        """The values of the header named ``lowered`` (lowercase), joined by commas."""
        values = self._by_name.get(lowered)
        return None if values is None else b",".join(values)

    def tokens(self, lowered: bytes) -> set[bytes]:
        """The comma-separated tokens of a header, lowercase (``Connection``, ...)."""
        value = self.header(lowered) or b""
        return {token.strip().lower() for token in value.split(b",") if token.strip()}


def read_head(rfile: LineReader) -> RequestHead | None:
    """The next request's line and headers; ``None`` when the client closed the connection
    between requests.

    >>> sent = b"GET /a?b HTTP/1.1\\r\\nHost: x\\r\\nX-A: 1\\r\\nx-a: 2\\r\\n\\r\\n"
    >>> head = read_head(io.BytesIO(sent))
    >>> head.method, head.target, head.headers
    (b'GET', b'/a?b', [(b'Host', [b'x']), (b'X-A', [b'1', b'2'])])
    >>> read_head(io.BytesIO(b"")) is None
    True

    Raises
    ------
    MalformedRequestError
        The request line or a header line is malformed, too long, or there are too many.
    """
    line = rfile.readline(MAX_LINE + 1)
    while line in (b"\r\n", b"\n"):  # RFC 9112 2.2: empty lines before a request are ignored
        line = rfile.readline(MAX_LINE + 1)
    if not line:
        return None
    if len(line) > MAX_LINE:
        raise MalformedRequestError("414 URI Too Long", "the request line is too long")
    parts = line.rstrip(b"\r\n").split(b" ")
    if not line.endswith(b"\n") or len(parts) != 3 or not parts[0] or not parts[1]:
        raise MalformedRequestError("400 Bad Request", "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise MalformedRequestError(
            "505 HTTP Version Not Supported", "only HTTP/1.1 and 1.0 are served"
        )
    return RequestHead(method, target, version, _read_headers(rfile))


def _read_headers(rfile: LineReader) -> list[tuple[bytes, list[bytes]]]:
    headers: list[tuple[bytes, list[bytes]]] = []
    positions: dict[bytes, int] = {}
    for _ in range(MAX_HEADERS + 1):
        line = rfile.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return headers
        if len(line) > MAX_LINE:
            raise MalformedRequestError(
                "431 Request Header Fields Too Large", "a header line is too long"
            )
        if not line.endswith(b"\n"):
            raise MalformedRequestError(
                "400 Bad Request", "the connection ended inside the headers"
            )
        name, colon, value = line.partition(b":")
        # RFC 9112 5.1 and 5.2: no space before the colon, no obsolete line folding.
        if not colon or not name or name != name.strip() or line[:1] in (b" ", b"\t"):
            raise MalformedRequestError("400 Bad Request", "malformed header line")
        value = value.strip(b" \t\r\n")
        lowered = name.lower()
        position = positions.get(lowered)
        if position is None:
            positions[lowered] = len(headers)
            headers.append((name, [value]))
        else:
            headers[position][1].append(value)
    raise MalformedRequestError("431 Request Header Fields Too Large", "too many header lines")


def wsgi_environ(
    head: RequestHead,
    body: RequestBody,
    *,
    client: tuple[str, int],
    server: tuple[str, int],
    secure: bool,
) -> dict[str, Any]:
    """The WSGI environment of a request, with the keys twisted's and rolo's give it
    (``rolo.headers`` keeps the headers' casing; ``RAW_URI`` the target as sent).

    >>> head = RequestHead(b"PUT", b"/b/a%20b?x=1", b"HTTP/1.1", [(b"Host", [b"h:9"])])
    >>> body = ContentLengthBody(io.BytesIO(), 0)
    >>> env = wsgi_environ(head, body, client=("127.0.0.1", 5), server=("127.0.0.1", 9),
    ...                    secure=False)
    >>> env["PATH_INFO"], env["QUERY_STRING"], env["RAW_URI"], env["SERVER_NAME"], env["HTTP_HOST"]
    ('/b/a b', 'x=1', '/b/a%20b?x=1', 'h', 'h:9')
    """
    path, _, query = head.target.partition(b"?")
    try:
        uri = head.target.decode("utf-8")
        if path.startswith(b"/"):
            path_info = unquote_to_bytes(path).decode("latin-1")
        else:  # absolute form (a proxy's request): rolo reads the path out of it, undecoded
            path_info = urlsplit(path).path.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedRequestError("400 Bad Request", "the request target is not UTF-8") from error
    environ: dict[str, Any] = {
        "REQUEST_METHOD": head.method.decode("latin-1"),
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info,
        "QUERY_STRING": query.decode("latin-1"),
        "CONTENT_TYPE": (head.header(b"content-type") or b"").decode("latin-1"),
        "CONTENT_LENGTH": (head.header(b"content-length") or b"").decode("latin-1"),
        "SERVER_NAME": _host_name(head.header(b"host"), server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": head.version.decode("latin-1"),
        "REMOTE_ADDR": client[0],
        "REMOTE_PORT": str(client[1]),
        "REQUEST_URI": uri,
        "RAW_URI": uri,
        "rolo.headers": [(name, value) for name, values in head.headers for value in values],
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if secure else "http",
        "wsgi.run_once": False,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.errors": sys.stderr,
        "wsgi.input": body,
        "wsgi.input_terminated": True,
    }
    for name, values in head.headers:
        key = "HTTP_" + name.decode("latin-1").upper().replace("-", "_")
        environ[key] = ",".join(value.decode("latin-1") for value in values)
    return environ


def _host_name(host: bytes | None, fallback: str) -> str:
    """The host of a ``Host`` header without its port (``[::1]:9`` → ``::1``)."""
    if not host:
        return fallback
    text = host.decode("latin-1")
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else fallback
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


class RequestBody(io.RawIOBase):
    """A request body read from the connection as the gateway asks for it (:meth:`read`), and
    what the gateway left of it read away after the answer (:meth:`drain`)."""

    def __init__(self, rfile: LineReader) -> None:
        super().__init__()
        self._rfile = rfile

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def drain(self, limit: int) -> bool:
        """Read away what the gateway left, up to ``limit`` bytes; whether all of it was."""
        raise NotImplementedError


class ContentLengthBody(RequestBody):
    """A request body of a known length."""

    def __init__(self, rfile: LineReader, length: int) -> None:
        super().__init__(rfile)
        self.left = length

    def read(self, size: int | None = -1) -> bytes:
        if self.left <= 0:
            return b""
        wanted = self.left if size is None or size < 0 else min(size, self.left)
        data = self._rfile.read(wanted)
        if len(data) < wanted:
            self.left = 0
            raise ConnectionError("the client closed the connection inside the request body")
        self.left -= len(data)
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self.left <= 0:
            return b""
        wanted = self.left if size is None or size < 0 else min(size, self.left)
        data = self._rfile.readline(wanted)
        self.left -= len(data)
        return data

    def drain(self, limit: int) -> bool:
        while 0 < self.left <= limit:
            limit -= len(self.read(65536))
        return self.left == 0


class ChunkedBody(RequestBody):
    """A request body in chunked transfer coding, decoded as it is read."""

    def __init__(self, rfile: LineReader) -> None:
        super().__init__(rfile)
        self._chunk_left = 0
        self._done = False

    def read(self, size: int | None = -1) -> bytes:
        parts: list[bytes] = []
        wanted = -1 if size is None or size < 0 else size
        while not self._done and wanted != 0:
            if self._chunk_left == 0:
                self._next_chunk()
                continue
            take = self._chunk_left if wanted < 0 else min(wanted, self._chunk_left)
            data = self._rfile.read(take)
            if len(data) < take:
                raise ConnectionError("the client closed the connection inside a chunk")
            self._chunk_left -= len(data)
            if self._chunk_left == 0 and self._rfile.read(2) != b"\r\n":
                raise MalformedRequestError("400 Bad Request", "a chunk does not end with CRLF")
            parts.append(data)
            if wanted > 0:
                wanted -= len(data)
        return b"".join(parts)

    def _next_chunk(self) -> None:
        line = self._rfile.readline(MAX_LINE + 1)
        size_text = line.split(b";", 1)[0].strip()
        if not line.endswith(b"\n") or not size_text:
            raise MalformedRequestError("400 Bad Request", "malformed chunk size line")
        try:
            size = int(size_text, 16)
        except ValueError as error:
            raise MalformedRequestError("400 Bad Request", "malformed chunk size") from error
        if size < 0:
            raise MalformedRequestError("400 Bad Request", "malformed chunk size")
        if size > 0:
            self._chunk_left = size
            return
        for _ in range(MAX_HEADERS + 1):  # the trailer section, up to its empty line
            trailer = self._rfile.readline(MAX_LINE + 1)
            if trailer in (b"\r\n", b"\n"):
                self._done = True
                return
            if not trailer.endswith(b"\n"):
                raise ConnectionError("the client closed the connection inside the trailers")
        raise MalformedRequestError("431 Request Header Fields Too Large", "too many trailer lines")

    def drain(self, limit: int) -> bool:
        while not self._done and limit > 0:
            limit -= len(self.read(65536))
        return self._done


def request_body(head: RequestHead, rfile: LineReader) -> RequestBody:
    """The reader of a request's body, from its framing headers.

    Raises
    ------
    MalformedRequestError
        An unreadable ``Content-Length``, or a transfer coding other than ``chunked``.
    """
    codings = head.header(b"transfer-encoding")
    if codings is not None:
        if [c.strip().lower() for c in codings.split(b",")] != [b"chunked"]:
            raise MalformedRequestError(
                "501 Not Implemented", "only the chunked transfer coding is served"
            )
        return ChunkedBody(rfile)
    length = head.header(b"content-length")
    if length is None:
        return ContentLengthBody(rfile, 0)
    if not length.isdigit():  # also refuses "1,1": a length sent twice
        raise MalformedRequestError("400 Bad Request", "malformed Content-Length")
    return ContentLengthBody(rfile, int(length))


class ResponseWriter:
    """Writes a WSGI application's answer to a connection, framed for HTTP/1.1."""

    def __init__(self, sock: Sender, head: RequestHead) -> None:
        self._sock = sock
        self._head_only = head.method == b"HEAD"
        self._version = head.version
        self.status = ""
        self.headers: list[tuple[str, str]] = []
        self.sent_head = False
        self.keep_alive = head.version == b"HTTP/1.1" and b"close" not in head.tokens(b"connection")
        self._chunked = False
        self._length_left: int | None = None

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        """WSGI's ``start_response``."""
        if exc_info is not None and self.sent_head:
            raise exc_info[1].with_traceback(exc_info[2])
        self.status, self.headers = status, headers
        return self.write

    def answer(self, body: Iterable[bytes]) -> None:
        """Write the answer whose status and headers ``start_response`` took, and ``body``."""
        chunks = iter(body)
        first = _next_nonempty(chunks)
        if first is None:
            self._send_head(b"", whole=True)
            return
        second = _next_nonempty(chunks)
        if second is None:
            self._send_head(first, whole=True)
            return
        self._send_head(first, whole=False)
        self.write(second)
        for chunk in chunks:
            self.write(chunk)

    def write(self, data: bytes) -> None:
        """Write a piece of the body (the head first, if not yet sent)."""
        if not self.sent_head:
            self._send_head(data, whole=False)
            return
        if not data or self._head_only:
            return
        if self._chunked:
            self._sock.sendall(b"%x\r\n%b\r\n" % (len(data), data))
            return
        if self._length_left is not None:
            data = data[: self._length_left]
            self._length_left -= len(data)
        self._sock.sendall(data)

    def finish(self) -> None:
        """End the body: the last chunk, or check that the promised length was sent."""
        if not self.sent_head:
            self._send_head(b"", whole=True)
        if self._chunked:
            self._sock.sendall(b"0\r\n\r\n")
        elif self._length_left:
            self.keep_alive = False  # the body fell short of its Content-Length

    def _send_head(self, first: bytes, *, whole: bool) -> None:
        code = int(self.status[:3])
        lowered = {name.lower(): value for name, value in self.headers}
        if "close" in lowered.get("connection", "").lower():
            self.keep_alive = False
        lines = [f"{self._version.decode()} {self.status}\r\n"]
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        if "date" not in lowered:
            lines.append(f"Date: {formatdate(usegmt=True)}\r\n")
        has_body = not (self._head_only or code < 200 or code in NO_BODY_STATUSES)
        if has_body:
            first = self._frame(lowered.get("content-length"), first, whole, lines)
        if not self.keep_alive and "connection" not in lowered:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        self.sent_head = True
        if not has_body or not first:
            self._sock.sendall(head)
        elif self._chunked:
            self._sock.sendall(head + b"%x\r\n%b\r\n" % (len(first), first))
        else:
            self._sock.sendall(head + first)

    def _frame(self, length: str | None, first: bytes, whole: bool, lines: list[str]) -> bytes:
        """Choose how the body is framed (the gateway's length, the whole body's, chunks, or
        the close), adding the header it needs to ``lines``; the first piece to send.

        A HEAD, 204 or 304 answer has no body: its headers are sent as the gateway gave them.
        """
        if length is not None:
            expected = int(length)
            first = first[:expected]
            self._length_left = expected - len(first)
        elif whole:
            lines.append(f"Content-Length: {len(first)}\r\n")
        elif self._version == b"HTTP/1.1":
            lines.append("Transfer-Encoding: chunked\r\n")
            self._chunked = True
        else:
            self.keep_alive = False  # HTTP/1.0 without a length: the body ends with the close
        return first


def _next_nonempty(chunks: Iterator[bytes]) -> bytes | None:
    for chunk in chunks:
        if chunk:
            return chunk
    return None


def answer_refusal(sock: Sender, status: str, reason: str) -> None:
    """Answer ``status`` with ``reason`` as text, the connection to be closed."""
    body = reason.encode()
    sock.sendall(
        f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
