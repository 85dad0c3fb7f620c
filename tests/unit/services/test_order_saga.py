"""The order saga: the Order aggregate's rules without AWS, and its consumer under moto."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from chalice.test import Client

from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.events import (
    EventData,
    EventEnvelope,
    InventoryRejected,
    InventoryReserved,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    PaymentFailed,
    PaymentProcessed,
)
from lambdamesh_toolkit.contracts.orders import OrderLine, OrderStatus
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.envelope import derived_event_id, event_data, new_event
from lambdamesh_toolkit.events.store import ConcurrencyError, EventStore, StoredEvent
from tests.support.dynamodb_streams import stream_event
from tests.unit.services.conftest import TopicInbox
from tests.unit.services.service_loader import LoadedService, load_service
from tests.unit.services.support import FakeCatalogRpc, FakeUsersApi, json_body, post_json

ORDER_ID = "o-1"
PROCESSED = PaymentProcessed(
    order_id=ORDER_ID, payment_id="pay-1", amount_cents=5900, currency="EUR"
)
FAILED = PaymentFailed(order_id=ORDER_ID, reason="card declined")
RESERVED = InventoryReserved(order_id=ORDER_ID, reservation_id="res-1")
REJECTED = InventoryRejected(order_id=ORDER_ID, reason="out of stock", product_id="p-kettle")
DECISIONS = ("order.confirmed", "order.cancelled")

# --- the aggregate's rules, without AWS ----------------------------------------------------

RULES = load_service("orders").module("chalicelib.order")
"""The Order aggregate (``chalicelib.order``)."""

PLACED = OrderPlaced(
    order_id=ORDER_ID,
    user_id="u-ann",
    lines=[
        OrderLine(
            product_id="p-kettle",
            name="Kettle",
            quantity=1,
            unit_price_cents=5900,
            line_total_cents=5900,
        )
    ],
    total_cents=5900,
    currency="EUR",
)


def placed_order() -> Any:
    """The aggregate of ORDER_ID right after its ``order.placed``."""
    placed = RULES.placed_event(PLACED)
    return RULES.with_appended(RULES.OrderAggregate(order_id=ORDER_ID), [placed])


def answer(data: EventData) -> EventEnvelope:
    """An outcome under a new event id, as payments or inventory publish it."""
    source = "payments" if data.event_type.startswith("payment.") else "inventory"
    return new_event(data.event_type, data, source=source)


@dataclass
class Fold:
    """An aggregate and every event the outcomes taken into it added, in order."""

    aggregate: Any
    added: list[EventEnvelope] = field(default_factory=list)

    @property
    def decisions(self) -> list[EventEnvelope]:
        """The ``order.confirmed`` / ``order.cancelled`` events among those added."""
        return [event for event in self.added if event.type in DECISIONS]

    def take(self, *outcomes: EventEnvelope) -> list[EventEnvelope]:
        """Take each outcome in, appending what it adds; what they added."""
        added: list[EventEnvelope] = []
        for outcome in outcomes:
            events: list[EventEnvelope] = RULES.take_outcome(
                self.aggregate, outcome, event_data(outcome)
            )
            self.aggregate = RULES.with_appended(self.aggregate, events)
            added += events
        self.added += added
        return added


def run(outcomes: Sequence[EventData]) -> Fold:
    """A placed order after each outcome was taken in, each under an event id of its own."""
    fold = Fold(placed_order())
    fold.take(*(answer(data) for data in outcomes))
    return fold


@pytest.mark.parametrize("outcomes", [(PROCESSED, RESERVED), (RESERVED, PROCESSED)])
def test_payment_processed_and_inventory_reserved_confirm_in_either_order(
    outcomes: tuple[EventData, ...],
) -> None:
    # GIVEN a placed order
    # WHEN both sides succeed, in either order
    fold = run(outcomes)
    # THEN it is confirmed, once, with no reason
    order = fold.aggregate.order
    assert (order.status, order.cancel_reason) == (OrderStatus.CONFIRMED, None)
    [confirmed] = fold.decisions
    assert event_data(confirmed) == OrderConfirmed(order_id=ORDER_ID, user_id="u-ann")
    # AND both answers were recorded before the decision, the decision last
    assert [event.type for event in fold.added][-1] == "order.confirmed"
    assert (fold.aggregate.payment, fold.aggregate.stock) == ("processed", "reserved")


def test_one_success_alone_records_it_and_decides_nothing() -> None:
    # GIVEN a placed order
    # WHEN only the payment has been processed
    fold = run([PROCESSED])
    # THEN the payment is recorded and the order waits for inventory: still placed
    assert [event.type for event in fold.added] == ["order.payment_recorded"]
    aggregate = fold.aggregate
    assert (aggregate.order.status, aggregate.payment, aggregate.stock) == (
        OrderStatus.PLACED,
        "processed",
        None,
    )
    assert fold.decisions == []


@pytest.mark.parametrize(
    ("outcomes", "reason"),
    [
        ((FAILED,), "payment failed: card declined"),
        ((FAILED, RESERVED), "payment failed: card declined"),
        ((RESERVED, FAILED), "payment failed: card declined"),
        ((REJECTED,), "product p-kettle cannot be reserved: out of stock"),
        ((PROCESSED, REJECTED), "product p-kettle cannot be reserved: out of stock"),
        ((REJECTED, PROCESSED), "product p-kettle cannot be reserved: out of stock"),
        ((FAILED, REJECTED), "payment failed: card declined"),
        ((REJECTED, FAILED), "product p-kettle cannot be reserved: out of stock"),
    ],
)
def test_the_first_failure_cancels_with_its_reason(
    outcomes: tuple[EventData, ...], reason: str
) -> None:
    # GIVEN a placed order
    # WHEN payment fails or inventory rejects, before or after the other side answered
    fold = run(outcomes)
    # THEN it is cancelled once, with the first failure's reason
    order = fold.aggregate.order
    assert (order.status, order.cancel_reason) == (OrderStatus.CANCELLED, reason)
    [cancelled] = fold.decisions
    assert event_data(cancelled) == OrderCancelled(
        order_id=ORDER_ID, user_id="u-ann", reason=reason
    )


def test_an_outcome_after_the_decision_is_recorded_and_decides_nothing() -> None:
    # GIVEN an order cancelled because the payment failed
    fold = run([FAILED])
    cancelled = fold.aggregate.order
    # WHEN inventory's reservation arrives late
    added = fold.take(answer(RESERVED))
    # THEN it is recorded (inventory compensates on order.cancelled) and changes nothing else
    assert [event.type for event in added] == ["order.stock_recorded"]
    assert fold.aggregate.stock == "reserved"
    assert fold.aggregate.order == cancelled
    assert len(fold.decisions) == 1


@pytest.mark.parametrize(
    "deliveries",
    [
        ("paid", "paid", "reserved"),
        ("paid", "reserved", "reserved", "paid"),
        ("declined", "declined"),
        ("rejected", "rejected", "declined"),
    ],
)
def test_a_redelivered_outcome_adds_nothing(deliveries: tuple[str, ...]) -> None:
    # GIVEN outcomes some of which are delivered twice (the very same event)
    events = {
        "paid": answer(PROCESSED),
        "declined": answer(FAILED),
        "reserved": answer(RESERVED),
        "rejected": answer(REJECTED),
    }
    fold = Fold(placed_order())
    # WHEN they are all taken in
    added = [fold.take(events[name]) for name in deliveries]
    # THEN each repeat added nothing, and exactly one decision was made
    seen: set[str] = set()
    for name, events_added in zip(deliveries, added, strict=True):
        assert (events_added == []) is (name in seen)
        seen.add(name)
    assert len(fold.decisions) == 1
    assert fold.aggregate.decided


def test_a_redelivery_leaves_the_very_same_aggregate() -> None:
    # GIVEN an order that has taken a payment in
    fold = Fold(placed_order())
    payment = answer(PROCESSED)
    fold.take(payment)
    before = fold.aggregate
    # WHEN the same event comes again
    added = fold.take(payment)
    # THEN nothing is added and the aggregate is unchanged: nothing to append
    assert added == []
    assert fold.aggregate == before


@pytest.mark.parametrize(
    "second",
    [
        PROCESSED.model_copy(update={"payment_id": "pay-2"}),
        FAILED,
    ],
    ids=["another-processed", "a-stray-failure"],
)
def test_a_second_answer_from_one_side_under_a_new_id_does_not_overturn_the_first(
    second: EventData,
) -> None:
    # GIVEN a processed payment
    fold = run([PROCESSED])
    before = fold.aggregate
    # WHEN payments answers again for the same order, under a new event id
    added = fold.take(answer(second))
    # THEN the first answer stands: nothing is added
    assert added == []
    assert fold.aggregate == before


def test_an_outcome_of_another_order_is_refused() -> None:
    # GIVEN the aggregate of one order
    aggregate = placed_order()
    other = RESERVED.model_copy(update={"order_id": "o-2"})
    # WHEN another order's outcome is given to it
    # THEN it is refused
    with pytest.raises(RULES.WrongStreamError):
        RULES.take_outcome(aggregate, answer(other), other)


def test_an_outcome_for_an_order_never_placed_is_refused() -> None:
    # GIVEN the aggregate of an order id whose stream holds nothing
    aggregate = RULES.OrderAggregate(order_id=ORDER_ID)
    # WHEN an outcome is given to it
    # THEN it is refused (such an outcome is answered with void instead)
    with pytest.raises(RULES.WrongStreamError):
        RULES.take_outcome(aggregate, answer(RESERVED), RESERVED)


def test_a_long_reason_is_cut_to_what_the_contracts_take() -> None:
    # GIVEN a failure whose reason fills the event's 500 characters
    failed = PaymentFailed(order_id=ORDER_ID, reason="x" * 500)
    # WHEN it cancels the order
    fold = run([failed])
    # THEN the reason fits the Order contract and the order.cancelled event
    reason = fold.aggregate.order.cancel_reason
    assert len(reason) == 500
    assert reason.startswith("payment failed: xxx")
    assert reason.endswith("…")
    [cancelled] = fold.decisions
    assert cancelled.data["reason"] == reason


@pytest.mark.parametrize("outcomes", [(PROCESSED, RESERVED), (FAILED,)])
def test_events_an_outcome_adds_are_named_after_it(outcomes: tuple[EventData, ...]) -> None:
    # GIVEN a placed order, and outcomes the last of which decides it
    fold = Fold(placed_order())
    envelopes = [answer(data) for data in outcomes]
    *before, deciding = envelopes
    fold.take(*before)
    # WHEN the deciding outcome is taken in
    added = fold.take(deciding)
    # THEN each event it adds is caused by it, under an id derived from its id and the type
    assert len(added) == 2
    for event in added:
        assert event.causation_id == deciding.id
        assert event.id == derived_event_id(event.type, deciding.id)
        assert event.source == "orders"


def test_taking_the_same_outcome_in_again_from_scratch_builds_the_same_events() -> None:
    # GIVEN an order that has taken a payment in
    fold = run([PROCESSED])
    stock = answer(RESERVED)
    # WHEN the same reservation is taken into that same aggregate twice, as two runs would
    first = RULES.take_outcome(fold.aggregate, stock, RESERVED)
    second = RULES.take_outcome(fold.aggregate, stock, RESERVED)
    # THEN both build the very same events (the store lets one of them in)
    assert [event.id for event in first] == [event.id for event in second]
    assert [event.type for event in first] == ["order.stock_recorded", "order.confirmed"]


def test_voiding_an_order_that_does_not_exist_answers_each_outcome_once() -> None:
    # GIVEN the stream of an order that was never placed, and an outcome about it
    nowhere = RULES.OrderAggregate(order_id="o-nowhere")
    reserved = InventoryReserved(order_id="o-nowhere", reservation_id="res-9")
    stray = answer(reserved)
    # WHEN it is voided
    [voided] = RULES.void(nowhere, stray)
    # THEN one order.voided answers it, caused by it, under an id derived from it
    assert voided.type == "order.voided"
    assert (voided.causation_id, voided.id) == (stray.id, derived_event_id(voided.type, stray.id))
    assert voided.data["order_id"] == "o-nowhere"
    # AND once the stream holds it, the same outcome voids nothing more
    after = RULES.with_appended(nowhere, [voided])
    assert not after.exists
    assert RULES.void(after, stray) == []


def test_voiding_an_order_that_exists_is_refused() -> None:
    # GIVEN a placed order
    aggregate = placed_order()
    # WHEN it is asked to be voided
    # THEN it is refused
    with pytest.raises(RULES.WrongStreamError):
        RULES.void(aggregate, answer(RESERVED))


@pytest.mark.parametrize("versions", [(1, 3), (2,), (1, 1)], ids=["gap", "late-start", "repeat"])
def test_rebuilding_refuses_versions_that_are_not_consecutive(versions: tuple[int, ...]) -> None:
    # GIVEN a history whose versions skip, start late, or repeat
    events = [RULES.placed_event(PLACED), answer(PROCESSED)]
    history = [
        StoredEvent(version=version, envelope=envelope)
        for version, envelope in zip(versions, events, strict=False)
    ]
    # WHEN the order is rebuilt from it
    # THEN it is refused
    with pytest.raises(RULES.WrongStreamError):
        RULES.rebuild(ORDER_ID, history)


def test_rebuilding_from_the_stored_events_gives_the_folded_aggregate() -> None:
    # GIVEN a placed order that took both successes in
    placed = RULES.placed_event(PLACED)
    fold = Fold(RULES.with_appended(RULES.OrderAggregate(order_id=ORDER_ID), [placed]))
    fold.take(answer(PROCESSED), answer(RESERVED))
    # WHEN it is rebuilt from its events as the store numbers them
    history = [
        StoredEvent(version=version, envelope=envelope)
        for version, envelope in enumerate([placed, *fold.added], start=1)
    ]
    # THEN it is the aggregate the saga folded
    assert RULES.rebuild(ORDER_ID, history) == fold.aggregate


# --- the consumer, under moto ------------------------------------------------------------

OUTCOMES_QUEUE = "lambdamesh-orders-outcomes"
ORDER = {"user_id": "u-ann", "items": [{"product_id": "p-kettle", "quantity": 1}]}
_message_ids = itertools.count()


@pytest.fixture(autouse=True)
def outcomes_queue(aws: None) -> str:
    """The queue the outcomes consumer reads (its URL is looked up from the record's ARN)."""
    queue_url: str = boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName=OUTCOMES_QUEUE
    )["QueueUrl"]
    return queue_url


