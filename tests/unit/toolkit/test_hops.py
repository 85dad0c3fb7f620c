"""Hop records: one line per hop, and the trace context passed on at every boundary.

Each test reads the JSON lines a function's logger wrote and checks that the hops' spans join
up the way ``lambdamesh trace`` rebuilds them: a hop's ``parent_span_id`` is the span of the hop
that caused it, over HTTP headers, RPC envelopes, SNS/SQS message attributes, dead letters and
an event store's stream.
"""

from __future__ import annotations

import contextvars
import io
import json
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from chalice.app import Chalice
from chalice.test import Client
from moto import mock_aws

from lambdamesh_toolkit.contracts.catalog import GetProductRequest, GetProductResponse, Product
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.errors import NotFound
from lambdamesh_toolkit.events.change_capture import Change, StreamFunction
from lambdamesh_toolkit.events.dead_lettering import PermanentFailure
from lambdamesh_toolkit.events.publishing import Publisher
from lambdamesh_toolkit.events.store import TRACEPARENT_ATTRIBUTE, EventStore, table_definition
from lambdamesh_toolkit.hops import (
    HOP_MESSAGE,
    HTTP,
    Hop,
    hop,
    inbound_hop,
    outbound_hop,
)
from lambdamesh_toolkit.http_api import HttpApi
from lambdamesh_toolkit.http_client import ServiceHttpClient
from lambdamesh_toolkit.logging import bind_invocation, get_logger
from lambdamesh_toolkit.resilience import CircuitBreaker, RetryPolicy
from lambdamesh_toolkit.rpc import RpcClient, RpcServer
from lambdamesh_toolkit.trace_context import (
    SpanContext,
    current_span,
    current_traceparent,
    parse_traceparent,
)
from tests.support.circuit_breaker import InMemoryCircuitStore
from tests.support.stream_records import stream_event, stream_record
from tests.unit.toolkit.conftest import ScriptedAnswer, ScriptedServer
from tests.unit.toolkit.consumer_world import World, order_placed, user_created
from tests.unit.toolkit.test_consumer_dead_letters import dead_letters, with_dead_letter_queue

CALLER = SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7")
#: What every hop line carries besides its details.
HOP_KEYS = {"hop", "peer", "outcome", "start_ms", "duration_ms", "trace_id", "span_id"}


class Captured:
    """A service's logger writing to memory, and the hop records it wrote."""

    def __init__(self) -> None:
        self.stream = io.StringIO()
        # A service name of this test only: Powertools configures a service's logger once.
        self.logger = get_logger(f"svc-{uuid.uuid4().hex[:8]}", stream=self.stream)

    def hops(self) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.stream.getvalue().splitlines() if line]
        return [line for line in lines if line["message"] == HOP_MESSAGE]

    def hop(self, kind: str) -> dict[str, Any]:
        [found] = [line for line in self.hops() if line["hop"] == kind]
        return found


@pytest.fixture
def captured() -> Captured:
    return Captured()


def breaker(name: str) -> CircuitBreaker:
    return CircuitBreaker(name, InMemoryCircuitStore(), failure_threshold=100)


# --- the record ---------------------------------------------------------------------------


def test_a_hop_logs_one_line_with_its_span_its_parent_its_timing_and_its_outcome(
    captured: Captured,
) -> None:
    # GIVEN an invocation bound to a logger under a correlation id
    bind_invocation(captured.logger, use_correlation_id("corr-hop-1"), "req-1")
    # WHEN a hop caused by the caller's span runs and answers 201
    with hop(HTTP, "users-api", parent=CALLER, method="POST") as call:
        inside = current_span()
        call.answered(201)
    # THEN it was the current span while it ran, and left one line saying all about it
    line = captured.hop(HTTP)
    assert inside == call.span
    assert HOP_KEYS | {"parent_span_id", "status", "method"} <= set(line)
    assert (line["peer"], line["outcome"], line["status"], line["method"]) == (
        "users-api",
        "ok",
        "201",
        "POST",
    )
    assert (line["trace_id"], line["parent_span_id"]) == (CALLER.trace_id, CALLER.span_id)
    assert line["span_id"] == call.span.span_id != CALLER.span_id
    assert line["correlation_id"] == "corr-hop-1"
    assert line["start_ms"] > 1_700_000_000_000
    assert line["duration_ms"] >= 0
    # AND after it the span before it is current again
    assert current_span() is None


