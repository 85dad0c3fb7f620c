"""The correlation id flows: HTTP header in and out, RPC envelope, every log line."""

from __future__ import annotations

import io
import json
import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from chalice.app import Chalice
from chalice.test import Client

from lambdamesh_toolkit.contracts.catalog import GetProductRequest, GetProductResponse, Product
from lambdamesh_toolkit.correlation import (
    CORRELATION_HEADER,
    correlation_from_http_headers,
    current_correlation_id,
    use_correlation_id,
)
from lambdamesh_toolkit.hops import HOP_MESSAGE
from lambdamesh_toolkit.http_api import HttpApi
from lambdamesh_toolkit.http_client import ServiceHttpClient
from lambdamesh_toolkit.logging import get_logger
from lambdamesh_toolkit.resilience import CircuitBreaker, RetryPolicy
from lambdamesh_toolkit.rpc import RpcServer
from tests.support.circuit_breaker import InMemoryCircuitStore
from tests.unit.toolkit.conftest import ScriptedServer


def captured_logger(stream: io.StringIO) -> Any:
    # A service name of this test only: Powertools configures a service's logger once.
    return get_logger(f"svc-{uuid.uuid4().hex[:8]}", stream=stream)


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_use_correlation_id_keeps_a_valid_id_and_replaces_a_missing_or_unsafe_one() -> None:
    # GIVEN / WHEN ids are adopted
    kept = use_correlation_id("order-42.retry:1")
    started = use_correlation_id(None)
    replaced = use_correlation_id("evil\nInjected: header")

    # THEN a valid id is kept, a missing one started, an unsafe one replaced
    assert kept == "order-42.retry:1"
    assert started != kept
    assert len(started) == 36
    assert replaced not in ("evil\nInjected: header", started)
    assert current_correlation_id() == replaced


def test_header_is_read_whatever_its_case() -> None:
    # GIVEN headers as API Gateway may deliver them
    # WHEN the correlation id is read
    # THEN the case does not matter and absence gives None
    assert correlation_from_http_headers({"x-correlation-id": "abc"}) == "abc"
    assert correlation_from_http_headers({"X-CORRELATION-ID": " abc "}) == "abc"
    assert correlation_from_http_headers({"Accept": "*/*"}) is None
    assert correlation_from_http_headers(None) is None


def test_http_request_id_reaches_the_answer_the_dependency_and_every_log_line(
    http_server: ScriptedServer,
) -> None:
    # GIVEN a Chalice app whose handler logs and calls a dependency over HTTP
    stream = io.StringIO()
    logger = captured_logger(stream)
    app = Chalice(app_name="orders-test")
    api = HttpApi(app, logger)
    users = ServiceHttpClient(
        http_server.url,
        "users-api-corr",
        read_timeout_s=30.0,  # beyond any stall of a busy machine: not a test of timeouts
        retry=RetryPolicy(max_attempts=1),
        breaker=CircuitBreaker("users-api-corr", InMemoryCircuitStore()),
    )

    @app.route("/orders", methods=["POST"])
    @api.endpoint(status=201)
    def create_order() -> dict[str, Any]:
        logger.info("validating user")
        users.get("/users/u-1")
        logger.info("order accepted")
        return {"id": "o-1"}

    # WHEN a request arrives with a correlation id
    with Client(app) as client:
        response = client.http.post(
            "/orders",
            headers={CORRELATION_HEADER: "corr-flow-1", "Content-Type": "application/json"},
            body=b"{}",
        )

    # THEN the answer, the outgoing request and every log line carry that id
    assert response.status_code == 201
    assert response.headers[CORRELATION_HEADER] == "corr-flow-1"
    assert http_server.received[0].headers[CORRELATION_HEADER] == "corr-flow-1"
    lines = log_lines(stream)
    told = [line["message"] for line in lines if line["message"] != HOP_MESSAGE]
    assert told == ["validating user", "order accepted"]
    for line in lines:  # the hop records (the HTTP call, the request) included
        assert line["correlation_id"] == "corr-flow-1"
        assert line["service"] == logger.service
        assert line["request_id"]


def test_http_request_without_id_gets_a_new_one_in_answer_and_logs() -> None:
    # GIVEN an app whose handler logs
    stream = io.StringIO()
    logger = captured_logger(stream)
    app = Chalice(app_name="users-test")
    api = HttpApi(app, logger)

    @app.route("/ping")
    @api.endpoint()
    def ping() -> dict[str, str]:
        logger.info("pong")
        return {"pong": "yes"}

    # WHEN a request arrives without a correlation id
    with Client(app) as client:
        response = client.http.get("/ping")

    # THEN a new id is started, answered, and logged
    started = response.headers[CORRELATION_HEADER]
    assert len(started) == 36
    assert log_lines(stream)[0]["correlation_id"] == started


def test_rpc_server_logs_carry_the_callers_id_and_the_request_id() -> None:
    # GIVEN an RPC server with a logger, whose method logs
    stream = io.StringIO()
    logger = captured_logger(stream)
    server = RpcServer("catalog", logger=logger)

    @server.method("GetProduct", GetProductRequest)
    def get_product(request: GetProductRequest) -> GetProductResponse:
        logger.info("loading product")
        return GetProductResponse(
            product=Product(id="p-1", name="Mug", price_cents=1, currency="EUR", stock=1)
        )

    # WHEN it serves a call carrying a correlation id
    envelope = {
        "method": "GetProduct",
        "version": 1,
        "correlation_id": "corr-rpc-9",
        "payload": {"product_id": "p-1"},
    }
    server.handle(envelope, SimpleNamespace(aws_request_id="req-77"))

    # THEN its log line carries the caller's id and this invocation's request id
    line = log_lines(stream)[0]
    assert (line["correlation_id"], line["request_id"]) == ("corr-rpc-9", "req-77")


@pytest.mark.parametrize("service", ["orders"])
def test_get_logger_returns_one_logger_per_service(service: str) -> None:
    # GIVEN / WHEN a service's logger is asked for twice
    # THEN it is the same instance (Powertools configures a service's handler only once)
    assert get_logger(service) is get_logger(service)
