"""Contracts of the asynchronous events: the envelope and one model per event's ``data``.

Every event travels as an :class:`EventEnvelope` (the JSON body of the SNS
message, delivered raw to SQS). Its ``data`` is validated against the model
registered for ``(type, version)``; :func:`event_model` finds it.
:mod:`lambdamesh_toolkit.events.envelope` builds and reads envelopes. A change to a
``data`` model that old consumers could not read (a new field included, since
contracts refuse unknown fields) is a new model with a higher
``contract_version``, registered beside the old one.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from lambdamesh_toolkit.contracts.base import (
    Cents,
    Contract,
    Currency,
    Identifier,
    ShortText,
    StrictInt,
)
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.contracts.users import Email

#: ``<entity>.<past-tense verb>``, e.g. ``order.placed``.
EventType = Annotated[
    str,
    StringConstraints(
        min_length=3, max_length=64, pattern=r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"
    ),
]
#: A uuid4 in its canonical, lower-case form.
EventId = Annotated[
    str,
    StringConstraints(
        pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
    ),
]
#: Same alphabet as :mod:`lambdamesh_toolkit.correlation` accepts: these ids end up in log lines.
TraceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")]
#: Why something was refused or cancelled, for people and logs.
Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]


class EventError(Exception):
    """Base of the errors about events: unknown, invalid, too large."""


class UnknownEventError(EventError, LookupError):
    """No model is registered for an event's ``(type, version)``.

    Parameters
    ----------
    event_type : str
        The ``type`` asked for.
    version : int
        The ``version`` asked for.
    """

    def __init__(self, event_type: str, version: int) -> None:
        known = sorted(f"{name} v{number}" for name, number in _REGISTRY)
        super().__init__(
            f"unknown event {event_type!r} version {version}; known: {', '.join(known)}"
        )
        self.event_type = event_type
        self.version = version


class InvalidEventError(EventError, ValueError):
    """An envelope or its ``data`` breaks its contract.

    Parameters
    ----------
    message : str
        What is wrong, naming the field.
    field : str | None
        Dotted path of the field at fault (``data.lines[0].quantity``).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class EventEnvelope(Contract):
    """What every event carries around its ``data``.

    Attributes
    ----------
    id : str
        A uuid4; consumers are idempotent by it, FIFO topics deduplicate by it.
    type : str
        ``order.placed``, ``payment.failed``, ...
    version : int
        ``contract_version`` of the ``data`` model.
    source : str
        Name of the publishing service.
    time : datetime
        When the event happened (timezone-aware).
    correlation_id : str
        The id of the request that started the journey; consumers restore it.
    causation_id : str | None
        The id of the event or request that caused this one.
    data : dict
        The event's own fields, as the model registered for ``(type, version)``.
    """

    contract_name: ClassVar[str] = "events.EventEnvelope"

    id: EventId
    type: EventType
    version: Annotated[StrictInt, Field(ge=1)]
    source: Identifier
    time: AwareDatetime
    correlation_id: TraceId
    causation_id: TraceId | None = None
    data: dict[str, Any]


class EventData(Contract):
    """Base of the ``data`` models; ``event_type`` is the envelope's ``type``."""

    event_type: ClassVar[str]


class UserCreated(EventData):
    """A user registered (``user.created``)."""

    contract_name: ClassVar[str] = "events.UserCreated"
    event_type: ClassVar[str] = "user.created"

    user_id: Identifier
    email: Email
    name: ShortText


class OrderPlaced(EventData):
    """An order was accepted and awaits payment and stock (``order.placed``)."""

    contract_name: ClassVar[str] = "events.OrderPlaced"
    event_type: ClassVar[str] = "order.placed"

    order_id: Identifier
    user_id: Identifier
    lines: Annotated[list[OrderLine], Field(min_length=1)]
    total_cents: Cents
    currency: Currency


class OrderConfirmed(EventData):
    """Payment and stock are both secured (``order.confirmed``)."""

    contract_name: ClassVar[str] = "events.OrderConfirmed"
    event_type: ClassVar[str] = "order.confirmed"

    order_id: Identifier
    user_id: Identifier


class OrderCancelled(EventData):
    """Payment or stock failed; compensations follow (``order.cancelled``)."""

    contract_name: ClassVar[str] = "events.OrderCancelled"
    event_type: ClassVar[str] = "order.cancelled"

    order_id: Identifier
    user_id: Identifier
    reason: Reason