def test_a_hop_without_a_parent_starts_a_trace_and_names_no_parent(captured: Captured) -> None:
    # GIVEN a request that came with no trace context
    bind_invocation(captured.logger, use_correlation_id("corr-hop-2"), None)
    # WHEN it is entered
    with inbound_hop("api", "GET /ping", None, logger=captured.logger) as served:
        pass
    # THEN a new trace starts with it
    line = captured.hop("api")
    assert "parent_span_id" not in line
    assert line["trace_id"] == served.span.trace_id != CALLER.trace_id
    assert line["outcome"] == "ok"


@pytest.mark.parametrize(
    ("error", "outcome", "status"),
    [
        (KeyError("x"), "failed", "KeyError"),
        (NotFound("product", "p-1"), "refused", "not_found"),
    ],
    ids=["exception", "typed-4xx"],
)
def test_a_hop_that_raises_says_how_it_ended(
    captured: Captured, error: Exception, outcome: str, status: str
) -> None:
    # GIVEN a bound invocation
    bind_invocation(captured.logger, use_correlation_id("corr-hop-3"), None)
    # WHEN a hop's block raises
    with pytest.raises(type(error)), outbound_hop("rpc.call", "catalog"):
        raise error
    # THEN its line says so: an exception failed it, a typed 4xx is the other side refusing
    line = captured.hop("rpc.call")
    assert (line["outcome"], line["status"]) == (outcome, status)


def test_outside_an_invocation_a_hop_is_still_the_current_span_but_writes_no_line() -> None:
    # GIVEN a context where no invocation was bound (say, the CLI)
    seen: list[Hop] = []
    spans: list[SpanContext | None] = []

    def publish_something() -> None:
        with outbound_hop("publish", "lambdamesh-orders.fifo") as publishing:
            seen.append(publishing)
            spans.append(current_span())

    # WHEN a hop runs there
    contextvars.Context().run(publish_something)
    # THEN it was a span (what it sends carries a traceparent) and nothing failed for want of
    # a logger
    assert spans == [seen[0].span]


# --- HTTP ---------------------------------------------------------------------------------


def api_calling_users(captured: Captured, users: ServiceHttpClient) -> Chalice:
    app = Chalice(app_name="orders-hops")
    api = HttpApi(app, captured.logger)

    @app.route("/orders/{order_id}")
    @api.endpoint()
    def get_order(order_id: str) -> dict[str, Any]:
        users.get("/users/u-1")
        return {"id": order_id}

    return app


def test_an_api_request_continues_the_callers_trace_and_its_http_call_passes_it_on(
    captured: Captured, http_server: ScriptedServer
) -> None:
    # GIVEN an API whose route calls the users service, and a caller with a trace context
    users = ServiceHttpClient(
        http_server.url,
        "users-api-hops",
        read_timeout_s=30.0,  # beyond any stall of a busy machine: not a test of timeouts
        retry=RetryPolicy(max_attempts=1),
        breaker=breaker("users-api-hops"),
    )
    app = api_calling_users(captured, users)
    # WHEN the caller's request arrives with its traceparent
    with Client(app) as client:
        response = client.http.get(
            "/orders/o-1",
            headers={"X-Correlation-Id": "corr-api-1", "traceparent": CALLER.traceparent()},
        )
    # THEN the request is a child of the caller's span, with the route (not the id) and status
    assert response.status_code == 200
    served, call = captured.hop("api"), captured.hop("http")
    assert (served["peer"], served["status"]) == ("GET /orders/{order_id}", "200")
    assert served["outcome"] == "ok"
    assert served["parent_span_id"] == CALLER.span_id
    # AND the HTTP call is the request's child, and the users service was told it is its parent
    assert (call["parent_span_id"], call["trace_id"]) == (served["span_id"], CALLER.trace_id)
    assert (call["peer"], call["method"], call["status"]) == ("users-api-hops", "GET", "200")
    sent = parse_traceparent(http_server.received[0].headers["traceparent"])
    assert sent == SpanContext(CALLER.trace_id, call["span_id"])
    assert {line["correlation_id"] for line in captured.hops()} == {"corr-api-1"}