@pytest.fixture
def client(orders: LoadedService, monkeypatch: pytest.MonkeyPatch) -> Client:
    settings = load_settings(orders.module("chalicelib.settings").OrdersSettings)
    desk = orders.module("chalicelib.wiring").build_order_desk(
        settings, users_http=FakeUsersApi(known={"u-ann"}), catalog_rpc=FakeCatalogRpc()
    )
    monkeypatch.setattr(orders.app_module, "order_desk", lambda: desk)
    return orders.client()


@pytest.fixture
def order_id(client: Client) -> str:
    """A placed order (its stream holds its order.placed)."""
    placed: str = json_body(post_json(client, "/orders", ORDER))["id"]
    return placed


def outcome(data: EventData, source: str, correlation_id: str = "trace-saga") -> EventEnvelope:
    """An outcome event as payments or inventory publish it."""
    use_correlation_id(correlation_id)
    return new_event(data.event_type, data, source=source)


def deliver(client: Client, *envelopes: EventEnvelope) -> dict[str, Any]:
    """Hand the envelopes to ``handle_outcomes`` as one SQS batch; its answer."""
    event = client.events.generate_sqs_event(
        [envelope.model_dump_json() for envelope in envelopes], queue_name=OUTCOMES_QUEUE
    )
    queue_arn = f"arn:aws:sqs:us-east-1:123456789012:{OUTCOMES_QUEUE}"
    for record in event["Records"]:
        # generate_sqs_event gives every record the same id; the consumer reports by id.
        record["messageId"] = f"m-{next(_message_ids)}"
        record["eventSourceARN"] = queue_arn
    # Another id in force meanwhile: what the saga appends must carry the event's own.
    use_correlation_id("trace-of-the-test-driver")
    answer: dict[str, Any] = client.lambda_.invoke("handle_outcomes", event).payload
    return answer