class OrderVoided(EventData):
    """An event named an order that does not exist: undo whatever was done for it
    (``order.voided``). Orders publishes it when an outcome arrives for an unknown order, so
    a charge or a reservation made for an orphan ``order.placed`` is refunded or released."""

    contract_name: ClassVar[str] = "events.OrderVoided"
    event_type: ClassVar[str] = "order.voided"

    order_id: Identifier
    reason: Reason


class OrderPaymentRecorded(EventData):
    """Orders took in what payments answered for the order (``order.payment_recorded``):
    ``processed``, or ``failed`` with payments' ``reason``. One of the order's own events,
    kept in its event stream so that the order is rebuilt from its events alone."""

    contract_name: ClassVar[str] = "events.OrderPaymentRecorded"
    event_type: ClassVar[str] = "order.payment_recorded"

    order_id: Identifier
    outcome: Literal["processed", "failed"]
    reason: Reason | None = None


class OrderStockRecorded(EventData):
    """Orders took in what inventory answered for the order (``order.stock_recorded``):
    ``reserved``, or ``rejected`` with inventory's ``reason`` and the ``product_id`` it could
    not serve. One of the order's own events, like :class:`OrderPaymentRecorded`."""

    contract_name: ClassVar[str] = "events.OrderStockRecorded"
    event_type: ClassVar[str] = "order.stock_recorded"

    order_id: Identifier
    outcome: Literal["reserved", "rejected"]
    reason: Reason | None = None
    product_id: Identifier | None = None


class PaymentProcessed(EventData):
    """The order was charged (``payment.processed``)."""

    contract_name: ClassVar[str] = "events.PaymentProcessed"
    event_type: ClassVar[str] = "payment.processed"

    order_id: Identifier
    payment_id: Identifier
    amount_cents: Cents
    currency: Currency


class PaymentFailed(EventData):
    """The charge was declined (``payment.failed``)."""

    contract_name: ClassVar[str] = "events.PaymentFailed"
    event_type: ClassVar[str] = "payment.failed"

    order_id: Identifier
    reason: Reason


class PaymentRefunded(EventData):
    """A processed payment was given back (``payment.refunded``)."""

    contract_name: ClassVar[str] = "events.PaymentRefunded"
    event_type: ClassVar[str] = "payment.refunded"

    order_id: Identifier
    payment_id: Identifier
    amount_cents: Cents


class InventoryReserved(EventData):
    """Every line of the order is reserved (``inventory.reserved``)."""

    contract_name: ClassVar[str] = "events.InventoryReserved"
    event_type: ClassVar[str] = "inventory.reserved"

    order_id: Identifier
    reservation_id: Identifier


class InventoryRejected(EventData):
    """A line could not be reserved (``inventory.rejected``)."""

    contract_name: ClassVar[str] = "events.InventoryRejected"
    event_type: ClassVar[str] = "inventory.rejected"

    order_id: Identifier
    reason: Reason
    product_id: Identifier


class InventoryReleased(EventData):
    """A reservation was given back (``inventory.released``)."""

    contract_name: ClassVar[str] = "events.InventoryReleased"
    event_type: ClassVar[str] = "inventory.released"

    order_id: Identifier
    reservation_id: Identifier


class InventoryStockChanged(EventData):
    """A product's stock level changed (``inventory.stock_changed``): ``available`` units
    are on the shelf after the write numbered ``stock_version``.

    Published from the stock table's stream, at least once and in order per product; the
    same write always gives the same event id. ``stock_version`` grows with every write
    that changes the level, so a consumer keeps the level of the highest version it has
    seen and ignores an older or repeated one."""

    contract_name: ClassVar[str] = "events.InventoryStockChanged"
    event_type: ClassVar[str] = "inventory.stock_changed"

    product_id: Identifier
    available: Annotated[StrictInt, Field(ge=0)]
    stock_version: Annotated[StrictInt, Field(ge=1)]


EVENT_MODELS: tuple[type[EventData], ...] = (
    UserCreated,
    OrderPlaced,
    OrderConfirmed,
    OrderCancelled,
    OrderVoided,
    OrderPaymentRecorded,
    OrderStockRecorded,
    PaymentProcessed,
    PaymentFailed,
    PaymentRefunded,
    InventoryReserved,
    InventoryRejected,
    InventoryReleased,
    InventoryStockChanged,
)

_REGISTRY: dict[tuple[str, int], type[EventData]] = {
    (model.event_type, model.contract_version): model for model in EVENT_MODELS
}


def event_model(event_type: str, version: int) -> type[EventData]:
    """Return the ``data`` model registered for ``(event_type, version)``.

    Raises
    ------
    UnknownEventError
        When no model is registered for it.
    """
    model = _REGISTRY.get((event_type, version))
    if model is None:
        raise UnknownEventError(event_type, version)
    return model
