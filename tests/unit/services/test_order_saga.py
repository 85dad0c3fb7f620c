"""The order saga: its decisions as pure functions, and its consumer under moto."""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Sequence
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
    PaymentFailed,
    PaymentProcessed,
)
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.publishing import Publisher
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

# --- the decisions, without AWS ------------------------------------------------------------


@pytest.fixture(scope="module")
def saga() -> Any:
    return load_service("orders").module("chalicelib.saga")


def run(saga: Any, outcomes: Sequence[EventData]) -> tuple[Any, list[EventData]]:
    """Fold the outcomes into a fresh saga: the final state and every event it decided."""
    state = saga.SagaState(order_id=ORDER_ID, user_id="u-ann")
    decided: list[EventData] = []
    for outcome in outcomes:
        state, events = saga.decide(state, outcome)
        decided.extend(events)
    return state, decided


@pytest.mark.parametrize("outcomes", [(PROCESSED, RESERVED), (RESERVED, PROCESSED)])
def test_payment_processed_and_inventory_reserved_confirm_in_either_order(
    saga: Any, outcomes: tuple[EventData, ...]
) -> None:
    # GIVEN a placed order
    # WHEN both sides succeed, in either order
    state, decided = run(saga, outcomes)
    # THEN it is confirmed, once, with no reason
    assert (state.status, state.cancel_reason) == ("confirmed", None)
    assert decided == [OrderConfirmed(order_id=ORDER_ID, user_id="u-ann")]


def test_one_success_alone_decides_nothing(saga: Any) -> None:
    # GIVEN a placed order
    # WHEN only the payment has been processed
    state, decided = run(saga, [PROCESSED])
    # THEN it waits for inventory: still placed, nothing published
    assert (state.status, state.payment, state.inventory) == ("placed", "processed", None)
    assert decided == []


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
    saga: Any, outcomes: tuple[EventData, ...], reason: str
) -> None:
    # GIVEN a placed order
    # WHEN payment fails or inventory rejects, before or after the other side answered
    state, decided = run(saga, outcomes)
    # THEN it is cancelled once, with the first failure's reason
    assert (state.status, state.cancel_reason) == ("cancelled", reason)
    assert decided == [OrderCancelled(order_id=ORDER_ID, user_id="u-ann", reason=reason)]


def test_an_outcome_after_the_decision_is_recorded_and_ignored(saga: Any) -> None:
    # GIVEN an order cancelled because the payment failed
    cancelled, _ = run(saga, [FAILED])
    # WHEN inventory's reservation arrives late
    late, decided = saga.decide(cancelled, RESERVED)
    # THEN it is recorded (inventory compensates on order.cancelled) and changes nothing else
    assert late.inventory == "reserved"
    assert (late.status, late.cancel_reason) == ("cancelled", cancelled.cancel_reason)
    assert decided == []


@pytest.mark.parametrize(
    "outcomes",
    [
        (PROCESSED, PROCESSED, RESERVED),
        (PROCESSED, RESERVED, RESERVED, PROCESSED),
        (FAILED, FAILED),
        (REJECTED, REJECTED, FAILED),
    ],
)
def test_duplicate_outcomes_are_ignored(saga: Any, outcomes: tuple[EventData, ...]) -> None:
    # GIVEN outcomes some of which are delivered twice
    # WHEN they are all applied
    state, decided = run(saga, outcomes)
    # THEN exactly one decision was made
    assert len(decided) == 1
    assert state.decided


def test_a_duplicate_returns_the_very_same_state(saga: Any) -> None:
    # GIVEN a state that has taken the payment in
    state, _ = run(saga, [PROCESSED])
    # WHEN the same outcome comes again (even under another event id: a new payment id)
    again, decided = saga.decide(state, PROCESSED.model_copy(update={"payment_id": "pay-2"}))
    # THEN the state is unchanged: nothing to store, nothing to publish
    assert again == state
    assert decided == []


def test_a_conflicting_second_answer_from_one_side_does_not_overturn_the_first(
    saga: Any,
) -> None:
    # GIVEN a processed payment
    state, _ = run(saga, [PROCESSED])
    # WHEN a payment.failed for the same order follows (payments charges once: a stray)
    after, decided = saga.decide(state, FAILED)
    # THEN the first answer stands
    assert after == state
    assert decided == []


def test_an_outcome_of_another_order_is_refused(saga: Any) -> None:
    # GIVEN the saga of one order
    state = saga.SagaState(order_id=ORDER_ID, user_id="u-ann")
    # WHEN another order's outcome is given to it
    # THEN it is refused
    with pytest.raises(saga.WrongOrderError):
        saga.decide(state, RESERVED.model_copy(update={"order_id": "o-2"}))