def processed(order_id: str) -> PaymentProcessed:
    return PaymentProcessed(
        order_id=order_id, payment_id="pay-1", amount_cents=5900, currency="EUR"
    )


def event_store() -> EventStore:
    return EventStore(os.environ["ORDER_EVENTS_TABLE"])


def stream_of(order_id: str) -> list[StoredEvent]:
    """The order's stream, as the event store holds it."""
    return event_store().read(f"order-{order_id}")


def types_in(order_id: str) -> list[str]:
    """The types of the order's events, in order."""
    return [stored.envelope.type for stored in stream_of(order_id)]


def order_shown(client: Client, order_id: str) -> dict[str, Any]:
    """``GET /orders/{id}`` (rebuilt from the stream while the projection has not seen it)."""
    shown: dict[str, Any] = json_body(client.http.get(f"/orders/{order_id}"))
    return shown


def test_both_successes_confirm_the_order_in_its_stream(client: Client, order_id: str) -> None:
    # GIVEN a placed order, and payments' and inventory's successes
    payment = outcome(processed(order_id), "payments")
    stock = outcome(InventoryReserved(order_id=order_id, reservation_id="res-1"), "inventory")
    # WHEN they are delivered one after the other
    first = deliver(client, payment)
    assert order_shown(client, order_id)["status"] == "placed"
    second = deliver(client, stock)
    # THEN both were acknowledged, and the order is confirmed
    assert first == second == {"batchItemFailures": []}
    assert order_shown(client, order_id)["status"] == "confirmed"
    # AND its stream holds both answers and the decision, in order, without gaps
    stream = stream_of(order_id)
    assert [stored.envelope.type for stored in stream] == [
        "order.placed",
        "order.payment_recorded",
        "order.stock_recorded",
        "order.confirmed",
    ]
    assert [stored.version for stored in stream] == [1, 2, 3, 4]
    # AND order.confirmed is caused by the deciding outcome and carries its correlation id
    recorded, confirmed = stream[2].envelope, stream[3].envelope
    assert (confirmed.source, confirmed.data) == (
        "orders",
        {"order_id": order_id, "user_id": "u-ann"},
    )
    assert (confirmed.correlation_id, confirmed.causation_id) == ("trace-saga", stock.id)
    assert confirmed.id == derived_event_id("order.confirmed", stock.id)
    assert (recorded.causation_id, recorded.data["outcome"]) == (stock.id, "reserved")
    assert stream[1].envelope.causation_id == payment.id


