"""The AWS clients the toolkit builds itself: timeouts set, botocore retries off."""

from __future__ import annotations

from typing import Any

from lambdamesh_toolkit.deadline import use_deadline
from lambdamesh_toolkit.resilience import CircuitBreaker, dynamodb_breaker_store, time_for_attempt
from lambdamesh_toolkit.rpc import RpcClient
from tests.support.circuit_breaker import InMemoryCircuitStore


def timeouts(config: Any) -> tuple[float, float]:
    # botocore's Config sets these attributes dynamically; the stubs do not declare them.
    return (config.connect_timeout, config.read_timeout)


def catalog_rpc_client() -> RpcClient:
    """An RPC client of 2.5 s per call and 0.7 s to connect, no Lambda client injected."""
    return RpcClient(
        "lambdamesh-catalog-dev-rpc",
        "catalog-rpc",
        timeout_s=2.5,
        connect_timeout_s=0.7,
        breaker=CircuitBreaker("catalog-rpc", InMemoryCircuitStore()),
    )


def test_rpc_client_builds_a_lambda_client_with_its_timeouts_and_no_botocore_retries(
    aws_credentials: None,
) -> None:
    # GIVEN an RPC client without an injected Lambda client
    client = catalog_rpc_client()

    # WHEN its Lambda client is created for an attempt with no deadline to shorten it
    config = client._client(2.5).meta.config

    # THEN it has the timeouts and a single botocore attempt, so only our policy retries
    assert timeouts(config) == (0.7, 2.5)
    retries = getattr(config, "retries", None)
    assert retries is not None
    assert retries["total_max_attempts"] == 1


def test_rpc_client_gives_an_attempt_only_what_is_left_of_the_deadline(
    aws_credentials: None, frozen_deadline_clock: float
) -> None:
    # GIVEN an RPC client with a 2.5 s timeout, and a request with 0.42 s left (on a clock
    # that stands still: a stalled worker cannot eat into them before the attempt)
    client = catalog_rpc_client()
    use_deadline(frozen_deadline_clock + 0.42)
    try:
        # WHEN its Lambda client is created for the next attempt
        config = client._client(time_for_attempt(client.timeout_s)).meta.config
    finally:
        use_deadline(None)
    # THEN the attempt may take what is left (rounded up to a tenth), and connect no longer
    connect, read = timeouts(config)
    assert read == 0.5
    assert connect <= 0.5


def test_default_breaker_store_is_one_per_table_with_short_timeouts(aws_credentials: None) -> None:
    # GIVEN / WHEN the default store of a table is asked for twice
    first = dynamodb_breaker_store("breakers-a")
    second = dynamodb_breaker_store("breakers-a")

    # THEN one store (one boto3 client) serves every circuit of the container,
    # with timeouts short enough not to stall the call it guards
    assert first is second
    config = first.client.meta.config  # type: ignore[attr-defined]
    assert timeouts(config) == (0.5, 1.0)
