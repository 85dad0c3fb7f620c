"""Fixtures of the toolkit's unit tests: a fake clock, moto DynamoDB, a scripted HTTP server."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh_toolkit import deadline as deadline_module
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.http_client import ServiceHttpClient
from lambdamesh_toolkit.resilience import (
    BREAKER_TABLE_ATTRIBUTES,
    BREAKER_TABLE_KEY_SCHEMA,
    BREAKER_TABLE_TTL_ATTRIBUTE,
    CircuitBreaker,
    RetryPolicy,
    dynamodb_breaker_store,
)
from tests.support.breaker_clock import FakeClock, freeze_breaker_clock
from tests.support.fake_aws import use_fake_aws
from tests.unit.toolkit.consumer_world import World, make_world

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

BREAKER_TABLE = "lambdamesh-circuit-breakers"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Freeze the circuit breaker's clock (Powertools reads ``dt.datetime.now()``)."""
    return freeze_breaker_clock(monkeypatch)


@pytest.fixture
def frozen_deadline_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """Stop the clock deadlines are measured against (``lambdamesh_toolkit.deadline`` reads
    ``time.time()``) at the present, and return it (epoch seconds): what is left of a deadline
    set from it no longer shrinks while a stalled test worker stands still."""
    now = time.time()
    monkeypatch.setattr(deadline_module, "time", SimpleNamespace(time=lambda: now))
    return now


@pytest.fixture(autouse=True)
def fresh_correlation_id() -> None:
    """Each test starts as a new invocation: the id of the previous one must not leak."""
    use_correlation_id(None)


@pytest.fixture
def circuit_name() -> str:
    """A circuit name of this test only: Powertools counts failures per name, process-wide."""
    return f"dep-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    use_fake_aws(monkeypatch)


@pytest.fixture
def breaker_table(aws_credentials: None) -> Iterator[str]:
    """The breaker table, created under moto exactly as the deploy step documents it."""
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=BREAKER_TABLE,
            KeySchema=BREAKER_TABLE_KEY_SCHEMA,  # type: ignore[arg-type]
            AttributeDefinitions=BREAKER_TABLE_ATTRIBUTES,  # type: ignore[arg-type]
            BillingMode="PAY_PER_REQUEST",
        )
        client.update_time_to_live(
            TableName=BREAKER_TABLE,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": BREAKER_TABLE_TTL_ATTRIBUTE},
        )
        yield BREAKER_TABLE


def new_dynamodb_client() -> DynamoDBClient:
    """A separate client, as a separate warm container would have."""
    return boto3.client("dynamodb", region_name="us-east-1")


def shared_circuit_client(
    url: str,
    circuit_name: str,
    table: str,
    *,
    failure_threshold: int,
    recovery_timeout_s: int = 10,
    attempts: int = 1,
    read_timeout_s: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ServiceHttpClient:
    """A client as one warm container holds it: its own boto3 client and breaker cache (read
    through on every call), the circuit's state in the shared breaker ``table``. Its read
    timeout is far beyond any stall of a busy machine, unless a test about timeouts sets one."""
    breaker = CircuitBreaker(
        circuit_name,
        dynamodb_breaker_store(table, dynamodb_client=new_dynamodb_client()),
        failure_threshold=failure_threshold,
        recovery_timeout_s=recovery_timeout_s,
        local_cache_max_age_s=0,
    )
    return ServiceHttpClient(
        url,
        circuit_name,
        read_timeout_s=read_timeout_s,
        retry=RetryPolicy(max_attempts=attempts, sleep=sleep),
        breaker=breaker,
    )


def stored_circuit_state(table: str, circuit_name: str) -> str | None:
    """The circuit's state in the shared breaker table (``None``: never written, so closed)."""
    item = new_dynamodb_client().get_item(
        TableName=table, Key={"id": {"S": circuit_name}}, ConsistentRead=True
    )
    return item["Item"]["state"]["S"] if "Item" in item else None


@dataclass
class ScriptedAnswer:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class BurstServer(ThreadingHTTPServer):
    """A threading HTTP server whose listen backlog holds a burst of clients connecting at once
    (``socketserver``'s default of 5 drops the rest, which then time out connecting)."""

    request_queue_size = 64


class ScriptedServer:
    """An HTTP server on 127.0.0.1 answering a script, recording what it received."""

    def __init__(self) -> None:
        self.script: list[ScriptedAnswer] = []
        self.received: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.received.append(
                        ReceivedRequest(self.command, self.path, dict(self.headers.items()), body)
                    )
                    answer = server.script.pop(0) if server.script else ScriptedAnswer()
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                payload = json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out and left

            # http.server dispatches on these exact names.
            do_GET = _serve  # noqa: N815
            do_POST = _serve  # noqa: N815
            do_PUT = _serve  # noqa: N815
            do_DELETE = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = BurstServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/dev"
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def answer(self, *answers: ScriptedAnswer) -> None:
        with self._lock:
            self.script.extend(answers)

    def forget_script(self) -> None:
        """Drop the answers not given yet: from now on every request is answered at once."""
        with self._lock:
            self.script.clear()

    def received_at_least(self, count: int, within_s: float = 30.0) -> list[ReceivedRequest]:
        """What the server received, once it has recorded ``count`` requests or ``within_s``
        has passed. Each request is recorded on a thread of its own, which a stalled worker may
        run only after the client gave up waiting for its answer."""
        deadline = time.monotonic() + within_s
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        with self._lock:
            return list(self.received)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def sleeps() -> list[float]:
    """Waits a retry policy asked for, recorded instead of slept."""
    return []


@pytest.fixture
def world(aws_credentials: None) -> Iterator[World]:
    """moto's SNS, SQS and DynamoDB wired for an event consumer (see ``consumer_world``)."""
    yield from make_world()