def test_a_failed_payment_cancels_and_a_late_reservation_is_recorded_deciding_nothing(
    client: Client, order_id: str
) -> None:
    # GIVEN a placed order whose payment fails
    failed = outcome(PaymentFailed(order_id=order_id, reason="card declined"), "payments")
    # WHEN the failure arrives, then inventory's reservation
    deliver(client, failed)
    late = outcome(InventoryReserved(order_id=order_id, reservation_id="res-1"), "inventory")
    deliver(client, late)
    # THEN the order shows cancelled with the reason
    order = order_shown(client, order_id)
    assert (order["status"], order["cancel_reason"]) == (
        "cancelled",
        "payment failed: card declined",
    )
    # AND its stream holds one order.cancelled naming the reason, then the late reservation
    stream = [stored.envelope for stored in stream_of(order_id)]
    assert [event.type for event in stream] == [
        "order.placed",
        "order.payment_recorded",
        "order.cancelled",
        "order.stock_recorded",
    ]
    cancelled = stream[2]
    assert cancelled.data["reason"] == "payment failed: card declined"
    assert (cancelled.causation_id, cancelled.correlation_id) == (failed.id, "trace-saga")
    assert stream[3].causation_id == late.id


def test_a_rejection_after_the_payment_cancels_naming_the_product(
    client: Client, order_id: str
) -> None:
    # GIVEN a processed payment
    deliver(client, outcome(processed(order_id), "payments"))
    # WHEN inventory rejects a line
    rejected = InventoryRejected(order_id=order_id, reason="out of stock", product_id="p-kettle")
    deliver(client, outcome(rejected, "inventory"))
    # THEN the order is cancelled with the product named, and order.cancelled says so
    order = order_shown(client, order_id)
    assert order["status"] == "cancelled"
    assert "p-kettle" in order["cancel_reason"]
    *_, recorded, cancelled = [stored.envelope for stored in stream_of(order_id)]
    assert (recorded.type, recorded.data["product_id"]) == ("order.stock_recorded", "p-kettle")
    assert cancelled.type == "order.cancelled"
    assert cancelled.data["reason"] == order["cancel_reason"]


