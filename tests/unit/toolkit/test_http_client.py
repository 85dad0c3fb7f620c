"""ServiceHttpClient against a scripted local HTTP server."""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from lambdamesh_toolkit.contracts.users import CreateUser, User
from lambdamesh_toolkit.correlation import CORRELATION_HEADER, use_correlation_id
from lambdamesh_toolkit.deadline import DEADLINE_HEADER, header_value, use_deadline
from lambdamesh_toolkit.errors import DependencyUnavailable, NotFound
from lambdamesh_toolkit.http_client import IDEMPOTENCY_HEADER, ServiceHttpClient
from lambdamesh_toolkit.resilience import CircuitBreaker, RetryPolicy
from tests.support.circuit_breaker import InMemoryCircuitStore
from tests.unit.toolkit.conftest import ScriptedAnswer, ScriptedServer

HANGS_S = 30.0
"""How long a dependency that hangs takes to answer: past any timeout of these tests, however
long the test's worker stalls while it waits."""


def make_client(
    url: str,
    sleeps: list[float],
    *,
    max_attempts: int = 3,
    read_timeout_s: float = 30.0,
) -> ServiceHttpClient:
    """A client of the scripted ``url``; its read timeout is far beyond any stall of a busy
    machine, unless a test about timeouts sets one."""
    name = f"users-api-{uuid.uuid4().hex[:6]}"
    return ServiceHttpClient(
        url,
        name,
        connect_timeout_s=0.5,
        read_timeout_s=read_timeout_s,
        retry=RetryPolicy(max_attempts=max_attempts, sleep=sleeps.append),
        breaker=CircuitBreaker(name, InMemoryCircuitStore(), failure_threshold=100),
    )


