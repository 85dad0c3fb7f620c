"""A cold start is not a dead dependency: what the circuit breaker counts, and what it does not.

A burst of callers reaching a dependency that is starting (slow, but answering within each
attempt's timeout) must leave its circuit closed; so must timeouts that the callers' own
deadlines cut short, and attempts never made for lack of time. A dependency that hangs past the
whole of its timeout still opens the circuit, as ``tests/e2e/test_sync_journey.py`` expects.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from lambdamesh_toolkit.contracts.catalog import GetProductRequest, GetProductResponse, Product
from lambdamesh_toolkit.deadline import begin_deadline, use_deadline
from lambdamesh_toolkit.errors import DependencyUnavailable
from lambdamesh_toolkit.http_client import HttpResult, ServiceHttpClient
from lambdamesh_toolkit.resilience import CircuitBreaker, RetryPolicy
from lambdamesh_toolkit.rpc import RpcClient
from tests.support.circuit_breaker import InMemoryCircuitStore
from tests.unit.toolkit.conftest import (
    ScriptedAnswer,
    ScriptedServer,
    shared_circuit_client,
    stored_circuit_state,
)

THRESHOLD = 3
"""Consecutive counted failures that open a circuit in these tests."""
COLD_START_S = 0.3
"""How long the dependency takes to answer while it starts."""
ATTEMPT_TIMEOUT_S = 1.0
"""Each attempt's own timeout: it holds a cold start."""
BURST_ATTEMPT_TIMEOUT_S = 8.0
"""Each attempt's timeout in a burst: it holds a cold start, with room for the seconds a
stalled worker, or a burst of threads on few cores, adds to it."""
BUDGET_S = 20.0
"""Each request's deadline: it holds a whole attempt, and a retry, however long a stalled
worker takes to get to the attempt."""
SLOW_START_ATTEMPT_TIMEOUT_S = 30.0
"""An attempt's timeout that a dependency starting slowly answers just inside of: long after
a late caller gave up, however long a stalled worker holds that caller up."""
LATE_BUDGET_S = 0.5
"""What a late caller has left of its deadline: enough to read the circuit's state and send
the call, not to wait for the answer."""
HANGS_S = 30.0
"""How long a dependency that hangs takes to answer: past any attempt's timeout, however long
the test's worker stalls while it waits."""


class TimingOutLambda:
    """A Lambda client whose first ``timeouts`` invocations time out; then the product."""

    def __init__(self, timeouts: int) -> None:
        self.timeouts = timeouts
        self.invocations = 0

    def invoke(self, **_: Any) -> dict[str, Any]:
        self.invocations += 1
        if self.invocations <= self.timeouts:
            raise ReadTimeoutError(endpoint_url="http://lambda")
        product = Product(id="p-1", name="Mug", price_cents=1250, currency="EUR", stock=3)
        body = {"ok": True, "result": {"product": product.model_dump(mode="json")}}
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(body).encode())}


def container(
    url: str,
    name: str,
    table: str,
    sleeps: list[float],
    *,
    attempts: int = 3,
    attempt_timeout_s: float = ATTEMPT_TIMEOUT_S,
) -> ServiceHttpClient:
    """A client as one warm container holds it, with the attempt timeout of these tests."""
    return shared_circuit_client(
        url,
        name,
        table,
        failure_threshold=THRESHOLD,
        attempts=attempts,
        read_timeout_s=attempt_timeout_s,
        sleep=sleeps.append,
    )


def as_a_request(client: ServiceHttpClient, *, budget_s: float) -> HttpResult:
    """``GET /users/u-1`` as an API request makes it: with a deadline of its own."""
    begin_deadline(budget_s, inherited=None)
    try:
        return client.get("/users/u-1")
    finally:
        use_deadline(None)


def test_a_cold_burst_of_slow_but_successful_calls_leaves_the_circuit_closed(
    breaker_table: str, http_server: ScriptedServer, circuit_name: str, sleeps: list[float]
) -> None:
    # GIVEN 16 containers calling a dependency that is starting: every answer takes a cold
    # start, which each attempt's timeout holds
    burst = 16
    http_server.answer(
        *[ScriptedAnswer(200, {"id": "u-1"}, delay_s=COLD_START_S) for _ in range(burst * 2)]
    )
    containers = [
        container(
            http_server.url,
            circuit_name,
            breaker_table,
            sleeps,
            attempt_timeout_s=BURST_ATTEMPT_TIMEOUT_S,
        )
        for _ in range(burst)
    ]

    # WHEN each places two requests, all at once
    def two_requests(client: ServiceHttpClient) -> list[int]:
        return [as_a_request(client, budget_s=BUDGET_S).status for _ in range(2)]

    with ThreadPoolExecutor(burst) as pool:
        statuses = [status for pair in pool.map(two_requests, containers) for status in pair]

    # THEN every call was answered, none retried, and the circuit was never opened
    assert statuses == [200] * burst * 2
    assert len(http_server.received) == burst * 2
    assert stored_circuit_state(breaker_table, circuit_name) is None