def test_a_redelivered_outcome_is_acknowledged_and_appends_nothing(
    orders: LoadedService, client: Client, order_id: str
) -> None:
    # GIVEN an order cancelled by inventory
    rejected = InventoryRejected(order_id=order_id, reason="out of stock", product_id="p-kettle")
    event = outcome(rejected, "inventory")
    deliver(client, event)
    before = stream_of(order_id)
    # WHEN the same event is delivered again, and a copy under a new event id too
    again = deliver(client, event)
    copy = deliver(client, outcome(rejected, "inventory"))
    # AND the saga takes the same event in once more (a crash before the consumer's mark)
    aggregate = orders.app_module.order_saga().take_in(event, rejected)
    # THEN all are acknowledged and the stream is as it was
    assert again == copy == {"batchItemFailures": []}
    assert stream_of(order_id) == before
    assert aggregate.version == len(before)


def test_an_outcome_for_an_unknown_order_voids_it_once_so_what_was_done_is_undone(
    orders: LoadedService, client: Client, order_id: str
) -> None:
    # GIVEN a batch with an outcome for no known order (answering an orphan order.placed),
    # and a good one
    reserved = InventoryReserved(order_id="o-nowhere", reservation_id="res-9")
    stray = outcome(reserved, "inventory")
    good = outcome(processed(order_id), "payments")
    # WHEN the batch is delivered, the stray once more, and the saga takes it in again
    answer = deliver(client, stray, good)
    again = deliver(client, stray)
    orders.app_module.order_saga().take_in(stray, reserved)
    # THEN nothing failed: the stray is answered with one order.voided in that order id's
    # stream, caused by it, however often it comes
    assert answer["batchItemFailures"] == again["batchItemFailures"] == []
    [voided] = [stored.envelope for stored in stream_of("o-nowhere")]
    assert voided.type == "order.voided"
    assert (voided.causation_id, voided.correlation_id) == (stray.id, "trace-saga")
    assert voided.id == derived_event_id("order.voided", stray.id)
    assert voided.data["order_id"] == "o-nowhere"
    # AND there is still no such order
    assert client.http.get("/orders/o-nowhere").status_code == 404
    # AND the good one was taken in
    assert types_in(order_id) == ["order.placed", "order.payment_recorded"]


