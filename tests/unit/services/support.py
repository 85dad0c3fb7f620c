"""Helpers and test doubles shared by the service tests.

The doubles stand in for the toolkit's clients at the adapter boundary: they answer like
``ServiceHttpClient`` / ``RpcClient`` would, and record what was asked (with the
correlation id in force at the time), so the adapters and the domain run for real.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from chalice.test import Client
from pydantic import BaseModel

from lambdamesh_toolkit.contracts.catalog import GetProductRequest, GetProductsRequest, Product
from lambdamesh_toolkit.correlation import current_correlation_id
from lambdamesh_toolkit.errors import NotFound
from lambdamesh_toolkit.http_client import HttpResult
from tests.unit.services.service_loader import LoadedService

PRODUCTS = {
    "p-kettle": Product(id="p-kettle", name="Kettle", price_cents=5900, currency="EUR", stock=3),
    "p-beans": Product(id="p-beans", name="Beans", price_cents=2490, currency="EUR", stock=100),
    "p-dollar-mug": Product(
        id="p-dollar-mug", name="Mug", price_cents=1500, currency="USD", stock=9
    ),
}


@contextlib.contextmanager
def captured_log(service: LoadedService) -> Iterator[io.StringIO]:
    """The JSON lines the service's logger writes meanwhile.

    The logger keeps the stream it was created with (stdout at first use, which pytest
    swaps per test), so its handler is pointed at a buffer for the duration.
    """
    handler = service.app_module.logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def json_body(response: Any) -> Any:
    """The JSON body of a Chalice test-client response."""
    return json.loads(response.body)


def post_json(
    client: Client, path: str, body: Any, headers: Mapping[str, str] | None = None
) -> Any:
    """POST ``body`` as JSON through the Chalice test client."""
    return client.http.post(
        path,
        headers={"Content-Type": "application/json", **(headers or {})},
        body=json.dumps(body).encode(),
    )


@dataclass
class FakeUsersApi:
    """The users API as ``ServiceHttpClient.get`` would answer for it.

    ``failure`` (an exception) is raised instead of answering, as the real client does
    when the service is down; ``on_get`` runs inside a call (to interleave requests).
    """

    known: set[str] = field(default_factory=set)
    failure: Exception | None = None
    on_get: Callable[[], None] | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)

    def get(self, path: str) -> HttpResult:
        self.calls.append((path, current_correlation_id()))
        if self.on_get is not None:
            hook, self.on_get = self.on_get, None
            hook()
        if self.failure is not None:
            raise self.failure
        user_id = path.rsplit("/", 1)[-1]
        if user_id in self.known:
            body: dict[str, Any] = {"id": user_id}
            return HttpResult(200, {}, json.dumps(body).encode(), "users-api")
        error = {"error": {"code": "not_found", "message": "no such user", "field": None}}
        return HttpResult(404, {}, json.dumps(error).encode(), "users-api")


@dataclass
class FakeCatalogRpc:
    """The catalog's ``GetProduct`` and ``GetProducts`` as ``RpcClient.call`` would answer
    them.

    ``calls`` holds one ``(method, asked, correlation id)`` per call: ``asked`` is the product
    id (``GetProduct``) or the tuple of ids (``GetProducts``); ``on_call`` runs inside a
    ``GetProducts`` call (to see what runs beside it).
    """

    products: Mapping[str, Product] = field(default_factory=lambda: dict(PRODUCTS))
    failure: Exception | None = None
    on_call: Callable[[], None] | None = None
    calls: list[tuple[str, str | tuple[str, ...], str]] = field(default_factory=list)

    def call[T: BaseModel](self, method: str, request: BaseModel, response_type: type[T]) -> T:
        if isinstance(request, GetProductsRequest):
            assert method == "GetProducts"
            self.calls.append((method, tuple(request.product_ids), current_correlation_id()))
            if self.on_call is not None:
                self.on_call()
            if self.failure is not None:
                raise self.failure
            found = [self.products[i] for i in request.product_ids if i in self.products]
            return response_type.model_validate(
                {"products": [product.model_dump(mode="json") for product in found]}
            )
        assert isinstance(request, GetProductRequest)
        assert method == "GetProduct"
        self.calls.append((method, request.product_id, current_correlation_id()))
        if self.failure is not None:
            raise self.failure
        product = self.products.get(request.product_id)
        if product is None:
            raise NotFound("product", request.product_id)
        return response_type.model_validate({"product": product.model_dump(mode="json")})


class MemoryPayments:
    """The payments table's conditional writes in a dict; ``hide_next_get`` makes the next
    read miss, as a read racing another delivery's write would."""

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}
        self.hide_next_get = False

    def get(self, order_id: str) -> Any:
        if self.hide_next_get:
            self.hide_next_get = False
            return None
        return self.items.get(order_id)

    def add(self, payment: Any) -> bool:
        if payment.order_id in self.items:
            return False
        self.items[payment.order_id] = payment
        return True

    def refund(self, payment: Any) -> bool:
        current = self.items.get(payment.order_id)
        if current is None or current.status != "processed":
            return False
        self.items[payment.order_id] = payment
        return True
