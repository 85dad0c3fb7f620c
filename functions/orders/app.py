"""The orders service: orders kept as events, the order saga, and read models of them.

``POST /orders`` checks the user with the user service (HTTP), prices the items from the
catalog (RPC ``GetProducts``: one call for all its items) and appends ``order.placed`` to the
order's new event stream. With an ``Idempotency-Key`` header the same key and body always
yield the same order: ``201`` the first time, ``200`` with that order on every repeat; a
different body under a used key is ``422``; a repeat that runs alongside the first gets the
same order too (the key is recorded in the order's own write), or ``409`` in the rare case the
two write at the same moment.

``handle_outcomes`` consumes ``lambdamesh-orders-outcomes`` (payment and inventory outcomes)
and appends each to its order's stream, with ``order.confirmed`` or ``order.cancelled`` when
it decides the order.

Nothing here publishes while it writes: ``publish_order_events`` runs on the event store's
DynamoDB stream and publishes every appended event to the orders FIFO topic (but the records of
the outcomes, which only orders reads), in order per order, at least once; ``project_orders``
keeps the read model ``GET /orders/{order_id}`` and ``GET /users/{user_id}/orders`` answer from;
``GET /orders/{order_id}/events`` is the order's history; ``rebuild_projection``
(``lambdamesh orders rebuild``) rebuilds the read model from the events and reports how the live
one differs.
"""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import Response, SQSEvent
from pydantic import BaseModel

from chalicelib.idempotency import IDEMPOTENCY_HEADER, check_key
from chalicelib.order import OUTCOME_TYPES
from chalicelib.placing import OrderDesk
from chalicelib.projection import OrderProjector
from chalicelib.reading import OrderReader
from chalicelib.saga import OrderSaga
from chalicelib.settings import OrdersSettings, SagaSettings, StreamSettings
from chalicelib.wiring import (
    build_order_desk,
    build_projector,
    build_reader,
    build_saga,
    build_stream_publisher,
    rebuild_projection,
)
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.events import EventEnvelope
from lambdamesh_toolkit.contracts.orders import (
    CreateOrder,
    Order,
    OrderHistory,
    UserOrders,
)
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.change_capture import StreamPublisher
from lambdamesh_toolkit.events.consuming import EventConsumer
from lambdamesh_toolkit.http_api import ApiApp, HttpApi, json_response
from lambdamesh_toolkit.logging import bind_invocation, get_logger
from lambdamesh_toolkit.paging import PageQuery

app = ApiApp(app_name="lambdamesh-orders")
logger = get_logger("orders")
api = HttpApi(app, logger)

OUTCOMES_QUEUE = "lambdamesh-orders-outcomes"
"""Payment and inventory outcomes, fanned out from their topics (a standard queue)."""


# Each use case is built on first use and kept by the warm container; lazily rather than at
# import so that ``chalice package`` (which imports this module to find the routes) needs no
# environment.


@functools.cache
def order_desk() -> OrderDesk:
    """Placing orders."""
    return build_order_desk(load_settings(OrdersSettings))


@functools.cache
def order_reader() -> OrderReader:
    """Reading orders."""
    return build_reader(load_settings(OrdersSettings))


@functools.cache
def order_saga() -> OrderSaga:
    """The order saga."""
    return build_saga(load_settings(SagaSettings))


@functools.cache
def stream_publisher() -> StreamPublisher:
    """The publisher of appended events."""
    return build_stream_publisher(load_settings(StreamSettings), logger)


@functools.cache
def projector() -> OrderProjector:
    """The projector of the read model."""
    return build_projector(load_settings(StreamSettings), logger)