def test_the_saga_only_appends_and_the_stream_publisher_publishes_its_decisions_in_order(
    orders: LoadedService, client: Client, order_id: str, orders_topic: TopicInbox
) -> None:
    # GIVEN a whole saga: an order placed, paid and reserved
    deliver(client, outcome(processed(order_id), "payments"))
    stock = InventoryReserved(order_id=order_id, reservation_id="res-1")
    deliver(client, outcome(stock, "inventory"))
    # THEN nothing was published while the saga ran
    assert orders_topic.messages() == []
    # WHEN the stream publisher runs over the event store's stream
    published = orders.app_module.publish_order_events(
        stream_event(os.environ["ORDER_EVENTS_TABLE"]), None
    )
    # THEN every appended event but the outcomes' records (kept private: only orders reads
    # them) was published once, in stream order, in the order's group, deduplicated by its id
    assert published == {"batchItemFailures": []}
    appended = [stored.envelope for stored in stream_of(order_id)]
    assert [event.type for event in appended] == [
        "order.placed",
        "order.payment_recorded",
        "order.stock_recorded",
        "order.confirmed",
    ]
    stream = [appended[0], appended[3]]
    messages = orders_topic.messages()
    assert [message["body"]["id"] for message in messages] == [event.id for event in stream]
    assert [message["attributes"]["type"] for message in messages] == [
        event.type for event in stream
    ]
    assert {message["group_id"] for message in messages} == {order_id}
    assert [message["deduplication_id"] for message in messages] == [event.id for event in stream]
    assert [EventEnvelope.model_validate(message["body"]) for message in messages] == stream
    # AND a further run over the stream finds nothing new to publish
    assert stream_event(os.environ["ORDER_EVENTS_TABLE"]) == {"Records": []}


