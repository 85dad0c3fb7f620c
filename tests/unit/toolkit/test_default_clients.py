"""The AWS clients the toolkit builds itself: timeouts set, botocore retries off."""

from __future__ import annotations

from typing import Any

from lambdamesh_toolkit.resilience import CircuitBreaker, dynamodb_breaker_store
from lambdamesh_toolkit.rpc import RpcClient
from tests.support.circuit_breaker import InMemoryCircuitStore


def timeouts(config: Any) -> tuple[float, float]:
    # botocore's Config sets these attributes dynamically; the stubs do not declare them.
    return (config.connect_timeout, config.read_timeout)


def test_rpc_client_builds_a_lambda_client_with_its_timeouts_and_no_botocore_retries(
    aws_credentials: None,
) -> None:
    # GIVEN an RPC client without an injected Lambda client
    client = RpcClient(
        "lambdamesh-catalog-dev-rpc",
        "catalog-rpc",
        timeout_s=2.5,
        connect_timeout_s=0.7,
        breaker=CircuitBreaker("catalog-rpc", InMemoryCircuitStore()),
    )

    # WHEN its Lambda client is created (on first use)
    config = client._client().meta.config

    # THEN it has the timeouts and a single botocore attempt, so only our policy retries
    assert timeouts(config) == (0.7, 2.5)
    retries = getattr(config, "retries", None)
    assert retries is not None
    assert retries["total_max_attempts"] == 1


def test_default_breaker_store_is_one_per_table_with_short_timeouts(aws_credentials: None) -> None:
    # GIVEN / WHEN the default store of a table is asked for twice
    first = dynamodb_breaker_store("breakers-a")
    second = dynamodb_breaker_store("breakers-a")

    # THEN one store (one boto3 client) serves every circuit of the container,
    # with timeouts short enough not to stall the call it guards
    assert first is second
    config = first.client.meta.config  # type: ignore[attr-defined]
    assert timeouts(config) == (0.5, 1.0)