def test_an_api_request_without_a_traceparent_starts_a_trace_and_a_refusal_is_recorded(
    captured: Captured,
) -> None:
    # GIVEN an API whose route refuses an unknown order
    app = Chalice(app_name="orders-hops-404")
    api = HttpApi(app, captured.logger)

    @app.route("/orders/{order_id}")
    @api.endpoint()
    def get_order(order_id: str) -> dict[str, Any]:
        raise NotFound("order", order_id)

    # WHEN a request without trace context asks for one
    with Client(app) as client:
        response = client.http.get("/orders/o-404", headers={"traceparent": "not-one"})
    # THEN it is the first hop of a new trace, refused with its status
    assert response.status_code == 404
    served = captured.hop("api")
    assert "parent_span_id" not in served
    assert (served["outcome"], served["status"]) == ("refused", "404")


@pytest.mark.parametrize(
    ("authorization", "signed"),
    [
        (
            "AWS4-HMAC-SHA256 Credential=ASIAKEY/20261203/us-east-1/execute-api/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
            True,
        ),
        ("Bearer some-token", False),
        (None, False),
    ],
    ids=["sigv4", "other-scheme", "none"],
)
def test_an_api_hop_says_whether_its_request_was_signed_and_never_logs_the_signature(
    captured: Captured, authorization: str | None, signed: bool
) -> None:
    # GIVEN an API route, and a request with a SigV4 Authorization header, another, or none
    app = Chalice(app_name="users-hops-signed")
    api = HttpApi(app, captured.logger)

    @app.route("/users/{user_id}")
    @api.endpoint()
    def get_user(user_id: str) -> dict[str, Any]:
        return {"id": user_id}

    headers = {} if authorization is None else {"Authorization": authorization}
    # WHEN it is served
    with Client(app) as client:
        assert client.http.get("/users/u-1", headers=headers).status_code == 200
    # THEN its api hop says whether it carried a SigV4 signature
    assert captured.hop("api")["signed"] is signed
    # AND no line holds the header's value
    assert authorization is None or authorization not in captured.stream.getvalue()


def test_a_retried_http_call_is_a_retry_hop_whose_span_the_second_request_carries(
    captured: Captured, http_server: ScriptedServer
) -> None:
    # GIVEN a dependency that answers 503 once, then 200, and a call made inside a request
    http_server.answer(ScriptedAnswer(status=503), ScriptedAnswer(status=200))
    users = ServiceHttpClient(
        http_server.url,
        "users-api-retry",
        read_timeout_s=30.0,  # beyond any stall of a busy machine: not a test of timeouts
        retry=RetryPolicy(max_attempts=2, sleep=lambda _: None),
        breaker=breaker("users-api-retry"),
    )
    bind_invocation(captured.logger, use_correlation_id("corr-retry-1"), None)
    # WHEN the call is made
    with hop("api", "GET /orders/{order_id}", parent=None, logger=captured.logger):
        assert users.get("/users/u-1").status == 200
    # THEN the second attempt is a retry hop under the call, failed or not as it went
    call, retry = captured.hop("http"), captured.hop("retry")
    assert (retry["parent_span_id"], retry["attempt"], retry["outcome"]) == (
        call["span_id"],
        2,
        "ok",
    )
    # AND each request named the hop it was sent from: the call, then the retry
    first, second = (parse_traceparent(r.headers["traceparent"]) for r in http_server.received)
    assert first is not None
    assert second is not None
    assert (first.span_id, second.span_id) == (call["span_id"], retry["span_id"])


# --- RPC ----------------------------------------------------------------------------------


class InProcessLambda:
    """``invoke`` handing the payload to an RPC server, as Lambda would."""

    def __init__(self, server: RpcServer) -> None:
        self.server = server
        self.payloads: list[dict[str, Any]] = []

    def invoke(self, **kwargs: Any) -> dict[str, Any]:
        payload = json.loads(kwargs["Payload"])
        self.payloads.append(payload)
        # The server runs in a context of its own, as another function's process would.
        answer = contextvars.Context().run(
            self.server.handle, payload, SimpleNamespace(aws_request_id="req-rpc")
        )
        return {"StatusCode": 200, "Payload": io.BytesIO(json.dumps(answer).encode())}