@app.route("/orders", methods=["POST"])
@api.endpoint(
    body=CreateOrder,
    headers=(IDEMPOTENCY_HEADER,),
    answers={200: Order, 201: Order},
    errors=(409, 422, 503),
)
def place_order() -> Response:
    """Place an order (201), or answer the one placed under the same key (200)."""
    request = api.parse_body(CreateOrder)
    raw_key = api.request.headers.get(IDEMPOTENCY_HEADER)
    key = None if raw_key is None else check_key(raw_key)
    placement = order_desk().place(request, key)
    logger.info(
        "order replayed" if placement.replayed else "order placed",
        extra={"order_id": placement.order.id, "idempotency_key": key},
    )
    return json_response(placement.order, status=200 if placement.replayed else 201)


@app.route("/orders/{order_id}", methods=["GET"])
@api.endpoint(errors=(404,))
def get_order(order_id: str) -> Order:
    """The order with this id (404 when there is none)."""
    return order_reader().get(order_id)


@app.route("/orders/{order_id}/events", methods=["GET"])
@api.endpoint(query=PageQuery, errors=(404,))
def order_events(order_id: str) -> OrderHistory:
    """The order's events, oldest first (``?limit=1..100&next_token=``; 404 unknown order)."""
    page = PageQuery.from_query_params(api.request.query_params)
    return order_reader().history(order_id, page)


@app.route("/users/{user_id}/orders", methods=["GET"])
@api.endpoint(query=PageQuery, errors=(404,))
def user_orders(user_id: str) -> UserOrders:
    """A page of the user's orders, newest first (``?limit=1..100&next_token=``; a user with no
    orders has an empty page, an id no user can have is 404)."""
    page = PageQuery.from_query_params(api.request.query_params)
    return order_reader().of_user(user_id, page)


def take_in_outcome(envelope: EventEnvelope, data: BaseModel) -> None:
    """Take one payment or inventory outcome into its order's saga."""
    aggregate = order_saga().take_in(envelope, data)
    if aggregate.order is None:
        logger.warning(
            "outcome for an order that does not exist: order.voided appended",
            extra={"outcome": envelope.type, "event_id": envelope.id},
        )
        return
    logger.info(
        "order outcome taken in",
        extra={
            "order_id": aggregate.order_id,
            "outcome": envelope.type,
            "status": aggregate.order.status,
            "stream_version": aggregate.version,
        },
    )


@functools.cache
def outcome_consumer() -> EventConsumer:
    """The consumer of outcome events: failures reported per record, no processed marks (a
    repeated outcome finds itself in the order's stream and appends nothing)."""
    settings = load_settings(SagaSettings)
    return EventConsumer(
        "orders",
        idempotency_table=None,  # its handlers' conditional writes absorb a repeat
        failures_table=settings.event_failures_table,
        handlers={
            (model.event_type, model.contract_version): take_in_outcome for model in OUTCOME_TYPES
        },
        fifo=False,
    )


@app.on_sqs_message(queue=OUTCOMES_QUEUE, batch_size=10, maximum_batching_window_in_seconds=0)
def handle_outcomes(event: SQSEvent) -> dict[str, Any]:
    """Payment and inventory outcomes → appended to their orders (partial batch response)."""
    return outcome_consumer().process(event.to_dict(), event.context)


@app.lambda_function(name="publish_order_events")
def publish_order_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The event store's stream → the appended events published (partial batch response)."""
    return stream_publisher().process(event, context)


@app.lambda_function(name="project_orders")
def project_orders(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The event store's stream → the read model (partial batch response)."""
    return projector().process(event, context)


@app.lambda_function(name="rebuild_projection")
def rebuild_projection_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Rebuild the read model from every stream; report how the live one differs.

    The event ``{"apply": true}`` also writes the rebuilt orders over the live ones (and drops
    those no events tell of).
    """
    bind_invocation(logger, use_correlation_id(None), getattr(context, "aws_request_id", None))
    apply = isinstance(event, dict) and event.get("apply") is True
    report = rebuild_projection(load_settings(StreamSettings), apply=apply)
    logger.info(
        "projection rebuilt" if apply else "projection compared",
        extra={"orders": report.orders, "matches": report.matches},
    )
    return report.as_dict()
