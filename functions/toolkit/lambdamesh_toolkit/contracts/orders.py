"""Contracts of the orders service."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, Field, StringConstraints

from lambdamesh_toolkit.contracts.base import (
    Cents,
    Contract,
    Currency,
    Identifier,
    ShortText,
    StrictInt,
)

MAX_ORDER_ITEMS = 50
MAX_CANCEL_REASON_LENGTH = 500
#: Why an order was cancelled, in words a customer can read.
CancelReason = Annotated[str, StringConstraints(min_length=1, max_length=MAX_CANCEL_REASON_LENGTH)]


class OrderStatus(StrEnum):
    """Where an order is in its saga."""

    PLACED = "placed"
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"


class OrderItemRequest(Contract):
    """One line of ``CreateOrder``."""

    contract_name: ClassVar[str] = "orders.OrderItemRequest"

    product_id: Identifier
    quantity: Annotated[StrictInt, Field(ge=1, le=1000)]


class CreateOrder(Contract):
    """Body of ``POST /orders``."""

    contract_name: ClassVar[str] = "orders.CreateOrder"

    user_id: Identifier
    items: Annotated[list[OrderItemRequest], Field(min_length=1, max_length=MAX_ORDER_ITEMS)]


class OrderLine(Contract):
    """A priced line of an accepted order."""

    contract_name: ClassVar[str] = "orders.OrderLine"

    product_id: Identifier
    name: ShortText
    quantity: Annotated[StrictInt, Field(ge=1)]
    unit_price_cents: Cents
    line_total_cents: Cents


class Order(Contract):
    """An order as the orders service answers it.

    ``status`` moves from ``placed`` to ``confirmed`` or ``cancelled`` as the order's
    saga decides; ``cancel_reason`` says why a cancelled order was cancelled.

    ``cancel_reason`` was added to version 1 as an optional field with a default rather
    than as a version 2: every order stored before it still validates, and the answer
    of a placed or confirmed order keeps its meaning (the field is ``null``).
    """

    contract_name: ClassVar[str] = "orders.Order"

    id: Identifier
    user_id: Identifier
    lines: list[OrderLine]
    total_cents: Cents
    currency: Currency
    status: OrderStatus
    created_at: AwareDatetime
    cancel_reason: CancelReason | None = None


class UserOrders(Contract):
    """Body of ``GET /users/{user_id}/orders``: a page of the user's orders, newest first;
    ``next_token`` leads to the next page. Served from a projection of the orders' events, so
    an order shows up, and its status moves, a moment after the event that changed it."""

    contract_name: ClassVar[str] = "orders.UserOrders"

    user_id: Identifier
    orders: list[Order]
    next_token: str | None = None


class OrderEvent(Contract):
    """One event of an order's history, as its stream holds it (the envelope, numbered)."""

    contract_name: ClassVar[str] = "orders.OrderEvent"

    version: Annotated[StrictInt, Field(ge=1)]
    id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    time: AwareDatetime
    correlation_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    causation_id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    data: dict[str, Any]


class OrderHistory(Contract):
    """Body of ``GET /orders/{order_id}/events``: a page of the order's events, oldest first
    (``version`` 1, 2, ...); ``next_token`` leads to the next page."""

    contract_name: ClassVar[str] = "orders.OrderHistory"

    order_id: Identifier
    events: list[OrderEvent]
    next_token: str | None = None