def test_an_rpc_call_and_the_call_served_are_joined_by_the_envelopes_traceparent(
    captured: Captured,
) -> None:
    # GIVEN a catalog RPC server logging to its own logger, and a caller inside a request
    served_log = Captured()
    server = RpcServer("catalog", logger=served_log.logger)

    @server.method("GetProduct", GetProductRequest)
    def get_product(request: GetProductRequest) -> GetProductResponse:
        product = Product(id=request.product_id, name="Mug", price_cents=1, currency="EUR", stock=1)
        return GetProductResponse(product=product)

    fake = InProcessLambda(server)
    client = RpcClient(
        "catalog-rpc",
        "catalog-rpc-hops",
        lambda_client=fake,  # type: ignore[arg-type]
        retry=RetryPolicy(max_attempts=1),
        breaker=breaker("catalog-rpc-hops"),
    )
    bind_invocation(captured.logger, use_correlation_id("corr-rpc-hops"), None)
    # WHEN the caller calls GetProduct
    with hop("api", "POST /orders", parent=CALLER, logger=captured.logger):
        client.call("GetProduct", GetProductRequest(product_id="p-1"), GetProductResponse)
    # THEN the call is the request's child, the envelope carried its span, and the call served
    # is the call's child, under the same correlation id and trace
    request, call = captured.hop("api"), captured.hop("rpc.call")
    serve = served_log.hop("rpc.serve")
    assert call["parent_span_id"] == request["span_id"]
    assert parse_traceparent(fake.payloads[0]["traceparent"]) == SpanContext(
        CALLER.trace_id, call["span_id"]
    )
    assert (serve["parent_span_id"], serve["trace_id"]) == (call["span_id"], CALLER.trace_id)
    assert (serve["peer"], serve["outcome"]) == ("GetProduct", "ok")
    assert serve["correlation_id"] == "corr-rpc-hops"


# --- SNS, SQS and dead letters --------------------------------------------------------------


@pytest.fixture
def world(aws_credentials: None) -> Iterator[World]:
    from tests.unit.toolkit.consumer_world import make_world

    yield from make_world()


def test_a_published_event_carries_its_publish_hop_and_its_delivery_is_that_hops_child(
    world: World, captured: Captured
) -> None:
    # GIVEN a service that publishes while it handles a request
    publisher_log = Captured()
    bind_invocation(publisher_log.logger, use_correlation_id("corr-events-1"), None)
    with hop("api", "POST /users", parent=CALLER, logger=publisher_log.logger):
        Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    publish = publisher_log.hop("publish")
    # WHEN the consumer is handed the delivery
    event = world.receive(world.standard)
    handled: list[str | None] = []
    consumer = world.consumer(
        {("user.created", 1): lambda e, d: handled.append(current_traceparent())},
        logger=captured.logger,
    )
    consumer.process(event, None)
    # THEN the message carried the publish hop's traceparent, and the delivery is its child,
    # current while the handler ran
    assert publish["peer"] == "lambdamesh-users"
    assert publish["event_type"] == "user.created"
    carried = event["Records"][0]["messageAttributes"]["traceparent"]["stringValue"]
    assert parse_traceparent(carried) == SpanContext(CALLER.trace_id, publish["span_id"])
    delivery = captured.hop("consume")
    assert (delivery["parent_span_id"], delivery["attempt"], delivery["outcome"]) == (
        publish["span_id"],
        1,
        "ok",
    )
    assert delivery["peer"] == world.standard.arn.rsplit(":", 1)[-1]
    assert handled == [SpanContext(CALLER.trace_id, delivery["span_id"]).traceparent()]
    assert (delivery["correlation_id"], delivery["event_type"]) == ("corr-events-1", "user.created")


