"""The orders service: ``POST /orders`` and ``GET /orders/{order_id}``.

``POST /orders`` checks the user with the user service (HTTP), prices the items from the
catalog (RPC ``GetProduct``) and stores the order. With an ``Idempotency-Key`` header the
same key and body always yield the same order: ``201`` the first time, ``200`` with the
same body on every repeat; a different body under a used key is ``422``, a repeat while
the first request still runs is ``409``.
"""

from __future__ import annotations

import functools

from chalice.app import Chalice, Response

from chalicelib.domain import OrderDesk
from chalicelib.idempotency import IDEMPOTENCY_HEADER, check_key
from chalicelib.settings import OrdersSettings
from chalicelib.wiring import build_order_desk
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.orders import CreateOrder, Order
from lambdamesh_toolkit.http_api import HttpApi, json_response
from lambdamesh_toolkit.logging import get_logger

app = Chalice(app_name="lambdamesh-orders")
logger = get_logger("orders")
api = HttpApi(app, logger)


@functools.cache
def order_desk() -> OrderDesk:
    """The order desk, built on first use and kept by the warm container.

    Built lazily rather than at import so that ``chalice package`` (which imports this
    module to find the routes) needs no environment.
    """
    return build_order_desk(load_settings(OrdersSettings))


@app.route("/orders", methods=["POST"])
@api.endpoint()
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
@api.endpoint()
def get_order(order_id: str) -> Order:
    """The order with this id (404 when there is none)."""
    return order_desk().get(order_id)
