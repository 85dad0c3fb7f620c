"""The orders service: ``POST /orders``, ``GET /orders/{order_id}``, and the order saga.

``POST /orders`` checks the user with the user service (HTTP), prices the items from the
catalog (RPC ``GetProduct``), stores the order and publishes ``order.placed``. With an
``Idempotency-Key`` header the same key and body always yield the same order: ``201`` the
first time, ``200`` with that order on every repeat (publishing ``order.placed`` again if
it never was); a different body under a used key is ``422``, a repeat while the first
request still runs is ``409``.

``handle_outcomes`` consumes ``lambdamesh-orders-outcomes`` (payment and inventory
outcomes) and confirms or cancels orders (``order.confirmed`` / ``order.cancelled``);
``GET /orders/{order_id}`` shows where the order is (``status``, ``cancel_reason``).
"""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import Response, SQSEvent
from pydantic import BaseModel

from chalicelib.domain import OrderDesk
from chalicelib.idempotency import IDEMPOTENCY_HEADER, check_key
from chalicelib.outcomes import OUTCOME_TYPES, OrderSaga
from chalicelib.settings import OrdersSettings, SagaSettings
from chalicelib.wiring import build_order_desk, build_saga
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.events import EventEnvelope
from lambdamesh_toolkit.contracts.orders import CreateOrder, Order
from lambdamesh_toolkit.events.consuming import EventConsumer
from lambdamesh_toolkit.http_api import ApiApp, HttpApi, json_response
from lambdamesh_toolkit.logging import get_logger

app = ApiApp(app_name="lambdamesh-orders")
logger = get_logger("orders")
api = HttpApi(app, logger)

OUTCOMES_QUEUE = "lambdamesh-orders-outcomes"
"""Payment and inventory outcomes, fanned out from their topics (a standard queue)."""


@functools.cache
def order_desk() -> OrderDesk:
    """The order desk, built on first use and kept by the warm container.

    Built lazily rather than at import so that ``chalice package`` (which imports this
    module to find the routes) needs no environment.
    """
    return build_order_desk(load_settings(OrdersSettings))


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
    return order_desk().get(order_id)


@functools.cache
def order_saga() -> OrderSaga:
    """The order saga, built on first use and kept by the warm container."""
    return build_saga(load_settings(SagaSettings))


def apply_outcome(envelope: EventEnvelope, data: BaseModel) -> None:
    """Take one payment or inventory outcome into its order's saga."""
    state = order_saga().apply(envelope, data)
    if state is None:
        logger.warning(
            "outcome for an order that does not exist: order.voided published",
            extra={"outcome": envelope.type, "event_id": envelope.id},
        )
        return
    logger.info(
        "order outcome taken in",
        extra={"order_id": state.order_id, "outcome": envelope.type, "status": state.status},
    )


@functools.cache
def outcome_consumer() -> EventConsumer:
    """The consumer of outcome events: idempotent by event id, failures reported per record."""
    settings = load_settings(SagaSettings)
    return EventConsumer(
        "orders",
        idempotency_table=settings.event_idempotency_table,
        failures_table=settings.event_failures_table,
        handlers={
            (model.event_type, model.contract_version): apply_outcome for model in OUTCOME_TYPES
        },
        fifo=False,
    )


@app.on_sqs_message(queue=OUTCOMES_QUEUE, batch_size=10, maximum_batching_window_in_seconds=0)
def handle_outcomes(event: SQSEvent) -> dict[str, Any]:
    """Payment and inventory outcomes → order confirmed or cancelled (partial batch response)."""
    return outcome_consumer().process(event.to_dict(), event.context)