def test_a_long_reason_is_cut_to_what_the_contracts_take(saga: Any) -> None:
    # GIVEN a failure whose reason fills the event's 500 characters
    failed = PaymentFailed(order_id=ORDER_ID, reason="x" * 500)
    # WHEN it cancels the order
    state, [cancelled] = run(saga, [failed])
    # THEN the reason fits the Order contract and the order.cancelled event
    assert len(state.cancel_reason) == 500
    assert isinstance(cancelled, OrderCancelled)
    assert cancelled.reason == state.cancel_reason


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
def order_id(client: Client, orders_topic: TopicInbox) -> str:
    """A placed order (its order.placed already read off the topic)."""
    placed: str = json_body(post_json(client, "/orders", ORDER))["id"]
    orders_topic.messages()
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
    # Another id in force meanwhile: what the saga publishes must carry the event's own.
    use_correlation_id("trace-of-the-test-driver")
    answer: dict[str, Any] = client.lambda_.invoke("handle_outcomes", event).payload
    return answer


def processed(order_id: str) -> PaymentProcessed:
    return PaymentProcessed(
        order_id=order_id, payment_id="pay-1", amount_cents=5900, currency="EUR"
    )


def test_both_successes_confirm_the_order_and_publish_order_confirmed(
    client: Client, order_id: str, orders_topic: TopicInbox
) -> None:
    # GIVEN a placed order, and payments' and inventory's successes
    payment = outcome(processed(order_id), "payments")
    stock = outcome(InventoryReserved(order_id=order_id, reservation_id="res-1"), "inventory")
    # WHEN they are delivered one after the other
    first = deliver(client, payment)
    assert json_body(client.http.get(f"/orders/{order_id}"))["status"] == "placed"
    second = deliver(client, stock)
    # THEN both were acknowledged, and the order is confirmed
    assert first == second == {"batchItemFailures": []}
    assert json_body(client.http.get(f"/orders/{order_id}"))["status"] == "confirmed"
    # AND one order.confirmed went to the order's group, caused by the deciding outcome
    [message] = orders_topic.messages()
    confirmed = EventEnvelope.model_validate(message["body"])
    assert (confirmed.type, confirmed.source) == ("order.confirmed", "orders")
    assert confirmed.data == {"order_id": order_id, "user_id": "u-ann"}
    assert (confirmed.correlation_id, confirmed.causation_id) == ("trace-saga", stock.id)
    assert message["attributes"]["type"] == "order.confirmed"
    assert (message["group_id"], message["deduplication_id"]) == (order_id, confirmed.id)


def test_a_failed_payment_cancels_and_a_late_reservation_changes_nothing(
    client: Client, order_id: str, orders_topic: TopicInbox
) -> None:
    # GIVEN a placed order whose payment fails
    failed = outcome(PaymentFailed(order_id=order_id, reason="card declined"), "payments")
    # WHEN the failure arrives, then inventory's reservation
    deliver(client, failed)
    late = outcome(InventoryReserved(order_id=order_id, reservation_id="res-1"), "inventory")
    deliver(client, late)
    # THEN the order shows cancelled with the reason
    order = json_body(client.http.get(f"/orders/{order_id}"))
    assert (order["status"], order["cancel_reason"]) == (
        "cancelled",
        "payment failed: card declined",
    )
    # AND exactly one order.cancelled was published, naming the reason
    [message] = orders_topic.messages()
    assert message["body"]["type"] == "order.cancelled"
    assert message["body"]["data"]["reason"] == "payment failed: card declined"
    assert message["body"]["causation_id"] == failed.id


def test_a_rejection_after_the_payment_cancels_naming_the_product(
    client: Client, order_id: str, orders_topic: TopicInbox
) -> None:
    # GIVEN a processed payment
    deliver(client, outcome(processed(order_id), "payments"))
    # WHEN inventory rejects a line
    rejected = InventoryRejected(order_id=order_id, reason="out of stock", product_id="p-kettle")
    deliver(client, outcome(rejected, "inventory"))
    # THEN the order is cancelled with the product named, and order.cancelled says so
    order = json_body(client.http.get(f"/orders/{order_id}"))
    assert order["status"] == "cancelled"
    assert "p-kettle" in order["cancel_reason"]
    [message] = orders_topic.messages()
    assert message["body"]["type"] == "order.cancelled"
    assert message["body"]["data"]["reason"] == order["cancel_reason"]


def test_a_redelivered_outcome_is_acknowledged_without_a_second_decision(
    client: Client, order_id: str, orders_topic: TopicInbox
) -> None:
    # GIVEN an order cancelled by inventory
    rejected = InventoryRejected(order_id=order_id, reason="out of stock", product_id="p-kettle")
    event = outcome(rejected, "inventory")
    deliver(client, event)
    orders_topic.messages()
    # WHEN the same event is delivered again, and a copy under a new event id too
    again = deliver(client, event)
    copy = deliver(client, outcome(rejected, "inventory"))
    # THEN both are acknowledged and nothing more is published
    assert again == copy == {"batchItemFailures": []}
    assert orders_topic.messages() == []


