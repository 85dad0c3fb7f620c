"""The circuit breaker: opening, refusing, half-opening, closing; state shared via DynamoDB."""

from __future__ import annotations

import pytest

from lambdamesh_toolkit.config import ConfigurationError
from lambdamesh_toolkit.errors import DependencyUnavailable
from lambdamesh_toolkit.http_client import ServiceHttpClient
from lambdamesh_toolkit.resilience import AttemptFailed, CircuitBreaker
from tests.support.breaker_clock import FakeClock
from tests.support.circuit_breaker import InMemoryCircuitStore
from tests.unit.toolkit.conftest import (
    ScriptedAnswer,
    ScriptedServer,
    shared_circuit_client,
    stored_circuit_state,
)

RECOVERY_S = 10
THRESHOLD = 3


def warm_container(server: ScriptedServer, circuit_name: str, table: str) -> ServiceHttpClient:
    """A client as one warm container holds it, one attempt per call."""
    return shared_circuit_client(
        server.url, circuit_name, table, failure_threshold=THRESHOLD, recovery_timeout_s=RECOVERY_S
    )


def test_opens_after_threshold_and_other_container_refuses_without_calling(
    breaker_table: str, http_server: ScriptedServer, circuit_name: str, clock: FakeClock
) -> None:
    # GIVEN two warm containers calling the same failing dependency
    container_a = warm_container(http_server, circuit_name, breaker_table)
    container_b = warm_container(http_server, circuit_name, breaker_table)
    http_server.answer(*[ScriptedAnswer(status=503) for _ in range(THRESHOLD)])

    # WHEN container A fails THRESHOLD times
    for _ in range(THRESHOLD):
        with pytest.raises(DependencyUnavailable, match="HTTP 503"):
            container_a.get("/users/u-1")

    # THEN the circuit is OPEN in the shared table, and container B is refused at once,
    # without any request reaching the dependency
    assert stored_circuit_state(breaker_table, circuit_name) == "OPEN"
    with pytest.raises(DependencyUnavailable, match="circuit open") as refused:
        container_b.get("/users/u-1")
    assert len(http_server.received) == THRESHOLD
    assert refused.value.retry_after_s is not None
    assert 0 < refused.value.retry_after_s <= RECOVERY_S
    assert refused.value.headers()["Retry-After"] == str(RECOVERY_S)


def test_half_opens_after_recovery_timeout_and_a_good_probe_closes_it_for_everyone(
    breaker_table: str, http_server: ScriptedServer, circuit_name: str, clock: FakeClock
) -> None:
    # GIVEN a circuit opened by container A
    container_a = warm_container(http_server, circuit_name, breaker_table)
    container_b = warm_container(http_server, circuit_name, breaker_table)
    http_server.answer(*[ScriptedAnswer(status=503) for _ in range(THRESHOLD)])
    for _ in range(THRESHOLD):
        with pytest.raises(DependencyUnavailable):
            container_a.get("/users/u-1")

    # WHEN the recovery time has not fully passed
    clock.advance(RECOVERY_S - 1)
    # THEN calls are still refused
    with pytest.raises(DependencyUnavailable, match="circuit open"):
        container_b.get("/users/u-1")
    assert len(http_server.received) == THRESHOLD

    # WHEN it has passed and the dependency is healthy again
    clock.advance(1)
    http_server.answer(ScriptedAnswer(status=200, body={"id": "u-1"}))
    probe = container_b.get("/users/u-1")

    # THEN container B's probe went through and closed the circuit in the shared table,
    # and container A calls the dependency again
    assert probe.status == 200
    assert stored_circuit_state(breaker_table, circuit_name) == "CLOSED"
    assert container_a.get("/users/u-1").status == 200
    assert len(http_server.received) == THRESHOLD + 2


def test_failed_probe_reopens_the_circuit(
    breaker_table: str, http_server: ScriptedServer, circuit_name: str, clock: FakeClock
) -> None:
    # GIVEN an open circuit whose recovery time has passed
    container = warm_container(http_server, circuit_name, breaker_table)
    http_server.answer(*[ScriptedAnswer(status=503) for _ in range(THRESHOLD + 1)])
    for _ in range(THRESHOLD):
        with pytest.raises(DependencyUnavailable):
            container.get("/x")
    clock.advance(RECOVERY_S)

    # WHEN the probe fails too
    with pytest.raises(DependencyUnavailable, match="HTTP 503"):
        container.get("/x")

    # THEN the circuit is open again and the next call is refused without a request
    assert stored_circuit_state(breaker_table, circuit_name) == "OPEN"
    with pytest.raises(DependencyUnavailable, match="circuit open"):
        container.get("/x")
    assert len(http_server.received) == THRESHOLD + 1


def test_client_errors_never_trip_the_circuit(
    breaker_table: str, http_server: ScriptedServer, circuit_name: str, clock: FakeClock
) -> None:
    # GIVEN a dependency answering 404 many times over the threshold
    container = warm_container(http_server, circuit_name, breaker_table)
    http_server.answer(*[ScriptedAnswer(status=404) for _ in range(THRESHOLD * 3)])

    # WHEN they are all called
    results = [container.get("/users/missing") for _ in range(THRESHOLD * 3)]

    # THEN every 404 came back as a result and the circuit stayed closed
    assert [result.status for result in results] == [404] * (THRESHOLD * 3)
    assert stored_circuit_state(breaker_table, circuit_name) is None


def test_in_memory_store_shares_state_between_breakers_given_it(
    circuit_name: str, clock: FakeClock
) -> None:
    # GIVEN two breakers explicitly given one in-memory store (unit tests only)
    store = InMemoryCircuitStore()
    first = CircuitBreaker(circuit_name, store, failure_threshold=2, local_cache_max_age_s=0)
    second = CircuitBreaker(circuit_name, store, failure_threshold=2, local_cache_max_age_s=0)
    calls: list[str] = []

    def failing() -> str:
        calls.append("called")
        raise AttemptFailed("timeout", retryable=True)

    # WHEN the first breaker sees two failures
    for _ in range(2):
        with pytest.raises(AttemptFailed):
            first.call(failing)

    # THEN the second refuses without calling
    with pytest.raises(DependencyUnavailable, match="circuit open"):
        second.call(failing)
    assert len(calls) == 2
    assert str(second.state()) == "OPEN"


def test_breaker_from_environment_names_the_missing_table_variable() -> None:
    # GIVEN an environment without CIRCUIT_BREAKER_TABLE
    # WHEN the default breaker is built
    # THEN the error names the variable
    with pytest.raises(ConfigurationError, match="CIRCUIT_BREAKER_TABLE"):
        CircuitBreaker.from_environment("users-api", environ={})


def test_breaker_from_environment_reads_its_tunables() -> None:
    # GIVEN an environment with the table and tunables
    environ = {
        "CIRCUIT_BREAKER_TABLE": "breakers",
        "CIRCUIT_BREAKER_FAILURE_THRESHOLD": "7",
        "CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S": "20",
    }

    # WHEN the default breaker is built
    breaker = CircuitBreaker.from_environment("users-api", environ=environ)

    # THEN it uses them (its store is created only on first use)
    assert breaker.config.failure_threshold == 7
    assert breaker.config.recovery_timeout == 20
    assert breaker._store is None
