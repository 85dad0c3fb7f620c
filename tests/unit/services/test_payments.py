"""The payments service under moto: charging placed orders, refunding cancelled ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from chalice.test import Client

from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
    OrderVoided,
    PaymentProcessed,
)
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.envelope import new_event
from tests.unit.services.conftest import ServiceFactory, TopicFactory, TopicInbox, sqs_event_of
from tests.unit.services.service_loader import LoadedService, load_service
from tests.unit.services.support import MemoryPayments

QUEUE = "lambdamesh-payments-orders.fifo"
LIMIT_CENTS = 100_000


def order_placed(order_id: str = "o-1", total_cents: int = 4980) -> EventEnvelope:
    use_correlation_id("trace-pay-1")
    line = OrderLine(
        product_id="p-beans",
        name="Beans",
        quantity=2,
        unit_price_cents=total_cents // 2,
        line_total_cents=total_cents,
    )
    data = OrderPlaced(
        order_id=order_id, user_id="u-ann", lines=[line], total_cents=total_cents, currency="EUR"
    )
    return new_event("order.placed", data, source="orders")


def order_cancelled(order_id: str = "o-1") -> EventEnvelope:
    use_correlation_id("trace-pay-1")
    data = OrderCancelled(order_id=order_id, user_id="u-ann", reason="inventory rejected")
    return new_event("order.cancelled", data, source="orders")


@pytest.fixture
def payments_topic(topic_inbox: TopicFactory) -> TopicInbox:
    return topic_inbox("lambdamesh-payments")


@pytest.fixture
def payments(
    deployed_service: ServiceFactory, payments_topic: TopicInbox, event_tables: dict[str, str]
) -> LoadedService:
    return deployed_service(
        "payments",
        PaymentsTopicArn=payments_topic.topic_arn,
        PaymentDeclineAboveCents=str(LIMIT_CENTS),
        PaymentFailureRate="0",
        **event_tables,
    )


@pytest.fixture
def client(payments: LoadedService) -> Client:
    return payments.client()


Deliver = Callable[..., dict[str, Any]]


@pytest.fixture
def deliver(client: Client) -> Deliver:
    """Hand envelopes to the consumer function as one SQS batch; its answer."""

    def run(*envelopes: EventEnvelope) -> dict[str, Any]:
        answer = client.lambda_.invoke("handle_order_events", sqs_event_of(QUEUE, *envelopes))
        payload: dict[str, Any] = answer.payload
        return payload

    return run


def payment_item(order_id: str) -> dict[str, Any] | None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    item = dynamodb.get_item(
        TableName="test-payments-PaymentsTable", Key={"order_id": {"S": order_id}}
    )
    return item.get("Item")


def test_order_placed_is_charged_and_payment_processed_published(
    deliver: Deliver, payments_topic: TopicInbox
) -> None:
    # GIVEN an order.placed event within the limit
    placed = order_placed(total_cents=4980)
    # WHEN the consumer handles it
    answer = deliver(placed)
    # THEN the batch succeeds and payment.processed is published, caused by the order
    assert answer == {"batchItemFailures": []}
    [message] = payments_topic.messages()
    assert message["attributes"]["type"] == "payment.processed"
    event = EventEnvelope.model_validate(message["body"])
    assert event.causation_id == placed.id
    assert event.correlation_id == placed.correlation_id == "trace-pay-1"
    assert event.source == "payments"
    processed = PaymentProcessed.model_validate(event.data)
    assert (processed.order_id, processed.amount_cents, processed.currency) == ("o-1", 4980, "EUR")
    # AND the payment is recorded as processed
    item = payment_item("o-1")
    assert item is not None
    assert item["status"]["S"] == "processed"
    assert item["payment_id"]["S"] == processed.payment_id


def test_order_over_the_limit_is_declined_with_payment_failed(
    deliver: Deliver, payments_topic: TopicInbox
) -> None:
    # GIVEN an order above PAYMENT_DECLINE_ABOVE_CENTS
    # WHEN the consumer handles it
    answer = deliver(order_placed(total_cents=LIMIT_CENTS + 1))
    # THEN payment.failed is published with a reason naming the limit, and nothing is charged
    assert answer == {"batchItemFailures": []}
    [message] = payments_topic.messages()
    assert message["body"]["type"] == "payment.failed"
    assert str(LIMIT_CENTS) in message["body"]["data"]["reason"]
    item = payment_item("o-1")
    assert item is not None
    assert item["status"]["S"] == "failed"
    assert "payment_id" not in item


def test_a_redelivered_order_placed_is_charged_once_and_its_outcome_republished_as_it_was(
    deliver: Deliver, payments_topic: TopicInbox
) -> None:
    # GIVEN a charged order (payments keeps no processed marks: its conditional write decides)
    placed = order_placed()
    deliver(placed)
    first = payments_topic.messages()
    recorded = payment_item("o-1")
    # WHEN the event is delivered again, as after a run that died before publishing
    answer = deliver(placed)
    # THEN it is acknowledged, the same announcement (same event id) goes out again for the
    # saga to drop as a duplicate, and the record is unchanged: one charge
    assert answer == {"batchItemFailures": []}
    again = payments_topic.messages()
    assert [m["body"]["id"] for m in again] == [m["body"]["id"] for m in first]
    assert payment_item("o-1") == recorded


def test_another_order_placed_for_a_charged_order_charges_nothing(
    deliver: Deliver, payments_topic: TopicInbox
) -> None:
    # GIVEN a charged order
    deliver(order_placed())
    payments_topic.messages()
    # WHEN a different order.placed event names the same order
    deliver(order_placed())
    # THEN nothing is charged or published: one charge per order, ever
    assert payments_topic.messages() == []


def test_order_cancelled_refunds_a_processed_payment_once(
    deliver: Deliver, payments_topic: TopicInbox
) -> None:
    # GIVEN a charged order
    deliver(order_placed(total_cents=4980))
    [processed] = payments_topic.messages()
    # WHEN it is cancelled, by two different events
    deliver(order_cancelled())
    deliver(order_cancelled())
    # THEN exactly one payment.refunded is published, for the whole amount
    [refund] = payments_topic.messages()
    assert refund["attributes"]["type"] == "payment.refunded"
    assert refund["body"]["data"] == {
        "order_id": "o-1",
        "payment_id": processed["body"]["data"]["payment_id"],
        "amount_cents": 4980,
    }
    item = payment_item("o-1")
    assert item is not None
    assert item["status"]["S"] == "refunded"


def test_order_voided_refunds_what_an_orphan_order_placed_charged(
    deliver: Deliver, payments_topic: TopicInbox
) -> None:
    # GIVEN an order.placed that orders never committed, charged all the same
    deliver(order_placed(order_id="o-orphan", total_cents=700))
    [processed] = payments_topic.messages()
    # WHEN orders answers its outcome with order.voided
    use_correlation_id("trace-pay-1")
    voided = OrderVoided(order_id="o-orphan", reason="no order o-orphan")
    deliver(new_event("order.voided", voided, source="orders"))
    # THEN the charge is refunded in full
    [refund] = payments_topic.messages()
    assert refund["attributes"]["type"] == "payment.refunded"
    assert refund["body"]["data"]["payment_id"] == processed["body"]["data"]["payment_id"]
    assert refund["body"]["data"]["amount_cents"] == 700


def test_a_declined_payment_is_not_refunded(deliver: Deliver, payments_topic: TopicInbox) -> None:
    # GIVEN a declined order
    deliver(order_placed(total_cents=LIMIT_CENTS + 1))
    payments_topic.messages()
    # WHEN it is cancelled
    answer = deliver(order_cancelled())
    # THEN nothing is refunded or published
    assert answer == {"batchItemFailures": []}
    assert payments_topic.messages() == []


def test_an_order_cancelled_before_it_was_charged_is_never_charged(
    deliver: Deliver, payments_topic: TopicInbox
) -> None:
    # GIVEN an order.cancelled handled before its order.placed (which sat in the DLQ)
    deliver(order_cancelled())
    # WHEN the order.placed comes at last
    deliver(order_placed())
    # THEN the order is not charged and nothing is published
    assert payments_topic.messages() == []
    item = payment_item("o-1")
    assert item is not None
    assert item["status"]["S"] == "voided"


def test_one_batch_charges_each_order_of_it(deliver: Deliver, payments_topic: TopicInbox) -> None:
    # GIVEN a batch with three orders, one of them over the limit
    batch = [order_placed("o-a"), order_placed("o-b", LIMIT_CENTS * 2), order_placed("o-c")]
    # WHEN the consumer handles it
    answer = deliver(*batch)
    # THEN every record succeeds and each order has its outcome
    assert answer == {"batchItemFailures": []}
    outcomes = {m["body"]["data"]["order_id"]: m["body"]["type"] for m in payments_topic.messages()}
    assert outcomes == {
        "o-a": "payment.processed",
        "o-b": "payment.failed",
        "o-c": "payment.processed",
    }


def test_an_event_payments_does_not_handle_is_a_batch_item_failure(
    deliver: Deliver, payments_topic: TopicInbox
) -> None:
    # GIVEN an order.confirmed event (a valid event payments has no handler for)
    use_correlation_id("trace-pay-2")
    confirmed = new_event(
        "order.confirmed",
        OrderConfirmed(order_id="o-1", user_id="u-ann"),
        source="orders",
    )
    # WHEN it is delivered
    answer = deliver(confirmed)
    # THEN its record fails (to be retried, then dead-lettered) and nothing is published
    assert answer == {"batchItemFailures": [{"itemIdentifier": f"msg-0-{confirmed.id}"}]}
    assert payments_topic.messages() == []


# --- the provider and the desk, without AWS -------------------------------------------


@pytest.fixture
def provider_module() -> Any:
    return load_service("payments").module("chalicelib.provider")


@pytest.fixture
def domain() -> Any:
    return load_service("payments").module("chalicelib.domain")


def test_provider_declines_above_the_limit_and_approves_up_to_it(provider_module: Any) -> None:
    # GIVEN a provider with a limit of 1000 cents and no random failures
    provider = provider_module.SimulatedProvider(decline_above_cents=1000, failure_rate=0.0)
    # WHEN amounts at and above the limit are charged
    at_limit = provider.charge("o-1", 1000, "EUR")
    above = provider.charge("o-2", 1001, "EUR")
    # THEN the first is approved with a payment id, the second declined naming the limit
    assert at_limit.approved
    assert at_limit.payment_id
    assert not above.approved
    assert above.payment_id is None
    assert "1000" in above.decline_reason


@pytest.mark.parametrize(("rate", "approved"), [(0.0, True), (1.0, False)])
def test_provider_failure_rate_bounds(provider_module: Any, rate: float, approved: bool) -> None:
    # GIVEN a provider that never / always fails
    provider = provider_module.SimulatedProvider(decline_above_cents=10**9, failure_rate=rate)
    # WHEN many orders are charged
    results = {provider.charge(f"o-{n}", 100, "EUR").approved for n in range(200)}
    # THEN all are approved / all declined
    assert results == {approved}


def test_provider_failure_rate_is_the_share_declined(provider_module: Any) -> None:
    # GIVEN a provider that declines 30 % of charges
    provider = provider_module.SimulatedProvider(decline_above_cents=10**9, failure_rate=0.3)
    # WHEN 2000 different orders are charged
    declined = sum(not provider.charge(f"o-{n}", 100, "EUR").approved for n in range(2000))
    # THEN about 30 % are declined (the draw is fixed by the key, so this is deterministic)
    assert 500 <= declined <= 700


def test_provider_answers_a_repeated_key_the_same(provider_module: Any) -> None:
    # GIVEN a provider with random failures
    provider = provider_module.SimulatedProvider(decline_above_cents=10**9, failure_rate=0.5)
    # WHEN the same key is charged twice
    first = provider.charge("o-7", 100, "EUR")
    second = provider.charge("o-7", 100, "EUR")
    # THEN it is the same charge (as a real provider under an idempotency key)
    assert first == second


class MemoryTopic:
    def __init__(self) -> None:
        self.published: list[EventEnvelope] = []

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        self.published.append(envelope)
        return f"m-{len(self.published)}"


def test_losing_the_race_to_record_a_charge_publishes_nothing_new(
    domain: Any, provider_module: Any
) -> None:
    # GIVEN an order another delivery (a different event) has charged, not yet visible here
    provider = provider_module.SimulatedProvider(decline_above_cents=10**9, failure_rate=0.0)
    repository, topic = MemoryPayments(), MemoryTopic()
    desk = domain.PaymentDesk(provider, repository, topic)
    desk.on_order_placed(order_placed(), OrderPlaced.model_validate(order_placed().data))
    topic.published.clear()
    repository.hide_next_get = True
    # WHEN this delivery charges it too and tries to record the charge
    other = order_placed()
    published = desk.on_order_placed(other, OrderPlaced.model_validate(other.data))
    # THEN its record is refused and it publishes nothing: the first charge stands
    assert published is None
    assert topic.published == []