def test_a_redelivered_record_is_a_retry_hop_with_its_receive_count(
    world: World, captured: Captured
) -> None:
    # GIVEN a handler that fails the first time
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-2"))
    calls: list[int] = []

    def handle(envelope: Any, data: Any) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError("the mail service did not answer")

    consumer = world.consumer({("user.created", 1): handle}, logger=captured.logger)
    first = world.receive(world.standard)
    consumer.process(first, None)
    # WHEN the record comes back (its receive count now 2)
    again = first["Records"][0] | {
        "attributes": {**first["Records"][0]["attributes"], "ApproximateReceiveCount": "2"}
    }
    consumer.process({"Records": [again]}, None)
    # THEN the first delivery failed with the error's class, and the second is a retry hop,
    # a sibling under the same publish
    delivery, retry = captured.hop("consume"), captured.hop("retry")
    assert (delivery["outcome"], delivery["status"]) == ("failed", "TimeoutError")
    assert (retry["outcome"], retry["attempt"]) == ("ok", 2)
    assert retry["parent_span_id"] == delivery["parent_span_id"]
    assert "the mail service" not in json.dumps(captured.hops())


def test_a_record_dead_lettered_at_once_is_a_dead_letter_hop_whose_span_its_copy_carries(
    world: World, captured: Captured
) -> None:
    # GIVEN a queue with a DLQ, and a handler for which the event can never succeed
    dlq_url = with_dead_letter_queue(world, world.fifo)
    Publisher(world.fifo.topic_arn, sns_client=world.sns).publish(
        order_placed("o-1"), group_id="o-1"
    )

    def refuse(envelope: Any, data: Any) -> None:
        raise PermanentFailure("the address is refused")

    consumer = world.consumer({("order.placed", 1): refuse}, fifo=True, logger=captured.logger)
    # WHEN the record is processed
    consumer.process(world.receive(world.fifo), None)
    # THEN its delivery was refused, and dead-lettering it is a hop under that delivery
    delivery, moved = captured.hop("consume"), captured.hop("dead_letter")
    assert (delivery["outcome"], delivery["status"]) == ("refused", "PermanentFailure")
    assert (moved["parent_span_id"], moved["outcome"]) == (delivery["span_id"], "ok")
    assert moved["peer"] == world.fifo.arn.rsplit(":", 1)[-1]
    # AND the copy in the DLQ names that hop, so a redriven delivery joins the trace under it
    [letter] = dead_letters(world, dlq_url)
    carried = parse_traceparent(letter["MessageAttributes"]["traceparent"]["StringValue"])
    assert carried is not None
    assert carried.span_id == moved["span_id"]


# --- an event store's stream ----------------------------------------------------------------


class SeenSpans(StreamFunction):
    """A stream function remembering the span each record was handled in."""

    def __init__(self, logger: Any) -> None:
        super().__init__(logger=logger)
        self.spans: list[SpanContext | None] = []

    def handle(self, change: Change) -> None:
        self.spans.append(current_span())


def test_an_event_appended_in_a_hop_is_handed_to_the_stream_as_that_hops_child(
    aws_credentials: None, captured: Captured
) -> None:
    # GIVEN an event store, and an event appended while a request is handled
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="lambdamesh-orders-events",
            BillingMode="PAY_PER_REQUEST",
            **table_definition(),
        )
        store = EventStore("lambdamesh-orders-events", client=dynamodb)
        with hop("api", "POST /orders", parent=CALLER, logger=captured.logger) as request:
            store.append("order-o-1", [order_placed("o-1")], expected_version=0)
        item = dynamodb.get_item(
            TableName="lambdamesh-orders-events",
            Key={"stream_id": {"S": "order-o-1"}, "version": {"N": "1"}},
        )["Item"]
    # WHEN the stream hands its record to a function
    function = SeenSpans(captured.logger)
    function.process(stream_event(stream_record("INSERT", "1", new_image=dict(item))))
    # THEN the item kept the request's span, and handling the record is that span's child
    assert item[TRACEPARENT_ATTRIBUTE] == {"S": request.span.traceparent()}
    handled = captured.hop("stream")
    assert (handled["parent_span_id"], handled["trace_id"]) == (
        request.span.span_id,
        CALLER.trace_id,
    )
    assert (handled["peer"], handled["sequence_number"]) == ("test-table", "1")
    assert function.spans == [SpanContext(CALLER.trace_id, handled["span_id"])]
