"""The emulator's gateway server: HTTP/1.1 over one thread per connection, spoken to by real
clients (``http.client``, urllib3, a raw socket) on loopback."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lambdamesh_localstack.connection_threads import ConnectionThreadsServer, tls_context
from lambdamesh_localstack.http_framing import MAX_HEADERS

StartResponse = Callable[..., Any]


def echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Answers what it was asked: the request's parts and body as JSON."""
    body = environ["wsgi.input"].read()
    seen = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "raw_uri": environ["RAW_URI"],
        "scheme": environ["wsgi.url_scheme"],
        "server_name": environ["SERVER_NAME"],
        "remote_port": environ["REMOTE_PORT"],
        "content_length": environ["CONTENT_LENGTH"],
        "headers": [[n.decode(), v.decode()] for n, v in environ["rolo.headers"]],
        "x_multi": environ.get("HTTP_X_MULTI"),
        "body": body.decode("latin-1"),
    }
    answer = json.dumps(seen).encode()
    start_response(
        "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(answer)))]
    )
    return [answer]


def streamed(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    """Answers in three pieces without a length."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one,"
    yield b""
    yield b"two,"
    yield b"three"


@pytest.fixture
def serve() -> Iterator[Callable[..., int]]:
    """Starts a server for a WSGI app on a free loopback port; its port."""
    servers: list[ConnectionThreadsServer] = []

    def start(app: Callable[..., Iterable[bytes]], tls: ssl.SSLContext | None = None) -> int:
        server = ConnectionThreadsServer(app, tls)
        port = server.listen("127.0.0.1", 0)
        threading.Thread(target=server.serve, daemon=True).start()
        servers.append(server)
        return port

    yield start
    for server in servers:
        server.stop()


def raw_exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        return received


def test_requests_on_one_connection_are_answered_in_turn_on_that_connection(
    serve: Callable[..., int],
) -> None:
    # GIVEN the echo app served, and one keep-alive connection
    port = serve(echo)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    # WHEN two requests go over it, one with a body
    connection.request("GET", "/first?a=1")
    first = json.loads(connection.getresponse().read())
    connection.request("POST", "/second", body=b"hello", headers={"Content-Type": "text/plain"})
    second = json.loads(connection.getresponse().read())
    # THEN each is answered with what it asked, from the same client port
    assert (first["method"], first["path"], first["query"]) == ("GET", "/first", "a=1")
    assert (second["method"], second["body"], second["content_length"]) == ("POST", "hello", "5")
    assert first["remote_port"] == second["remote_port"]
    connection.close()


def test_the_path_is_decoded_the_target_kept_and_headers_keep_their_first_casing(
    serve: Callable[..., int],
) -> None:
    # GIVEN a request with an encoded path and a header sent twice with two casings
    port = serve(echo)
    request = (
        b"GET /bucket/a%20key%2Fx?list-type=2 HTTP/1.1\r\nHost: localhost:4566\r\n"
        b"X-Multi: 1\r\nx-multi: 2\r\nConnection: close\r\n\r\n"
    )
    # WHEN it is served
    answer = raw_exchange(port, request)
    seen = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    # THEN the path is decoded, the target as sent, the host without its port, and the
    # header's values are kept in order under its first name
    assert seen["path"] == "/bucket/a key/x"
    assert seen["raw_uri"] == "/bucket/a%20key%2Fx?list-type=2"
    assert seen["server_name"] == "localhost"
    assert [h for h in seen["headers"] if h[0].lower() == "x-multi"] == [
        ["X-Multi", "1"],
        ["X-Multi", "2"],
    ]
    assert seen["x_multi"] == "1,2"


def test_a_chunked_request_body_is_read_whole(serve: Callable[..., int]) -> None:
    # GIVEN a body sent in chunked transfer coding, with a chunk extension and a trailer
    port = serve(echo)
    request = (
        b"PUT /object HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n"
        b"GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    # WHEN it is served, with a second request right behind it
    answers = raw_exchange(port, request).split(b"HTTP/1.1 200 OK")[1:]
    # THEN the app read the decoded body, and the next request was served after it
    first = json.loads(answers[0].split(b"\r\n\r\n", 1)[1])
    second = json.loads(answers[1].split(b"\r\n\r\n", 1)[1])
    assert first["body"] == "hello world"
    assert second["path"] == "/next"


def test_a_client_expecting_100_continue_is_told_to_send_its_body(
    serve: Callable[..., int],
) -> None:
    # GIVEN a client that sends its headers with Expect: 100-continue and waits
    port = serve(echo)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            b"PUT /o HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n"
        )
        # WHEN it reads before sending the body
        interim = sock.recv(100)
        sock.sendall(b"data")
        rest = b""
        while chunk := sock.recv(65536):
            rest += chunk
    # THEN it was told to continue, and the body reached the app
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["body"] == "data"


def test_an_answer_without_a_length_is_chunked_for_http_1_1_and_ends_with_the_close_for_1_0(
    serve: Callable[..., int],
) -> None:
    # GIVEN an app that answers in pieces without a Content-Length
    port = serve(streamed)
    # WHEN an HTTP/1.1 client and an HTTP/1.0 client ask
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False)
    answer = pool.request("GET", "/")
    old = raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    # THEN both get the whole body: chunked on 1.1, delimited by the close on 1.0
    assert answer.headers["Transfer-Encoding"] == "chunked"
    assert answer.data == b"one,two,three"
    head, body = old.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.0 200 OK")
    assert b"Connection: close" in head
    assert body == b"one,two,three"
    pool.close()


def test_an_answer_in_one_piece_without_a_length_is_sent_with_its_length(
    serve: Callable[..., int],
) -> None:
    # GIVEN an app that answers one piece and gives no Content-Length
    def one_piece(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"", b"all of it"]

    port = serve(one_piece)
    # WHEN it is asked for
    answer = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    # THEN the answer carries the body's length, not chunks
    head, body = answer.split(b"\r\n\r\n", 1)
    assert b"Content-Length: 9" in head
    assert b"Transfer-Encoding" not in head
    assert body == b"all of it"


def test_a_large_answer_with_its_length_arrives_whole_and_in_order(
    serve: Callable[..., int],
) -> None:
    # GIVEN an app that answers 6 MB in 64 KB pieces, with its Content-Length
    piece_count, piece = 96, bytes(range(256)) * 256

    def large(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Length", str(piece_count * len(piece)))])
        for number in range(piece_count):
            yield number.to_bytes(2, "big") + piece[2:]

    port = serve(large)
    # WHEN it is asked for
    data = urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False).request("GET", "/").data
    # THEN every piece arrived, in order
    assert len(data) == piece_count * len(piece)
    numbers = [
        int.from_bytes(data[n * len(piece) : n * len(piece) + 2], "big") for n in range(piece_count)
    ]
    assert numbers == list(range(piece_count))


def test_head_gets_the_length_without_the_body_and_the_connection_goes_on(
    serve: Callable[..., int],
) -> None:
    # GIVEN the echo app served, and one connection
    port = serve(echo)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    # WHEN a HEAD request and then a GET go over it
    connection.request("HEAD", "/thing")
    head = connection.getresponse()
    head_body = head.read()
    connection.request("GET", "/after")
    after = json.loads(connection.getresponse().read())
    # THEN the HEAD answer has the length and no body, and the GET is answered after it
    assert int(head.headers["Content-Length"]) > 0
    assert head_body == b""
    assert after["path"] == "/after"
    connection.close()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: ten\r\n\r\n", b"400"),
        (b"POST / HTTP/1.1\r\nContent-Length: 1,1\r\n\r\nx", b"400"),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
        (b"GET / HTTP/1.1\r\n" + b"X-A: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n", b"431"),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", b"414"),
    ],
)
def test_a_malformed_request_is_refused_with_its_status_and_the_connection_closed(
    serve: Callable[..., int], request_bytes: bytes, status: bytes
) -> None:
    # GIVEN the echo app served
    port = serve(echo)
    # WHEN a malformed request is sent
    answer = raw_exchange(port, request_bytes)
    # THEN it is refused with the status that names the fault, and the connection closed
    assert answer.startswith(b"HTTP/1.1 " + status)
    assert b"Connection: close" in answer


def test_a_failing_app_is_answered_500_and_the_server_goes_on(serve: Callable[..., int]) -> None:
    # GIVEN an app that raises on /boom
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("boom")
        return echo(environ, start_response)

    port = serve(app)
    pool = urllib3.HTTPConnectionPool("127.0.0.1", port, retries=False)
    # WHEN it fails on one request, and another follows
    failed = pool.request("GET", "/boom")
    after = pool.request("GET", "/fine")
    # THEN the failure is a 500, and the next request is served
    assert failed.status == 500
    assert after.status == 200
    assert json.loads(after.data)["path"] == "/fine"
    pool.close()


def test_an_answer_that_fails_while_written_is_cut_short_and_the_connection_closed(
    serve: Callable[..., int],
) -> None:
    # GIVEN an app whose body fails after its first two pieces, and one that fails before any
    def failing(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/late":
            yield b"one,"
            yield b"two,"
        raise RuntimeError("the body failed")

    port = serve(failing)
    # WHEN both are asked for
    late = raw_exchange(port, b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
    early = raw_exchange(port, b"GET /early HTTP/1.1\r\nHost: x\r\n\r\n")
    # THEN the first is a chunked answer without its last chunk, then the close, and the
    # second a 500: neither leaves a client waiting on an open connection
    assert late.startswith(b"HTTP/1.1 200 OK")
    assert b"one," in late
    assert not late.endswith(b"0\r\n\r\n")
    assert early.startswith(b"HTTP/1.1 500")


def test_a_connection_close_request_is_answered_then_closed(serve: Callable[..., int]) -> None:
    # GIVEN the echo app served
    port = serve(echo)
    # WHEN a request asks for the connection to close, and another follows on it
    answer = raw_exchange(
        port,
        b"GET /one HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        b"GET /two HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    # THEN only the first is answered, and the server closed the connection
    assert answer.count(b"HTTP/1.1 200 OK") == 1
    assert b"Connection: close" in answer
    assert b'"/one"' in answer


def test_https_is_served_on_the_same_port_as_http(
    serve: Callable[..., int], tmp_path: Path
) -> None:
    # GIVEN a server with a certificate, on one port
    cert, key = self_signed(tmp_path)
    port = serve(echo, tls_context((str(cert), str(key))))
    # WHEN a client speaks TLS to it, and another plain HTTP
    tls = urllib3.HTTPSConnectionPool("127.0.0.1", port, ca_certs=str(cert), retries=False)
    secure = json.loads(tls.request("GET", "/secure").data)
    plain = json.loads(urllib3.HTTPConnectionPool("127.0.0.1", port).request("GET", "/plain").data)
    # THEN both are served, each knowing its scheme
    assert (secure["path"], secure["scheme"]) == ("/secure", "https")
    assert (plain["path"], plain["scheme"]) == ("/plain", "http")
    tls.close()


def test_stop_closes_idle_connections_and_ends_serve() -> None:
    # GIVEN a server with an idle keep-alive connection
    server = ConnectionThreadsServer(echo)
    port = server.listen("127.0.0.1", 0)
    serving = threading.Thread(target=server.serve, daemon=True)
    serving.start()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/")
    connection.getresponse().read()
    # WHEN the server stops
    server.stop()
    serving.join(timeout=30)
    # THEN serve returned, the idle connection was closed, and no new one is accepted
    assert not serving.is_alive()
    assert connection.sock is not None
    assert connection.sock.recv(1) == b""
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=10)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