def test_an_outcome_for_an_unknown_order_voids_it_so_its_charge_is_undone(
    client: Client, order_id: str, orders_topic: TopicInbox
) -> None:
    # GIVEN a batch with an outcome for no known order (answering an orphan order.placed),
    # and a good one
    stray = outcome(InventoryReserved(order_id="o-nowhere", reservation_id="res-9"), "inventory")
    good = outcome(processed(order_id), "payments")
    # WHEN the batch is delivered, and the stray once more
    answer = deliver(client, stray, good)
    again = deliver(client, stray)
    # THEN nothing failed: the stray is answered with order.voided in the order's group,
    # caused by it, under one event id however often it comes
    assert answer["batchItemFailures"] == again["batchItemFailures"] == []
    voided = [m for m in orders_topic.messages() if m["attributes"]["type"] == "order.voided"]
    assert {m["group_id"] for m in voided} == {"o-nowhere"}
    envelopes = [EventEnvelope.model_validate(m["body"]) for m in voided]
    assert {envelope.causation_id for envelope in envelopes} == {stray.id}
    assert len({envelope.id for envelope in envelopes}) == 1
    assert envelopes[0].data["order_id"] == "o-nowhere"
    # AND the good one was taken in
    saga_item = stored_order(order_id)
    assert saga_item["payment"] == {"S": "processed"}


def stored_order(order_id: str) -> dict[str, Any]:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    item: dict[str, Any] = dynamodb.get_item(
        TableName=os.environ["ORDERS_TABLE"], Key={"id": {"S": order_id}}
    )["Item"]
    return item


class FailingOncePublisher:
    """The real publisher, failing its first publish as if the function died right there."""

    def __init__(self, topic_arn: str) -> None:
        self._publisher = Publisher(topic_arn)
        self.failed = False

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        if not self.failed:
            self.failed = True
            raise ConnectionError("SNS endpoint unreachable")
        return self._publisher.publish(envelope, group_id=group_id)


def test_a_decision_stored_but_not_published_is_published_on_redelivery(
    orders: LoadedService,
    client: Client,
    order_id: str,
    orders_topic: TopicInbox,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a topic that fails once, just after the decision was stored
    settings = load_settings(orders.module("chalicelib.settings").SagaSettings)
    saga = orders.module("chalicelib.wiring").build_saga(
        settings, publisher=FailingOncePublisher(orders_topic.topic_arn)
    )
    monkeypatch.setattr(orders.app_module, "order_saga", lambda: saga)
    failed = outcome(PaymentFailed(order_id=order_id, reason="card declined"), "payments")
    first = deliver(client, failed)
    # THEN the record failed, the order is cancelled, its order.cancelled waits in the outbox
    assert len(first["batchItemFailures"]) == 1
    assert json_body(client.http.get(f"/orders/{order_id}"))["status"] == "cancelled"
    waiting = stored_order(order_id)["outbox"]["L"]
    assert len(waiting) == 1
    assert orders_topic.messages() == []
    # WHEN the outcome is delivered again
    second = deliver(client, failed)
    # THEN the waiting event (same id) is published and the outbox emptied
    assert second == {"batchItemFailures": []}
    [message] = orders_topic.messages()
    assert message["body"]["id"] == json.loads(waiting[0]["S"])["id"]
    assert stored_order(order_id)["outbox"] == {"L": []}


class InterleavingRepository:
    """The real saga store, letting ``meanwhile`` run between the first read and write."""

    def __init__(self, real: Any, meanwhile: Callable[[], Any]) -> None:
        self._real = real
        self._meanwhile: Callable[[], Any] | None = meanwhile
        self.saves: list[bool] = []

    def load_saga(self, order_id: str) -> Any:
        return self._real.load_saga(order_id)

    def save_saga(self, record: Any) -> bool:
        if self._meanwhile is not None:
            meanwhile, self._meanwhile = self._meanwhile, None
            meanwhile()
        saved = bool(self._real.save_saga(record))
        self.saves.append(saved)
        return saved

    def clear_outbox(self, order_id: str, version: int) -> None:
        self._real.clear_outbox(order_id, version)


def test_two_outcomes_handled_at_once_decide_once(
    orders: LoadedService, order_id: str, orders_topic: TopicInbox
) -> None:
    # GIVEN an order's two successes handled at the same time: the reservation is taken in
    # between the payment's read of the state and its write
    settings = load_settings(orders.module("chalicelib.settings").SagaSettings)
    wiring = orders.module("chalicelib.wiring")
    store = orders.module("chalicelib.saga_store")
    payment = outcome(processed(order_id), "payments")
    reserved = InventoryReserved(order_id=order_id, reservation_id="res-1")
    stock = outcome(reserved, "inventory")
    repository = InterleavingRepository(
        store.DynamoSagaRepository(boto3.client("dynamodb"), settings.orders_table),
        meanwhile=lambda: wiring.build_saga(settings).apply(stock, reserved),
    )
    saga = orders.module("chalicelib.outcomes").OrderSaga(
        repository, Publisher(settings.orders_topic_arn)
    )
    # WHEN the payment's handling finishes
    final = saga.apply(payment, processed(order_id))
    # THEN its first write lost to the reservation's, and it decided again from there
    assert repository.saves == [False, True]
    assert (final.status, final.payment, final.inventory) == ("confirmed", "processed", "reserved")
    # AND exactly one order.confirmed was published
    assert [m["body"]["type"] for m in orders_topic.messages()] == ["order.confirmed"]