@dataclass
class RacedStore:
    """The real event store, letting ``meanwhile`` run between the first read and append.

    Every append is recorded as ``(expected_version, appended)``.
    """

    real: EventStore
    meanwhile: Callable[[], object] | None
    appends: list[tuple[int, bool]] = field(default_factory=list)

    def read(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]:
        return self.real.read(stream_id, after_version=after_version)

    def append(
        self, stream_id: str, events: Sequence[EventEnvelope], *, expected_version: int
    ) -> int:
        if self.meanwhile is not None:
            meanwhile, self.meanwhile = self.meanwhile, None
            meanwhile()
        try:
            version = self.real.append(stream_id, events, expected_version=expected_version)
        except ConcurrencyError:
            self.appends.append((expected_version, False))
            raise
        self.appends.append((expected_version, True))
        return version


def test_two_outcomes_taken_in_at_once_decide_once(orders: LoadedService, order_id: str) -> None:
    # GIVEN an order's two successes taken in at the same time: the reservation is appended
    # by another saga between the payment's read of the stream and its append
    saga_module = orders.module("chalicelib.saga")
    payment = outcome(processed(order_id), "payments")
    reserved = InventoryReserved(order_id=order_id, reservation_id="res-1")
    stock = outcome(reserved, "inventory")
    store = RacedStore(
        event_store(),
        meanwhile=lambda: saga_module.OrderSaga(event_store()).take_in(stock, reserved),
    )
    saga = saga_module.OrderSaga(store)
    # WHEN the payment's taking in finishes
    final = saga.take_in(payment, processed(order_id))
    # THEN its first append was refused, and it reloaded, decided again and appended
    assert store.appends == [(1, False), (2, True)]
    assert (final.order.status, final.payment, final.stock) == (
        "confirmed",
        "processed",
        "reserved",
    )
    # AND the stream holds exactly one order.confirmed, caused by the payment, without gaps
    stream = stream_of(order_id)
    assert [stored.envelope.type for stored in stream] == [
        "order.placed",
        "order.stock_recorded",
        "order.payment_recorded",
        "order.confirmed",
    ]
    assert [stored.version for stored in stream] == list(range(1, len(stream) + 1))
    assert stream[-1].envelope.causation_id == payment.id
    assert final.version == len(stream)
