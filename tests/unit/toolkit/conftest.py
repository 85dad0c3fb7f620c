"""Fixtures of the toolkit's unit tests: a fake clock, moto DynamoDB, a scripted HTTP server."""

from __future__ import annotations

import datetime as real_dt
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
from aws_lambda_powertools.utilities.circuit_breaker import base as breaker_base
from aws_lambda_powertools.utilities.circuit_breaker.persistence import base as persistence_base
from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
    dynamodb as persistence_dynamodb,
)
from moto import mock_aws

from lambdamesh_toolkit import resilience
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
from tests.support import circuit_breaker
from tests.support.fake_aws import use_fake_aws
from tests.unit.toolkit.consumer_world import World, make_world

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

BREAKER_TABLE = "lambdamesh-circuit-breakers"


class FakeClock:
    """Seconds since the epoch that only move when a test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def datetime_module(self) -> SimpleNamespace:
        clock = self

        class FrozenDatetime(real_dt.datetime):
            @classmethod
            def now(cls, tz: real_dt.tzinfo | None = None) -> FrozenDatetime:
                return cls.fromtimestamp(clock.now, tz)

        return SimpleNamespace(datetime=FrozenDatetime, UTC=real_dt.UTC)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Freeze the circuit breaker's clock (Powertools reads ``dt.datetime.now()``)."""
    fake = FakeClock()
    shim = fake.datetime_module()
    for module in (
        breaker_base,
        persistence_base,
        persistence_dynamodb,
        circuit_breaker,
        resilience,
    ):
        monkeypatch.setattr(module, "dt", shim)
    return fake


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
    read_timeout_s: float = 3.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ServiceHttpClient:
    """A client as one warm container holds it: its own boto3 client and breaker cache (read
    through on every call), the circuit's state in the shared breaker ``table``."""
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
