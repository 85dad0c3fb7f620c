"""``lambdamesh status``'s view of the emulator's permission audit, read over HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lambdamesh.permissions_status import PATH, format_permissions, read_permissions

DECISIONS = [
    {"role": "r-1", "session": "fn-1", "action": "sqs:SendMessage", "resource": "arn:q",
     "allowed": False, "count": 2},
    {"role": "r-1", "session": "fn-1", "action": "dynamodb:GetItem", "resource": "arn:t",
     "allowed": True, "count": 40},
]  # fmt: skip


@pytest.fixture
def emulator() -> Iterator[str]:
    """A stand-in for the emulator's audit endpoint (any other path: 404, as LocalStack's)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"decisions": DECISIONS}).encode()
            self.send_response(200 if self.path == PATH else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_audit_is_summed_and_its_denials_listed(emulator: str) -> None:
    # GIVEN an emulator whose audit holds one denied and one allowed decision
    # WHEN status reads it
    summary = read_permissions(emulator)
    # THEN every call is counted and the denial is listed with its function and resource
    assert summary is not None
    assert summary.checked == 42
    lines = format_permissions(summary)
    assert lines[1] == "    checked 42, denied 1"
    assert lines[2] == "    denied  fn-1: sqs:SendMessage on arn:q (x2)"


def test_a_localstack_without_the_audit_or_not_answering_shows_nothing(emulator: str) -> None:
    # GIVEN a LocalStack that does not serve the audit, and a port nothing listens on
    # WHEN status reads them  THEN there is nothing to show
    assert read_permissions(emulator + "/elsewhere") is None
    assert read_permissions("http://127.0.0.1:9", timeout_s=1.0) is None
