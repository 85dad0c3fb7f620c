"""Properties of the saga and its compensations over every order of events, duplicates included.

At-least-once delivery means any event may come twice, and the two services answer in any
order. Whatever the order and however many copies: an order is decided once, confirmed exactly
when it was paid and reserved, and no money is kept for an order that was cancelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lambdamesh_toolkit.contracts.events import (
    EventData,
    EventEnvelope,
    InventoryRejected,
    InventoryReserved,
    OrderCancelled,
    OrderPlaced,
    PaymentFailed,
    PaymentProcessed,
)
from lambdamesh_toolkit.contracts.orders import OrderLine, OrderStatus
from lambdamesh_toolkit.events.envelope import new_event
from tests.unit.services.service_loader import load_service
from tests.unit.services.support import MemoryPayments

ORDER_RULES = load_service("orders").module("chalicelib.order")
"""The Order aggregate (``chalicelib.order``)."""
PAYMENTS = load_service("payments")
PAYMENT_DOMAIN = PAYMENTS.module("chalicelib.domain")
PAYMENT_PROVIDER = PAYMENTS.module("chalicelib.provider")

PAID = PaymentProcessed(order_id="o-1", payment_id="pay-1", amount_cents=500, currency="EUR")
DECLINED = PaymentFailed(order_id="o-1", reason="card declined")
RESERVED = InventoryReserved(order_id="o-1", reservation_id="r-1")
REJECTED = InventoryRejected(order_id="o-1", reason="out of stock", product_id="p-1")
DECISIONS = ("order.confirmed", "order.cancelled")

type Delivery = tuple[EventData, int]
"""An outcome, and which of its envelopes carries it: 0 the first, n the n-th new event id."""


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[EventData, EventData, list[Delivery]]:
    """One answer from each side, each delivered one to three times, in any order; each
    repeat is the same event again or a copy under a new event id."""
    payment = draw(st.sampled_from([PAID, DECLINED]))
    inventory = draw(st.sampled_from([RESERVED, REJECTED]))
    copies: list[Delivery] = []
    for answer in (payment, inventory):
        copies.append((answer, 0))
        new_ids = 0
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.booleans()):
                new_ids += 1
                copies.append((answer, new_ids))
            else:
                copies.append((answer, 0))
    return payment, inventory, draw(st.permutations(copies))


def placed_order() -> Any:
    """The aggregate of order o-1 right after its ``order.placed``."""
    placed = ORDER_RULES.placed_event(placed_data())
    return ORDER_RULES.with_appended(ORDER_RULES.OrderAggregate(order_id="o-1"), [placed])


@given(deliveries())
@settings(max_examples=200, deadline=None)
def test_an_order_is_decided_once_confirmed_exactly_when_paid_and_reserved(
    case: tuple[EventData, EventData, list[Delivery]],
) -> None:
    # GIVEN a placed order and its outcomes, repeated (as the same event or under a new id)
    # and in any order
    payment, inventory, delivered = case
    envelopes: dict[Delivery, EventEnvelope] = {}
    aggregate = placed_order()
    added: list[EventEnvelope] = []
    # WHEN every delivery is taken in, each appending what it adds
    for delivery in delivered:
        data = delivery[0]
        if delivery not in envelopes:
            source = "payments" if data.event_type.startswith("payment.") else "inventory"
            envelopes[delivery] = new_event(data.event_type, data, source=source)
        envelope = envelopes[delivery]
        events: list[EventEnvelope] = ORDER_RULES.take_outcome(aggregate, envelope, data)
        aggregate = ORDER_RULES.with_appended(aggregate, events)
        added += events
    # THEN exactly one decision was made, and it is the right one
    types = [event.type for event in added]
    decisions = [kind for kind in types if kind in DECISIONS]
    assert len(decisions) == 1
    should_confirm = payment is PAID and inventory is RESERVED
    assert aggregate.order.status is (
        OrderStatus.CONFIRMED if should_confirm else OrderStatus.CANCELLED
    )
    assert decisions == ["order.confirmed" if should_confirm else "order.cancelled"]
    # AND never both confirmed and cancelled
    assert not {"order.confirmed", "order.cancelled"} <= set(types)
    # AND each side's first answer is recorded once, whatever came first
    assert types.count("order.payment_recorded") == types.count("order.stock_recorded") == 1
    assert aggregate.payment is not None
    assert aggregate.stock is not None


@dataclass
class CountingProvider:
    """The simulated provider, counting the charges and refunds it actually made."""

    approve: bool
    charged: set[str] = field(default_factory=set)
    refunded: set[str] = field(default_factory=set)

    def charge(self, idempotency_key: str, amount_cents: int, currency: str) -> Any:
        provider = PAYMENT_PROVIDER.SimulatedProvider(
            decline_above_cents=10**9 if self.approve else 0, failure_rate=0.0
        )
        result = provider.charge(idempotency_key, amount_cents, currency)
        if result.approved:
            self.charged.add(idempotency_key)
        return result

    def refund(self, payment_id: str, amount_cents: int) -> str:
        self.refunded.add(payment_id)
        return f"refund-{payment_id}"


@dataclass
class Topic:
    published: list[EventEnvelope] = field(default_factory=list)

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        self.published.append(envelope)
        return f"m-{len(self.published)}"


def placed_data() -> OrderPlaced:
    line = OrderLine(
        product_id="p-1", name="Beans", quantity=1, unit_price_cents=500, line_total_cents=500
    )
    return OrderPlaced(order_id="o-1", user_id="u-1", lines=[line], total_cents=500, currency="EUR")


def placed() -> EventEnvelope:
    return new_event("order.placed", placed_data(), source="orders")


def cancelled() -> EventEnvelope:
    data = OrderCancelled(order_id="o-1", user_id="u-1", reason="out of stock")
    return new_event("order.cancelled", data, source="orders")


@given(
    approve=st.booleans(),
    cancel=st.booleans(),
    copies=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    order=st.randoms(use_true_random=False),
)
@settings(max_examples=200, deadline=None)
def test_payments_charge_once_and_keep_no_money_for_a_cancelled_order(
    approve: bool, cancel: bool, copies: tuple[int, int], order: Any
) -> None:
    # GIVEN an order placed (and maybe cancelled), each event delivered one to three times,
    # in any order: a cancellation may overtake the placement
    placement, cancellation = placed(), cancelled()
    delivered = [placement] * copies[0] + ([cancellation] * copies[1] if cancel else [])
    order.shuffle(delivered)
    provider, repository, topic = CountingProvider(approve), MemoryPayments(), Topic()
    desk = PAYMENT_DOMAIN.PaymentDesk(provider, repository, topic)
    # WHEN every delivery is handled
    for event in delivered:
        if event.type == "order.placed":
            desk.on_order_placed(event, OrderPlaced.model_validate(event.data))
        else:
            desk.on_order_cancelled(event, OrderCancelled.model_validate(event.data))
    # THEN the order was charged at most once, and a cancelled order keeps no money
    payment = repository.get("o-1")
    assert len(provider.charged) <= 1
    if cancel:
        assert provider.charged == set() or len(provider.refunded) == 1
        assert payment.status in {
            PAYMENT_DOMAIN.PaymentStatus.VOIDED,
            PAYMENT_DOMAIN.PaymentStatus.FAILED,
            PAYMENT_DOMAIN.PaymentStatus.REFUNDED,
        }
    else:
        assert provider.refunded == set()
    # AND each announcement went out under one event id, however often it was sent again
    ids_by_type: dict[str, set[str]] = {}
    for envelope in topic.published:
        ids_by_type.setdefault(envelope.type, set()).add(envelope.id)
    assert all(len(ids) == 1 for ids in ids_by_type.values())


INVENTORY_DOMAIN = load_service("inventory").module("chalicelib.domain")


@dataclass
class MemoryInventory:
    """Stock levels and reservation records with the store's all-or-nothing rules."""

    stock: dict[str, int]
    records: dict[str, Any] = field(default_factory=dict)

    def get(self, order_id: str) -> Any:
        return self.records.get(order_id)

    def reserve(self, reservation: Any) -> Any:
        if reservation.order_id in self.records:
            return INVENTORY_DOMAIN.ReserveResult.ALREADY_RECORDED
        for line in reservation.lines:
            available = self.stock.get(line.product_id)
            if available is None or available < line.quantity:
                return INVENTORY_DOMAIN.Shortage(line.product_id, line.quantity, available)
        for line in reservation.lines:
            self.stock[line.product_id] -= line.quantity
        self.records[reservation.order_id] = reservation
        return INVENTORY_DOMAIN.ReserveResult.RESERVED

    def add(self, reservation: Any) -> bool:
        if reservation.order_id in self.records:
            return False
        self.records[reservation.order_id] = reservation
        return True

    def release(self, reservation: Any) -> bool:
        current = self.records.get(reservation.order_id)
        if current is None or current.status is not INVENTORY_DOMAIN.ReservationStatus.RESERVED:
            return False
        for line in current.lines:
            self.stock[line.product_id] += line.quantity
        self.records[reservation.order_id] = reservation
        return True

    def add_product_if_absent(self, product_id: str, stock: int) -> bool:
        return self.stock.setdefault(product_id, stock) == stock


