"""The Order aggregate: an order's state rebuilt from its events, and the rules that add events.

Orders keeps nothing but events. Each order has one stream in the event store,
``order-<order id>``, holding, in the order they happened:

- ``order.placed``: the order as accepted (lines priced, total);
- ``order.payment_recorded`` and ``order.stock_recorded``: what payments and inventory
  answered, taken in by the saga (:func:`take_outcome`);
- ``order.confirmed`` or ``order.cancelled``: the saga's decision, appended in the same write
  as the outcome that decided it;
- ``order.voided``: the answer to an outcome about an order that does not exist (a stream
  that holds only these has no order).

:func:`rebuild` folds a stream into an :class:`OrderAggregate`; the rules below decide what
new events an outcome adds. No I/O here: the store (:mod:`lambdamesh_toolkit.events.store`)
appends under a version condition, so two outcomes taken in at once cannot both decide; the
loser reloads and decides again from the winner's events.

The saga's rules
    payment processed AND stock reserved → ``order.confirmed``; payment failed OR stock
    rejected → ``order.cancelled`` with the first failure's reason (payments refund and
    inventory releases when they see it); each side's first answer is recorded, a later
    answer from the same side is a redelivery and changes nothing; an outcome after the
    decision is recorded and decides nothing.

Event ids derived from their cause
    Every event an outcome adds has an id derived from the outcome's id and its own type
    (:func:`~lambdamesh_toolkit.events.envelope.derived_event_id`), so taking the same outcome
    in twice (a redelivery after a crash) would build the very same events: the version
    condition lets one of them in, and a reload shows the outcome already recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

from lambdamesh_toolkit.contracts.events import (
    EventData,
    EventEnvelope,
    InventoryRejected,
    InventoryReserved,
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentRecorded,
    OrderPlaced,
    OrderStockRecorded,
    OrderVoided,
    PaymentFailed,
    PaymentProcessed,
)
from lambdamesh_toolkit.contracts.orders import MAX_CANCEL_REASON_LENGTH, Order, OrderStatus
from lambdamesh_toolkit.events.envelope import derived_event_id, event_data, new_event
from lambdamesh_toolkit.events.store import StoredEvent

SOURCE = "orders"
"""The ``source`` of every event orders append (and so publish)."""
STREAM_PREFIX = "order-"

type Outcome = PaymentProcessed | PaymentFailed | InventoryReserved | InventoryRejected
"""What payments and inventory answer about an order."""

OUTCOME_TYPES: tuple[type[EventData], ...] = (
    PaymentProcessed,
    PaymentFailed,
    InventoryReserved,
    InventoryRejected,
)
"""The events the saga takes in (the outcomes queue's consumer handles these)."""


class PaymentOutcome(StrEnum):
    """What payments answered for the order."""

    PROCESSED = "processed"
    FAILED = "failed"


class StockOutcome(StrEnum):
    """What inventory answered for the order."""

    RESERVED = "reserved"
    REJECTED = "rejected"


class OrderStreams(Protocol):
    """The event store, as far as orders need it (``events.store.EventStore``)."""

    def read(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]:
        """The stream's events after ``after_version``, in order."""
        ...

    def append(
        self, stream_id: str, events: Sequence[EventEnvelope], *, expected_version: int
    ) -> int:
        """Append after ``expected_version`` or raise ``ConcurrencyError``."""
        ...


def stream_id(order_id: str) -> str:
    """The event stream of an order.

    >>> stream_id("o-1")
    'order-o-1'
    """
    return f"{STREAM_PREFIX}{order_id}"


def order_id_of(stream: str) -> str | None:
    """The order an event stream belongs to; ``None`` for a stream of something else.

    >>> order_id_of("order-o-1"), order_id_of("basket-b-1")
    ('o-1', None)
    """
    return stream.removeprefix(STREAM_PREFIX) if stream.startswith(STREAM_PREFIX) else None


@dataclass(frozen=True)
class OrderAggregate:
    """One order, as its events tell it.

    Attributes
    ----------
    order_id
        The order (the stream's).
    order
        The order as it stands; ``None`` while the stream holds no ``order.placed`` (no
        order, or only voided outcomes about one that never existed).
    payment, stock
        Each side's first answer, ``None`` while it has not answered.
    version
        The stream's version these events bring it to (0: no events).
    event_ids
        The ids of every event in the stream.
    """

    order_id: str
    order: Order | None = None
    payment: PaymentOutcome | None = None
    stock: StockOutcome | None = None
    version: int = 0
    event_ids: frozenset[str] = field(default_factory=frozenset)

    @property
    def exists(self) -> bool:
        """Whether the order was placed."""
        return self.order is not None

    @property
    def decided(self) -> bool:
        """Whether the order is confirmed or cancelled (a decision is never undone)."""
        return self.order is not None and self.order.status is not OrderStatus.PLACED


class WrongStreamError(ValueError):
    """An event of another order was applied to this one, or versions were skipped."""


def rebuild(order_id: str, history: Iterable[StoredEvent]) -> OrderAggregate:
    """The order as its stream's events tell it, from the first (version 1) on.

    Raises
    ------
    WrongStreamError
        When the versions are not 1, 2, 3, ... or an event names another order.
    """
    aggregate = OrderAggregate(order_id=order_id)
    for stored in history:
        aggregate = apply(aggregate, stored)
    return aggregate


def apply(aggregate: OrderAggregate, stored: StoredEvent) -> OrderAggregate:
    """The aggregate after one more event of its stream.

    Events of types the order does not keep are counted (version) and otherwise ignored.

    Raises
    ------
    WrongStreamError
        When ``stored`` is not the next version, or names another order.
    """
    if stored.version != aggregate.version + 1:
        raise WrongStreamError(
            f"order {aggregate.order_id}: version {stored.version} after {aggregate.version}"
        )
    envelope = stored.envelope
    data = event_data(envelope)
    named = getattr(data, "order_id", aggregate.order_id)
    if named != aggregate.order_id:
        raise WrongStreamError(f"an event of order {named} in the stream of {aggregate.order_id}")
    moved = replace(
        aggregate, version=stored.version, event_ids=aggregate.event_ids | {envelope.id}
    )
    order = aggregate.order
    match data:
        case OrderPlaced():
            return replace(moved, order=placed_order(data, envelope))
        case OrderPaymentRecorded(outcome=outcome):
            return replace(moved, payment=PaymentOutcome(outcome))
        case OrderStockRecorded(outcome=outcome):
            return replace(moved, stock=StockOutcome(outcome))
        case OrderConfirmed() | OrderCancelled() if order is not None:
            return replace(moved, order=order.model_copy(update=decision_fields(data)))
    return moved


def decision_fields(data: OrderConfirmed | OrderCancelled) -> dict[str, Any]:
    """What a decision changes on the order: its ``status`` and ``cancel_reason`` (the fold and
    the read model's projector both apply exactly this).

    >>> decision_fields(OrderConfirmed(order_id="o-1", user_id="u-1"))
    {'status': <OrderStatus.CONFIRMED: 'confirmed'>, 'cancel_reason': None}
    """
    if isinstance(data, OrderCancelled):
        return {"status": OrderStatus.CANCELLED, "cancel_reason": data.reason}
    return {"status": OrderStatus.CONFIRMED, "cancel_reason": None}


def with_appended(aggregate: OrderAggregate, events: Iterable[EventEnvelope]) -> OrderAggregate:
    """The aggregate after ``events`` were appended right after its version."""
    for envelope in events:
        aggregate = apply(aggregate, StoredEvent(version=aggregate.version + 1, envelope=envelope))
    return aggregate


def placed_order(data: OrderPlaced, envelope: EventEnvelope) -> Order:
    """The order an ``order.placed`` event tells of, as placed."""
    return Order(
        id=data.order_id,
        user_id=data.user_id,
        lines=data.lines,
        total_cents=data.total_cents,
        currency=data.currency,
        status=OrderStatus.PLACED,
        created_at=envelope.time,
    )


def placed_event(placed: OrderPlaced) -> EventEnvelope:
    """The ``order.placed`` event of a new order (correlation id: the current request's)."""
    return new_event(OrderPlaced.event_type, placed, source=SOURCE)


def take_outcome(
    aggregate: OrderAggregate, cause: EventEnvelope, outcome: Outcome
) -> list[EventEnvelope]:
    """The events one outcome adds to an existing order: its record, and the decision it
    brings, if any. None when the outcome changes nothing (a redelivery, or a second answer
    from a side that has answered).

    Raises
    ------
    WrongStreamError
        When the outcome is about another order, or the order does not exist (see
        :func:`void`).
    """
    order = aggregate.order
    if order is None or outcome.order_id != aggregate.order_id:
        raise WrongStreamError(
            f"outcome for order {outcome.order_id} given to the stream of {aggregate.order_id}"
        )
    record = _record(outcome)
    if _answered(aggregate, record):
        return []
    added = [_caused(record, cause)]
    decision = None if aggregate.decided else _decision(aggregate, order, record, outcome)
    if decision is not None:
        added.append(_caused(decision, cause))
    return added


def void(aggregate: OrderAggregate, cause: EventEnvelope) -> list[EventEnvelope]:
    """The ``order.voided`` that answers an outcome about an order that does not exist (an
    orphan ``order.placed``), so payments and inventory undo what they did for it; none when
    this outcome was answered so already.

    Raises
    ------
    WrongStreamError
        When the order exists.
    """
    if aggregate.exists:
        raise WrongStreamError(f"order {aggregate.order_id} exists: there is nothing to void")
    voided = OrderVoided(
        order_id=aggregate.order_id,
        reason=f"no order {aggregate.order_id}; {cause.type} {cause.id} undone",
    )
    event = _caused(voided, cause)
    return [] if event.id in aggregate.event_ids else [event]


def _record(outcome: Outcome) -> OrderPaymentRecorded | OrderStockRecorded:
    match outcome:
        case PaymentProcessed():
            return OrderPaymentRecorded(order_id=outcome.order_id, outcome="processed")
        case PaymentFailed(reason=reason):
            return OrderPaymentRecorded(order_id=outcome.order_id, outcome="failed", reason=reason)
        case InventoryReserved():
            return OrderStockRecorded(order_id=outcome.order_id, outcome="reserved")
        case InventoryRejected(reason=reason, product_id=product_id):
            return OrderStockRecorded(
                order_id=outcome.order_id, outcome="rejected", reason=reason, product_id=product_id
            )


def _answered(aggregate: OrderAggregate, record: OrderPaymentRecorded | OrderStockRecorded) -> bool:
    """Whether the record's side has answered already (its first answer stands)."""
    if isinstance(record, OrderPaymentRecorded):
        return aggregate.payment is not None
    return aggregate.stock is not None


def _decision(
    aggregate: OrderAggregate,
    order: Order,
    record: OrderPaymentRecorded | OrderStockRecorded,
    outcome: Outcome,
) -> OrderConfirmed | OrderCancelled | None:
    """What a placed order decides once ``record`` is taken in; ``None``: wait for the other."""
    reason = failure_reason(outcome)
    if reason is not None:
        return OrderCancelled(order_id=order.id, user_id=order.user_id, reason=reason)
    payment = aggregate.payment
    stock = aggregate.stock
    if isinstance(record, OrderPaymentRecorded):
        payment = PaymentOutcome(record.outcome)
    else:
        stock = StockOutcome(record.outcome)
    if payment is PaymentOutcome.PROCESSED and stock is StockOutcome.RESERVED:
        return OrderConfirmed(order_id=order.id, user_id=order.user_id)
    return None


def _caused(data: EventData, cause: EventEnvelope) -> EventEnvelope:
    return new_event(
        data.event_type,
        data,
        source=SOURCE,
        causation_id=cause.id,
        event_id=derived_event_id(data.event_type, cause.id),
    )


def failure_reason(outcome: Outcome) -> str | None:
    """Why ``outcome`` cancels its order, in words for the customer; ``None`` if it does not."""
    match outcome:
        case PaymentFailed(reason=reason):
            text = f"payment failed: {reason}"
        case InventoryRejected(reason=reason, product_id=product_id):
            text = f"product {product_id} cannot be reserved: {reason}"
        case _:
            return None
    return _clip(text)


def _clip(text: str) -> str:
    """``text`` cut to the length the ``Order`` contract allows for a reason."""
    if len(text) <= MAX_CANCEL_REASON_LENGTH:
        return text
    return text[: MAX_CANCEL_REASON_LENGTH - 1] + "…"