def test_timeouts_the_callers_own_deadline_cut_short_leave_the_circuit_closed(
    breaker_table: str, http_server: ScriptedServer, circuit_name: str, sleeps: list[float]
) -> None:
    # GIVEN a dependency that is starting (it answers just inside the attempt's timeout), and
    # callers that arrive late: each has only a sliver of the attempt's timeout left of its
    # deadline (enough to read the circuit's state and send the call, not to wait for the
    # answer)
    late = THRESHOLD * 2
    starting = [
        ScriptedAnswer(200, {"id": "u-1"}, delay_s=SLOW_START_ATTEMPT_TIMEOUT_S * 0.9)
        for _ in range(late)
    ]
    http_server.answer(*starting)
    client = container(
        http_server.url,
        circuit_name,
        breaker_table,
        sleeps,
        attempt_timeout_s=SLOW_START_ATTEMPT_TIMEOUT_S,
    )

    # WHEN twice the threshold of them call it, one after the other
    reasons: list[str | None] = []
    for _ in range(late):
        with pytest.raises(DependencyUnavailable, match=r"timeout|no time left") as refused:
            as_a_request(client, budget_s=LATE_BUDGET_S)
        reasons.append(refused.value.reason)

    # THEN each timed out (or, if a stalled worker held it up past its deadline before the
    # call, had no time left to make it), yet the circuit stayed closed: the callers were
    # late, and the dependency had never had its own timeout to answer in
    sent = sum(1 for reason in reasons if reason is not None and reason.startswith("timeout"))
    assert len(http_server.received_at_least(sent)) == sent
    assert stored_circuit_state(breaker_table, circuit_name) is None
    # AND a caller with its whole budget is answered, once the start is over
    http_server.forget_script()
    assert as_a_request(client, budget_s=BUDGET_S).status == 200


def test_attempts_never_made_for_lack_of_time_leave_the_circuit_closed(
    breaker_table: str, http_server: ScriptedServer, circuit_name: str, sleeps: list[float]
) -> None:
    # GIVEN callers whose deadlines have already passed (their own earlier work was slow)
    client = container(http_server.url, circuit_name, breaker_table, sleeps)

    # WHEN more of them than the threshold try to call the dependency
    for _ in range(THRESHOLD * 2):
        use_deadline(time.time() - 0.5)
        with pytest.raises(DependencyUnavailable, match="no time left"):
            client.get("/users/u-1")
    use_deadline(None)

    # THEN nothing was sent, and the dependency's circuit knows nothing against it
    assert http_server.received == []
    assert stored_circuit_state(breaker_table, circuit_name) is None


def test_a_dependency_that_hangs_past_its_whole_timeout_still_opens_the_circuit(
    breaker_table: str, http_server: ScriptedServer, circuit_name: str, sleeps: list[float]
) -> None:
    # GIVEN a dependency that accepts and never answers in time, and callers whose deadlines
    # leave each attempt its whole timeout (one attempt per request, as the deadline allows
    # for a users API that hangs)
    hang = ScriptedAnswer(200, delay_s=HANGS_S)
    http_server.answer(*[hang for _ in range(THRESHOLD)])
    client = container(http_server.url, circuit_name, breaker_table, sleeps, attempts=1)

    # WHEN requests call it, one after the other, until one is refused without a call
    for _ in range(THRESHOLD):
        with pytest.raises(DependencyUnavailable, match="timeout"):
            as_a_request(client, budget_s=BUDGET_S)
    with pytest.raises(DependencyUnavailable, match="circuit open"):
        as_a_request(client, budget_s=BUDGET_S)

    # THEN the circuit opened after the threshold's requests, in the shared table
    assert len(http_server.received_at_least(THRESHOLD)) == THRESHOLD
    assert stored_circuit_state(breaker_table, circuit_name) == "OPEN"


def test_a_timeout_counts_again_after_inconclusive_ones_without_starting_over(
    breaker_table: str, http_server: ScriptedServer, circuit_name: str, sleeps: list[float]
) -> None:
    # GIVEN a dependency that hangs, and callers of which some arrive late
    hang = ScriptedAnswer(200, delay_s=HANGS_S)
    http_server.answer(*[hang for _ in range(THRESHOLD * 2)])
    client = container(http_server.url, circuit_name, breaker_table, sleeps, attempts=1)

    # WHEN on-time and late requests alternate, as many on time as the threshold
    for _ in range(THRESHOLD):
        with pytest.raises(DependencyUnavailable, match="timeout"):
            as_a_request(client, budget_s=BUDGET_S)
        with pytest.raises(DependencyUnavailable):
            as_a_request(client, budget_s=0.1)

    # THEN the late ones neither counted nor reset the count: the circuit is open
    assert stored_circuit_state(breaker_table, circuit_name) == "OPEN"


def test_an_rpc_timeout_counts_only_when_the_call_had_its_whole_timeout(
    sleeps: list[float],
) -> None:
    # GIVEN a catalog whose first three invocations time out (at once: the timeout is only a
    # number here, long enough that a stalled worker cannot use up half of it before a call),
    # behind a circuit opening after two counted failures
    name = f"catalog-rpc-{uuid.uuid4().hex[:6]}"
    breaker = CircuitBreaker(name, InMemoryCircuitStore(), failure_threshold=2)
    fake = TimingOutLambda(timeouts=3)
    timeout_s = BUDGET_S / 2
    client = RpcClient(
        "fn",
        name,
        lambda_client=fake,  # type: ignore[arg-type]
        timeout_s=timeout_s,
        retry=RetryPolicy(max_attempts=1, sleep=sleeps.append),
        breaker=breaker,
    )
    request = GetProductRequest(product_id="p-1")

    # WHEN two calls time out with less time left than the call's timeout, and one with it all
    for budget_s in (timeout_s / 2, timeout_s / 2, BUDGET_S):
        begin_deadline(budget_s, inherited=None)
        with pytest.raises(DependencyUnavailable, match="timeout"):
            client.call("GetProduct", request, GetProductResponse)
    use_deadline(None)

    # THEN only the last one counted: the circuit is still closed and the next call answered
    assert str(breaker.state()) == "CLOSED"
    assert client.call("GetProduct", request, GetProductResponse).product.id == "p-1"
    assert fake.invocations == 4