def test_get_sends_correlation_id_and_returns_the_answer(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN an invocation with a correlation id and a healthy dependency
    use_correlation_id("corr-http-1")
    http_server.answer(ScriptedAnswer(body={"id": "u-1"}))
    client = make_client(http_server.url, sleeps)

    # WHEN the client GETs a path
    result = client.get("/users/u-1")

    # THEN the request reached the stage path with the correlation id header
    received = http_server.received[0]
    assert (received.method, received.path) == ("GET", "/dev/users/u-1")
    assert received.headers[CORRELATION_HEADER] == "corr-http-1"
    assert result.ok
    assert result.json() == {"id": "u-1"}


def test_get_is_retried_on_retryable_statuses(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN a dependency answering 503 then 504 then 200
    http_server.answer(ScriptedAnswer(503), ScriptedAnswer(504), ScriptedAnswer(200, {"ok": 1}))
    client = make_client(http_server.url, sleeps)

    # WHEN the client GETs
    result = client.get("/users/u-1")

    # THEN three attempts were made and the last answer returned
    assert result.status == 200
    assert len(http_server.received) == 3
    assert len(sleeps) == 2


def test_post_without_idempotency_key_is_not_retried(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN a dependency answering 503 once
    http_server.answer(ScriptedAnswer(503), ScriptedAnswer(201))
    client = make_client(http_server.url, sleeps)

    # WHEN the client POSTs without an idempotency key
    with pytest.raises(DependencyUnavailable, match="HTTP 503"):
        client.post("/users", CreateUser(email="a@example.com", name="Ada"))

    # THEN exactly one request was sent
    assert len(http_server.received) == 1
    assert sleeps == []


def test_post_with_idempotency_key_is_retried_with_the_same_key(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN a dependency answering 503 once, then 201
    http_server.answer(ScriptedAnswer(503), ScriptedAnswer(201, {"id": "u-1"}))
    client = make_client(http_server.url, sleeps)

    # WHEN the client POSTs with an idempotency key
    result = client.post(
        "/users", CreateUser(email="a@example.com", name="Ada"), idempotency_key="key-1"
    )

    # THEN it was retried, both attempts carrying the key and the same JSON body
    assert result.status == 201
    assert [r.headers[IDEMPOTENCY_HEADER] for r in http_server.received] == ["key-1", "key-1"]
    assert json.loads(http_server.received[1].body) == {"email": "a@example.com", "name": "Ada"}
    assert http_server.received[1].headers["Content-Type"] == "application/json"


def test_retry_after_from_the_dependency_is_honoured(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN a dependency answering 429 with Retry-After: 1
    http_server.answer(ScriptedAnswer(429, headers={"Retry-After": "1"}), ScriptedAnswer(200))
    client = make_client(http_server.url, sleeps)

    # WHEN the client GETs
    client.get("/users/u-1")

    # THEN it waited the second asked for
    assert sleeps == [1.0]


def test_client_errors_come_back_as_results_without_retry(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN a dependency answering a typed 404
    error = {"error": {"code": "not_found", "message": "user 'u-9' not found", "field": None}}
    http_server.answer(ScriptedAnswer(404, error))
    client = make_client(http_server.url, sleeps)

    # WHEN the client GETs
    result = client.get("/users/u-9")

    # THEN the 404 is a result, sent once, whose typed error can be rebuilt
    assert result.status == 404
    assert len(http_server.received) == 1
    with pytest.raises(NotFound, match="u-9"):
        result.raise_for_error()


def test_read_timeout_is_retried_then_reported_unavailable(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN a dependency slower than the read timeout, every time
    http_server.answer(*[ScriptedAnswer(200, delay_s=HANGS_S) for _ in range(2)])
    client = make_client(http_server.url, sleeps, max_attempts=2, read_timeout_s=0.2)

    # WHEN the client GETs
    with pytest.raises(DependencyUnavailable, match="timeout"):
        client.get("/users/u-1")

    # THEN both attempts were made, each cut by the timeout
    assert len(http_server.received_at_least(2)) == 2


def test_connection_refused_is_retried_even_for_post(sleeps: list[float]) -> None:
    # GIVEN a port nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}", sleeps, max_attempts=3)

    # WHEN the client POSTs without a key
    with pytest.raises(DependencyUnavailable, match="cannot connect"):
        client.post("/users", {"email": "a@example.com", "name": "Ada"})

    # THEN all attempts were made (the request never left, so repeating it is safe)
    assert len(sleeps) == 2


def test_server_error_500_is_not_retried_but_reported_unavailable(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN a dependency answering 500
    http_server.answer(ScriptedAnswer(500), ScriptedAnswer(200))
    client = make_client(http_server.url, sleeps)

    # WHEN the client GETs
    with pytest.raises(DependencyUnavailable, match="HTTP 500"):
        client.get("/users/u-1")

    # THEN one request was sent
    assert len(http_server.received) == 1


def test_answer_is_validated_against_its_contract(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN a dependency answering a user, and one answering garbage
    user = {
        "id": "u-1",
        "email": "a@example.com",
        "name": "Ada",
        "created_at": "2026-11-23T12:00:00Z",
    }
    http_server.answer(ScriptedAnswer(200, user), ScriptedAnswer(200, {"id": "u-1"}))
    client = make_client(http_server.url, sleeps)

    # WHEN both are read as User
    # THEN the first validates, the second is the dependency breaking its contract
    assert client.get("/users/u-1").model(User).name == "Ada"
    with pytest.raises(DependencyUnavailable, match="does not match User"):
        client.get("/users/u-1").model(User)


def test_a_hanging_dependency_gets_only_what_is_left_of_the_deadline(
    http_server: ScriptedServer, sleeps: list[float], frozen_deadline_clock: float
) -> None:
    # GIVEN a dependency that hangs past every timeout, and a request with 0.4 s left (on a
    # clock that stands still, so that a stalled worker cannot eat into them before the call)
    http_server.answer(*[ScriptedAnswer(200, delay_s=HANGS_S) for _ in range(3)])
    client = make_client(http_server.url, sleeps, max_attempts=3, read_timeout_s=3.0)
    deadline = use_deadline(frozen_deadline_clock + 0.4)
    # WHEN the client GETs
    with pytest.raises(DependencyUnavailable) as refused:
        client.get("/users/u-1")
    # THEN one attempt was made, cut at the deadline (no 3 s read, no retry after it)
    received = http_server.received_at_least(1)
    assert len(received) == 1
    assert refused.value.reason == "timeout: no answer within 0.4 s"
    # AND the dependency was told the deadline, to keep within it too
    assert deadline is not None
    sent = {name.lower(): value for name, value in received[0].headers.items()}
    assert sent[DEADLINE_HEADER.lower()] == header_value(deadline)


def test_a_deadline_already_past_makes_no_call(
    http_server: ScriptedServer, sleeps: list[float]
) -> None:
    # GIVEN a request whose deadline has passed
    client = make_client(http_server.url, sleeps)
    use_deadline(time.time() - 1)
    # WHEN the client GETs
    with pytest.raises(DependencyUnavailable, match="deadline"):
        client.get("/users/u-1")
    # THEN nothing was sent
    assert http_server.received == []


def test_an_unavailable_dependency_is_reported_without_its_address(sleeps: list[float]) -> None:
    # GIVEN a port nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(f"http://127.0.0.1:{port}/internal", sleeps, max_attempts=2)
    # WHEN the client fails to reach it
    with pytest.raises(DependencyUnavailable) as refused:
        client.get("/users/u-1")
    # THEN the error a caller would see names the dependency, not where it lives
    body = json.dumps(refused.value.to_body())
    assert client.dependency_name in body
    assert "127.0.0.1" not in body
    assert str(port) not in body