@given(
    stocked=st.integers(0, 5),
    wanted=st.integers(1, 5),
    cancel=st.booleans(),
    copies=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    order=st.randoms(use_true_random=False),
)
@settings(max_examples=200, deadline=None)
def test_inventory_takes_stock_once_and_gives_it_all_back_for_a_cancelled_order(
    stocked: int, wanted: int, cancel: bool, copies: tuple[int, int], order: Any
) -> None:
    # GIVEN stock of one product, an order for some of it placed (and maybe cancelled), each
    # event delivered one to three times, in any order
    line = OrderLine(
        product_id="p-1", name="Beans", quantity=wanted, unit_price_cents=1, line_total_cents=wanted
    )
    placement = new_event(
        "order.placed",
        OrderPlaced(
            order_id="o-1", user_id="u-1", lines=[line], total_cents=wanted, currency="EUR"
        ),
        source="orders",
    )
    delivered = [placement] * copies[0] + ([cancelled()] * copies[1] if cancel else [])
    order.shuffle(delivered)
    repository = MemoryInventory(stock={"p-1": stocked})
    storekeeper = INVENTORY_DOMAIN.Storekeeper(repository, Topic())
    # WHEN every delivery is handled
    for event in delivered:
        if event.type == "order.placed":
            storekeeper.on_order_placed(event, OrderPlaced.model_validate(event.data))
        else:
            storekeeper.release(event, "o-1")
    # THEN stock never went below zero, was taken at most once, and all of it is back if the
    # order was cancelled
    left = repository.stock["p-1"]
    assert left >= 0
    taken = stocked - left
    assert taken in {0, wanted}
    if cancel:
        assert taken == 0
    else:
        assert taken == (wanted if wanted <= stocked else 0)
