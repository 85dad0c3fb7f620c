"""The order saga end to end: ``POST /orders`` → SNS/SQS fan-out → payments, inventory,
orders' saga → notifications, on the deployed services.

Every outcome is asynchronous, so each test polls for it with a generous bound (a bound on
waiting, never a performance assertion). A spy queue subscribed to the payments and
inventory topics records the events those services publish, so that "exactly once" can be
checked on the wire, not only in their tables.

Each test orders a product of its own, so that stock levels can be compared before and after:
espresso beans (confirmed), the grinder (declined payment), the milk jug (out of stock), paper
filters (duplicate delivery, dead letter and redrive).
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import urllib3

from lambdamesh.chaos.observation import restock
from tests.conftest import RunningEmulator
from tests.e2e.cli_support import LAMBDAMESH, run_lambdamesh
from tests.e2e.conftest import MISSING_TABLE, DeployedSystem
from tests.e2e.lambda_support import wait_until
from tests.e2e.test_sync_journey import call, catalog_product, new_user, order_body, set_environment
from tests.support.sqs import queue_arn

ESPRESSO = "p-espresso-beans"
GRINDER = "p-burr-grinder"
MILK_JUG = "p-milk-jug"
FILTERS = "p-paper-filters"
"""Seed products (the catalog's and the inventory's seed lists)."""

PAYMENTS_ORDERS_QUEUE = "lambdamesh-payments-orders.fifo"
INVENTORY_ORDERS_QUEUE = "lambdamesh-inventory-orders.fifo"
NOTIFICATIONS_USERS_QUEUE = "lambdamesh-notifications-users"
ORDERS_OUTCOMES_QUEUE = "lambdamesh-orders-outcomes"

SAGA_TIMEOUT_S = 90.0
"""Bound on an order's saga: cold starts of five consumer functions plus four async hops."""
DEAD_LETTER_TIMEOUT_S = 150.0
"""Bound on a failing message reaching its DLQ: five receives with 1, 2, 4, 8 s backoff,
plus the event source's polling and the consumer's cold start."""

_http = urllib3.PoolManager(retries=False)


# --- the deployment as these tests see it -------------------------------------------------


@dataclass
class EventSpy:
    """A queue subscribed (raw delivery) to the payments and inventory topics.

    Collects every event those services publish, by order id, so tests can count them.
    """

    sqs: Any
    queue_url: str
    seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def drain(self) -> None:
        """Read everything waiting now (short receives until one comes back empty)."""
        while True:
            answer = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            messages = answer.get("Messages", [])
            if not messages:
                return
            for message in messages:
                envelope = json.loads(message["Body"])
                order_id = envelope.get("data", {}).get("order_id", "")
                self.seen.setdefault(order_id, []).append(envelope)
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(messages)
                ],
            )

    def events(self, order_id: str, event_type: str) -> list[dict[str, Any]]:
        """The events of ``event_type`` about ``order_id`` seen so far (drains first)."""
        self.drain()
        return [event for event in self.seen.get(order_id, []) if event["type"] == event_type]


@dataclass(frozen=True)
class Saga:
    """The deployed system plus what these tests read directly."""

    system: DeployedSystem
    emulator: RunningEmulator
    spy: EventSpy

    @property
    def dynamodb(self) -> Any:
        return self.emulator.client("dynamodb")

    @property
    def sqs(self) -> Any:
        return self.emulator.client("sqs")

    def table(self, service: str, output: str) -> str:
        return self.system[service].outputs[output]

    def item(self, service: str, output: str, key: dict[str, str]) -> dict[str, Any] | None:
        """One item of a service's table (consistent read), or ``None``."""
        answer = self.dynamodb.get_item(
            TableName=self.table(service, output),
            Key={name: {"S": value} for name, value in key.items()},
            ConsistentRead=True,
        )
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def stock(self, product_id: str) -> int:
        item = self.item("inventory", "StockTableName", {"product_id": product_id})
        assert item is not None, f"inventory has no stock record for {product_id}"
        return int(item["stock"]["N"])

    def payment(self, order_id: str) -> dict[str, Any] | None:
        return self.item("payments", "PaymentsTableName", {"order_id": order_id})

    def reservation(self, order_id: str) -> dict[str, Any] | None:
        return self.item("inventory", "ReservationsTableName", {"order_id": order_id})

    def placed_event(self, order_id: str) -> dict[str, Any]:
        """The order's ``order.placed`` envelope, as its event stream holds it."""
        answer = self.dynamodb.get_item(
            TableName=self.table("orders", "OrderEventsTableName"),
            Key={"stream_id": {"S": f"order-{order_id}"}, "version": {"N": "1"}},
            ConsistentRead=True,
        )
        item = answer.get("Item")
        assert item is not None, f"no order {order_id}"
        assert item["type"]["S"] == "order.placed"
        envelope: dict[str, Any] = json.loads(item["event"]["S"])
        return envelope

    def queue_url(self, name: str) -> str:
        url: str = self.sqs.get_queue_url(QueueName=name)["QueueUrl"]
        return url

    def env_of(self, service: str, function: str) -> dict[str, str]:
        name = self.system[service].functions[function]
        configuration = self.emulator.client("lambda").get_function_configuration(FunctionName=name)
        variables: dict[str, str] = configuration["Environment"]["Variables"]
        return variables


@pytest.fixture(scope="module")
def saga(deployed: DeployedSystem, emulator: RunningEmulator) -> Iterator[Saga]:
    """The deployed system with an event spy on the payments and inventory topics."""
    sqs, sns = emulator.client("sqs"), emulator.client("sns")
    queue_url = sqs.create_queue(QueueName=f"lambdamesh-test-saga-spy-{uuid.uuid4().hex[:8]}")[
        "QueueUrl"
    ]
    spy_arn = queue_arn(sqs, queue_url)
    subscriptions = [
        sns.subscribe(
            TopicArn=deployed.messaging_outputs[topic],
            Protocol="sqs",
            Endpoint=spy_arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        for topic in ("PaymentsTopicArn", "InventoryTopicArn")
    ]
    try:
        yield Saga(deployed, emulator, EventSpy(sqs, queue_url))
    finally:
        for subscription in subscriptions:
            sns.unsubscribe(SubscriptionArn=subscription)
        sqs.delete_queue(QueueUrl=queue_url)


# --- helpers --------------------------------------------------------------------------------


def place(saga: Saga, user_id: str, *items: tuple[str, int]) -> dict[str, Any]:
    """Place an order through the orders API; the order as answered (status ``placed``)."""
    answer = call("POST", saga.system["orders"].url("orders"), order_body(user_id, *items))
    assert answer.status == 201, answer.body
    order: dict[str, Any] = answer.body
    assert order["status"] == "placed"
    return order


def decided(saga: Saga, order_id: str) -> dict[str, Any]:
    """The order once its saga has decided it (confirmed or cancelled)."""

    def order_decided() -> dict[str, Any] | None:
        answer = call("GET", saga.system["orders"].url(f"orders/{order_id}"))
        assert answer.status == 200, answer.body
        body: dict[str, Any] = answer.body
        return None if body["status"] == "placed" else body

    return wait_until(order_decided, timeout_s=SAGA_TIMEOUT_S, interval_s=0.5)


def mails_to(emulator: RunningEmulator, address: str) -> list[dict[str, Any]]:
    """The mails SES sent to ``address`` (LocalStack's ``/_aws/ses``)."""
    response = _http.request("GET", f"{emulator.endpoint_url}/_aws/ses")
    assert response.status == 200
    messages: list[dict[str, Any]] = json.loads(response.data)["messages"]
    return [mail for mail in messages if address in mail["Destination"]["ToAddresses"]]


def mail_about(emulator: RunningEmulator, address: str, *words: str) -> dict[str, Any]:
    """Wait for a mail to ``address`` whose subject holds every one of ``words``."""

    def mail_sent() -> dict[str, Any] | None:
        for mail in mails_to(emulator, address):
            if all(word in mail["Subject"] for word in words):
                return mail
        return None

    return wait_until(mail_sent, timeout_s=SAGA_TIMEOUT_S, interval_s=0.5)


def eventually[T](probe: Callable[[], T | None], what: str) -> T:
    """``probe``'s first result other than ``None``, within the saga's bound."""
    probe.__name__ = what  # named in wait_until's message
    return wait_until(probe, timeout_s=SAGA_TIMEOUT_S, interval_s=0.5)


def decline_threshold(saga: Saga) -> int:
    """The amount above which the payments function declines (its environment)."""
    return int(saga.env_of("payments", "HandleOrderEvents")["PAYMENT_DECLINE_ABOVE_CENTS"])


def queue_is_idle(saga: Saga, queue_url: str) -> bool:
    """Whether ``queue_url`` holds no message, visible or in flight."""
    attributes = saga.sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return all(int(value) == 0 for value in attributes.values())


def lambdamesh_dlq(emulator: RunningEmulator, *args: str) -> Any:
    """Run ``lambdamesh dlq ARGS --json`` against the emulator; its JSON document."""
    return json.loads(run_lambdamesh(emulator, "dlq", *args, "--json"))


def dead_letters_with(
    emulator: RunningEmulator, queue: str, match: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The messages ``lambdamesh dlq show QUEUE`` lists that ``match``."""
    document = lambdamesh_dlq(emulator, "show", queue, "--max", "10")
    return [letter for letter in document["messages"] if match(letter)]


def remove_from_queue(saga: Saga, queue_url: str, message_ids: set[str]) -> None:
    """Delete the messages with these ids from ``queue_url`` (clean-up; others are released)."""
    left = set(message_ids)
    for _ in range(10):
        if not left:
            return
        answer = saga.sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=2
        )
        for message in answer.get("Messages", []):
            if message["MessageId"] in left:
                saga.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                left.discard(message["MessageId"])


def envelope(event_type: str, data: dict[str, Any], *, correlation_id: str) -> dict[str, Any]:
    """An event envelope as publishers write it (``EventEnvelope``'s JSON)."""
    return {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "version": 1,
        "source": "saga-tests",
        "time": datetime.now(UTC).isoformat(),
        "correlation_id": correlation_id,
        "causation_id": None,
        "data": data,
    }


def event_attributes(event: dict[str, Any]) -> dict[str, Any]:
    """The message attributes a publisher sets (``type``, ``version``, ``correlation_id``)."""
    return {
        "type": {"DataType": "String", "StringValue": event["type"]},
        "version": {"DataType": "String", "StringValue": str(event["version"])},
        "correlation_id": {"DataType": "String", "StringValue": event["correlation_id"]},
    }


# --- the saga -------------------------------------------------------------------------------


def test_a_new_user_gets_a_welcome_mail_through_ses(saga: Saga) -> None:
    # GIVEN a user registered through the users API (which publishes user.created)
    user = new_user(saga.system, name="Grace")
    # WHEN notifications has consumed the event
    # THEN SES holds one welcome mail to the user's address, from the shop's sender
    mail = mail_about(saga.emulator, user["email"], "Welcome", "Grace")
    sender = saga.env_of("notifications", "HandleUserEvents")["MAIL_FROM"]
    assert mail["Source"] == sender
    assert (
        len([m for m in mails_to(saga.emulator, user["email"]) if "Welcome" in m["Subject"]]) == 1
    )


def test_an_order_is_confirmed_through_the_fan_out_charged_once_stock_taken_once_and_mailed(
    saga: Saga,
) -> None:
    # GIVEN a user and the espresso beans' stock level
    user = new_user(saga.system)
    stock_before = saga.stock(ESPRESSO)
    # WHEN the user orders two bags
    order = place(saga, user["id"], (ESPRESSO, 2))
    # THEN the order is eventually confirmed, with no cancel reason
    final = decided(saga, order["id"])
    assert final["status"] == "confirmed", final
    assert final["cancel_reason"] is None
    # AND payments charged the order's total once
    payment = saga.payment(order["id"])
    assert payment is not None
    assert payment["status"]["S"] == "processed"
    assert int(payment["amount_cents"]["N"]) == order["total_cents"]
    assert len(saga.spy.events(order["id"], "payment.processed")) == 1
    # AND inventory took the two bags out of stock, once
    reservation = saga.reservation(order["id"])
    assert reservation is not None
    assert reservation["status"]["S"] == "reserved"
    assert saga.stock(ESPRESSO) == stock_before - 2
    assert len(saga.spy.events(order["id"], "inventory.reserved")) == 1
    # AND the confirmation mail to the user's address is readable from SES
    mail = mail_about(saga.emulator, user["email"], order["id"], "confirmed")
    assert mail["Destination"]["ToAddresses"] == [user["email"]]
    assert order["id"] in mail["Body"]["text_part"]


def test_a_declined_payment_cancels_the_order_and_releases_its_stock(saga: Saga) -> None:
    # GIVEN a user, and enough grinders to go over the provider's decline threshold
    user = new_user(saga.system)
    price = catalog_product(saga.system, GRINDER)["price_cents"]
    quantity = decline_threshold(saga) // price + 1
    stock_before = saga.stock(GRINDER)
    assert quantity <= stock_before, "the grinder's stock must cover the order"
    # WHEN the user orders them
    order = place(saga, user["id"], (GRINDER, quantity))
    assert order["total_cents"] > decline_threshold(saga)
    # THEN the order is cancelled because the payment failed
    final = decided(saga, order["id"])
    assert final["status"] == "cancelled", final
    assert final["cancel_reason"].startswith("payment failed"), final
    payment = saga.payment(order["id"])
    assert payment is not None
    assert payment["status"]["S"] == "failed"
    # AND whatever inventory reserved is released: the stock is back to its level before
    released = eventually(
        lambda: saga.reservation(order["id"]) if saga.stock(GRINDER) == stock_before else None,
        "stock_back_to_its_level",
    )
    assert released["status"]["S"] == "released"
    assert saga.stock(GRINDER) == stock_before
    # AND the buyer is told by mail
    mail_about(saga.emulator, user["email"], order["id"], "cancelled")


def test_an_order_out_of_stock_is_cancelled_and_its_processed_payment_refunded(
    saga: Saga,
) -> None:
    # GIVEN a user and one more milk jug than inventory holds, for less than the threshold
    user = new_user(saga.system)
    stock_before = saga.stock(MILK_JUG)
    quantity = stock_before + 1
    # WHEN the user orders them
    order = place(saga, user["id"], (MILK_JUG, quantity))
    assert order["total_cents"] <= decline_threshold(saga)
    # THEN the order is cancelled, naming the product that cannot be reserved
    final = decided(saga, order["id"])
    assert final["status"] == "cancelled", final
    assert MILK_JUG in final["cancel_reason"], final

    # AND the payment, processed meanwhile, is refunded once
    def payment_refunded() -> dict[str, Any] | None:
        payment = saga.payment(order["id"])
        return payment if payment is not None and payment["status"]["S"] == "refunded" else None

    refunded = wait_until(payment_refunded, timeout_s=SAGA_TIMEOUT_S, interval_s=0.5)
    assert int(refunded["amount_cents"]["N"]) == order["total_cents"]
    assert "refund_id" in refunded
    eventually(
        lambda: saga.spy.events(order["id"], "payment.refunded") or None, "payment_refunded_event"
    )
    assert len(saga.spy.events(order["id"], "payment.processed")) == 1
    assert len(saga.spy.events(order["id"], "payment.refunded")) == 1
    # AND inventory rejected it, taking nothing
    assert len(saga.spy.events(order["id"], "inventory.rejected")) == 1
    assert saga.stock(MILK_JUG) == stock_before


def test_the_same_order_placed_message_delivered_twice_charges_once(saga: Saga) -> None:
    # GIVEN an order confirmed through the saga, and the order.placed event it published
    user = new_user(saga.system)
    order = place(saga, user["id"], (FILTERS, 1))
    assert decided(saga, order["id"])["status"] == "confirmed"
    placed = saga.placed_event(order["id"])
    payment_before = saga.payment(order["id"])
    assert payment_before is not None
    # WHEN a copy of that event (same event id) reaches the payments queue again, as an
    # at-least-once delivery would bring it: a new SQS message, a new deduplication id
    queue_url = saga.queue_url(PAYMENTS_ORDERS_QUEUE)
    copy = saga.sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(placed),
        MessageAttributes=event_attributes(placed),
        MessageGroupId=order["id"],
        MessageDeduplicationId=str(uuid.uuid4()),
    )
    eventually(lambda: queue_is_idle(saga, queue_url) or None, "payments_queue_consumed")
    # THEN payments acknowledged it (no failure recorded) without charging again
    recorded = saga.dynamodb.get_item(
        TableName=saga.system.messaging_outputs["EventFailuresTable"],
        Key={"id": {"S": copy["MessageId"]}},
        ConsistentRead=True,
    )
    assert "Item" not in recorded, recorded["Item"]
    assert saga.payment(order["id"]) == payment_before
    # AND what it announced is the one payment.processed it stored (payments keeps no processed
    # marks: its conditional write finds the charge, and its outcome goes out again under the
    # same event id, which the saga takes as the duplicate it is)
    announced = saga.spy.events(order["id"], "payment.processed")
    assert {event["id"] for event in announced} == {announced[0]["id"]}
    assert decided(saga, order["id"])["status"] == "confirmed"


def test_poison_messages_are_dead_lettered_at_once_with_their_reason(saga: Saga) -> None:
    # GIVEN the notifications consumer's users queue and its dead-letter queue
    queue_url = saga.queue_url(NOTIFICATIONS_USERS_QUEUE)
    dlq_url = saga.queue_url(f"{NOTIFICATIONS_USERS_QUEUE}-dlq")
    correlation_id = f"poison-{uuid.uuid4()}"
    unknown = envelope("user.teleported", {"user_id": "u-1"}, correlation_id=correlation_id)
    # WHEN a body that is not JSON and an event of a type nobody knows are sent to it
    saga.sqs.send_message(
        QueueUrl=queue_url,
        MessageBody='{"id": "cut short',
        MessageAttributes={"correlation_id": {"DataType": "String", "StringValue": correlation_id}},
    )
    saga.sqs.send_message(
        QueueUrl=queue_url,
        MessageBody=json.dumps(unknown),
        MessageAttributes=event_attributes(unknown),
    )
    dead_lettered: set[str] = set()
    try:
        # THEN both are in the dead-letter queue after their first receive, not their fifth,
        # and `lambdamesh dlq show` gives each one's reason
        def both_dead_lettered() -> list[dict[str, Any]] | None:
            letters = dead_letters_with(
                saga.emulator,
                "notifications-users",
                lambda letter: letter["correlation_id"] == correlation_id and letter["last_error"],
            )
            return letters if len(letters) == 2 else None

        letters = wait_until(both_dead_lettered, timeout_s=DEAD_LETTER_TIMEOUT_S, interval_s=1.0)
        dead_lettered = {letter["message_id"] for letter in letters}
        for letter in letters:
            error = letter["last_error"]
            assert error["service"] == "notifications"
            assert error["queue"] == NOTIFICATIONS_USERS_QUEUE
            assert error["attempts"] == 1
        reasons = sorted(letter["last_error"]["reason"] for letter in letters)
        assert any("user.teleported" in reason for reason in reasons)
        assert any("not valid JSON" in reason for reason in reasons)
    finally:
        remove_from_queue(saga, dlq_url, dead_lettered)


QUICK_RETRIES = {"RETRY_BACKOFF_BASE_S": "0.1"}
"""A misconfigured consumer's retries 1, 1, 1, 1 s apart instead of 1, 2, 4, 8 s: the same
five tries and the same backoff code, a quarter of the wait."""


def test_an_order_dead_lettered_by_inventory_is_confirmed_after_the_fix_and_a_redrive(
    saga: Saga,
) -> None:
    # GIVEN inventory's order consumer misconfigured: its stock table does not exist
    lambda_client = saga.emulator.client("lambda")
    function_name = saga.system["inventory"].functions["HandleOrderEvents"]
    original = saga.env_of("inventory", "HandleOrderEvents")
    dlq_url = saga.queue_url(INVENTORY_ORDERS_QUEUE.replace(".fifo", "-dlq.fifo"))
    stock_before = saga.stock(FILTERS)
    user = new_user(saga.system)
    set_environment(
        lambda_client,
        function_name,
        {**original, "STOCK_TABLE": MISSING_TABLE, **QUICK_RETRIES},
    )
    placed_id = ""
    try:
        # WHEN an order is placed
        order = place(saga, user["id"], (FILTERS, 3))
        placed_id = saga.placed_event(order["id"])["id"]

        # THEN its order.placed ends in inventory's dead-letter queue, with the error
        def dead_lettered() -> dict[str, Any] | None:
            letters = dead_letters_with(
                saga.emulator,
                "inventory-orders",
                lambda letter: letter["event_id"] == placed_id and letter["last_error"],
            )
            return letters[0] if letters else None

        letter = wait_until(dead_lettered, timeout_s=DEAD_LETTER_TIMEOUT_S, interval_s=3.0)
        assert letter["event_type"] == "order.placed"
        assert letter["group_id"] == order["id"]
        assert letter["last_error"]["service"] == "inventory"
        assert letter["last_error"]["attempts"] >= 5
        # AND meanwhile the order waits: paid, but not confirmed, and no stock taken
        assert saga.payment(order["id"]) is not None
        assert (
            call("GET", saga.system["orders"].url(f"orders/{order['id']}")).body["status"]
            == "placed"
        )
        assert saga.stock(FILTERS) == stock_before

        # WHEN the configuration is fixed and the dead-letter queue redriven
        set_environment(lambda_client, function_name, original)
        redriven = lambdamesh_dlq(saga.emulator, "redrive", "inventory-orders")
        assert redriven["moved"] >= 1, redriven

        # THEN the order is confirmed and its stock taken once
        final = decided(saga, order["id"])
        assert final["status"] == "confirmed", final
        assert saga.stock(FILTERS) == stock_before - 3
        mail_about(saga.emulator, user["email"], order["id"], "confirmed")
    finally:
        set_environment(lambda_client, function_name, original)
        if placed_id:
            leftovers = dead_letters_with(
                saga.emulator, "inventory-orders", lambda letter: letter["event_id"] == placed_id
            )
            remove_from_queue(saga, dlq_url, {letter["message_id"] for letter in leftovers})


def test_a_redriven_message_that_fails_again_returns_to_its_dlq_after_the_same_tries(
    saga: Saga,
) -> None:
    # GIVEN the saga's outcome consumer misconfigured (its event store does not exist), so an
    # outcome fails on every try until someone fixes it
    lambda_client = saga.emulator.client("lambda")
    function_name = saga.system["orders"].functions["HandleOutcomes"]
    original = saga.env_of("orders", "HandleOutcomes")
    dlq_url = saga.queue_url(f"{ORDERS_OUTCOMES_QUEUE}-dlq")
    correlation_id = f"redrive-{uuid.uuid4()}"
    outcome = envelope(
        "payment.processed",
        {
            "order_id": f"o-{uuid.uuid4().hex[:8]}",
            "payment_id": "pay-1",
            "amount_cents": 100,
            "currency": "EUR",
        },
        correlation_id=correlation_id,
    )

    def dead_lettered(excluding: frozenset[str]) -> dict[str, Any] | None:
        letters = dead_letters_with(
            saga.emulator,
            "orders-outcomes",
            lambda letter: (
                letter["correlation_id"] == correlation_id
                and letter["message_id"] not in excluding
                and letter["last_error"]
            ),
        )
        return letters[0] if letters else None

    seen: set[str] = set()
    set_environment(
        lambda_client,
        function_name,
        {**original, "ORDER_EVENTS_TABLE": MISSING_TABLE, **QUICK_RETRIES},
    )
    try:
        saga.sqs.send_message(
            QueueUrl=saga.queue_url(ORDERS_OUTCOMES_QUEUE),
            MessageBody=json.dumps(outcome),
            MessageAttributes=event_attributes(outcome),
        )
        # WHEN it has been dead-lettered after its five tries
        first = wait_until(
            lambda: dead_lettered(frozenset()), timeout_s=DEAD_LETTER_TIMEOUT_S, interval_s=1.0
        )
        seen.add(first["message_id"])
        assert first["last_error"]["attempts"] == 5
        # AND the dead-letter queue is redriven while the cause is still there
        redriven = lambdamesh_dlq(saga.emulator, "redrive", "orders-outcomes")
        assert redriven["moved"] >= 1, redriven
        # THEN it comes back as a fresh delivery and, failing again, reaches the dead-letter
        # queue again after the same five tries (not a count carried over, not hours of backoff)
        again = wait_until(
            lambda: dead_lettered(frozenset(seen)),
            timeout_s=DEAD_LETTER_TIMEOUT_S,
            interval_s=1.0,
        )
        seen.add(again["message_id"])
        assert again["last_error"]["attempts"] == 5
        assert "ResourceNotFoundException" in again["last_error"]["reason"]
    finally:
        set_environment(lambda_client, function_name, original)
        remove_from_queue(saga, dlq_url, seen)


def test_an_orphan_order_placed_is_charged_and_reserved_then_undone(saga: Saga) -> None:
    # GIVEN an order.placed on the orders topic for an order that orders never committed
    order_id = f"o-orphan-{uuid.uuid4().hex[:8]}"
    stock_before = saga.stock(FILTERS)
    placed = envelope(
        "order.placed",
        {
            "order_id": order_id,
            "user_id": "u-nobody",
            "lines": [
                {
                    "product_id": FILTERS,
                    "name": "Paper filters, 100 pcs",
                    "quantity": 2,
                    "unit_price_cents": 650,
                    "line_total_cents": 1300,
                }
            ],
            "total_cents": 1300,
            "currency": "EUR",
        },
        correlation_id=f"orphan-{uuid.uuid4()}",
    )
    # WHEN it is published, as a misbehaving publisher could
    saga.emulator.client("sns").publish(
        TopicArn=saga.system.messaging_outputs["OrdersTopicArn"],
        Message=json.dumps(placed),
        MessageAttributes=event_attributes(placed),
        MessageGroupId=order_id,
        MessageDeduplicationId=placed["id"],
    )

    # THEN payments and inventory act on it, orders answers their outcomes with order.voided,
    # and what they did is undone: the charge refunded, the stock back
    def undone() -> dict[str, Any] | None:
        payment, reservation = saga.payment(order_id), saga.reservation(order_id)
        if payment is None or reservation is None:
            return None
        if reservation["status"]["S"] == "reserved" or payment["status"]["S"] == "processed":
            return None
        return {"payment": payment, "reservation": reservation}

    found = wait_until(undone, timeout_s=SAGA_TIMEOUT_S, interval_s=0.5)
    assert found["payment"]["status"]["S"] == "refunded"
    assert found["reservation"]["status"]["S"] == "released"
    assert saga.stock(FILTERS) == stock_before


# --- orders kept as events: history, read models, publishing from the stream -----------------


def test_an_orders_history_and_its_users_orders_follow_its_events(saga: Saga) -> None:
    # GIVEN a confirmed order
    user = new_user(saga.system)
    order = place(saga, user["id"], (ESPRESSO, 1))
    assert decided(saga, order["id"])["status"] == "confirmed"
    # WHEN its history is read
    answer = call("GET", saga.system["orders"].url(f"orders/{order['id']}/events"))
    # THEN it lists its events from order.placed to order.confirmed, numbered from 1, each
    # outcome's record and the decision caused by the outcome
    assert answer.status == 200, answer.body
    events = answer.body["events"]
    assert [event["version"] for event in events] == [1, 2, 3, 4]
    types = [event["type"] for event in events]
    assert (types[0], types[3]) == ("order.placed", "order.confirmed")
    assert sorted(types[1:3]) == ["order.payment_recorded", "order.stock_recorded"]
    assert events[3]["causation_id"] is not None
    # AND the user's orders list it, confirmed, once the read model has caught up

    def listed() -> dict[str, Any] | None:
        page = call("GET", saga.system["orders"].url(f"users/{user['id']}/orders"))
        assert page.status == 200, page.body
        mine = [entry for entry in page.body["orders"] if entry["id"] == order["id"]]
        return mine[0] if mine and mine[0]["status"] == "confirmed" else None

    assert (
        wait_until(listed, timeout_s=SAGA_TIMEOUT_S, interval_s=0.5)["total_cents"]
        == (order["total_cents"])
    )


def _faults_logged(saga: Saga, function_name: str) -> int:
    """How many times the function logged an injected fault."""
    logs = saga.emulator.client("logs")
    try:
        answer = logs.filter_log_events(logGroupName=f"/aws/lambda/{function_name}")
    except logs.exceptions.ResourceNotFoundException:
        return 0
    return sum("fault injected" in event["message"] for event in answer.get("events", []))


def test_a_failing_stream_publisher_still_delivers_the_event_to_every_subscriber(
    saga: Saga,
) -> None:
    # GIVEN the stream publisher's process killed in every batch (a crash, as a chaos run makes)
    lambda_client = saga.emulator.client("lambda")
    function_name = saga.system["orders"].functions["PublishOrderEvents"]
    original = saga.env_of("orders", "PublishOrderEvents")
    user = new_user(saga.system)
    crashes_before = _faults_logged(saga, function_name)
    set_environment(
        lambda_client, function_name, {**original, "LAMBDAMESH_FAULTS": '{"crash_rate": 1.0}'}
    )
    try:
        # WHEN an order is placed, and the publisher fails on its order.placed
        order = place(saga, user["id"], (ESPRESSO, 1))
        wait_until(
            lambda: _faults_logged(saga, function_name) > crashes_before or None,
            timeout_s=SAGA_TIMEOUT_S,
            interval_s=0.5,
        )
    finally:
        # AND the cause goes away
        set_environment(lambda_client, function_name, original)
    # THEN the stream is retried from the failed record and the event reaches every subscriber:
    # charged once, stock reserved, confirmed, mailed
    assert decided(saga, order["id"])["status"] == "confirmed"
    assert len(saga.spy.events(order["id"], "payment.processed")) == 1
    reservation = saga.reservation(order["id"])
    assert reservation is not None
    assert reservation["status"]["S"] == "reserved"
    mail_about(saga.emulator, user["email"], "confirmed")


KETTLE = "p-pour-over-kettle"
MAX_LINE_QUANTITY = 1000


def _catalog_stock(saga: Saga, product_id: str) -> int:
    return int(catalog_product(saga.system, product_id)["stock"])


def test_catalogs_availability_drops_to_zero_once_inventory_runs_out(saga: Saga) -> None:
    # GIVEN a product inventory holds some of, and catalog showing that level
    user = new_user(saga.system)
    stock_table = saga.table("inventory", "StockTableName")
    if saga.stock(KETTLE) == 0:
        restock(saga.dynamodb, stock_table, [KETTLE], 3)
    level = saga.stock(KETTLE)
    assert 0 < level <= 200, level
    wait_until(
        lambda: _catalog_stock(saga, KETTLE) == level or None,
        timeout_s=SAGA_TIMEOUT_S,
        interval_s=0.5,
    )
    try:
        # WHEN orders buy every unit inventory has (each under the amount payments declines)
        price = int(catalog_product(saga.system, KETTLE)["price_cents"])
        per_order = max(1, min(MAX_LINE_QUANTITY, decline_threshold(saga) // price))
        left = level
        while left:
            quantity = min(left, per_order)
            order = place(saga, user["id"], (KETTLE, quantity))
            assert decided(saga, order["id"])["status"] == "confirmed"
            left -= quantity
        # THEN catalog shows none available, once inventory's event has reached it
        wait_until(
            lambda: _catalog_stock(saga, KETTLE) == 0 or None,
            timeout_s=SAGA_TIMEOUT_S,
            interval_s=0.5,
        )
        # AND an order for one more is cancelled for lack of stock, naming the product
        refused = place(saga, user["id"], (KETTLE, 1))
        final = decided(saga, refused["id"])
        assert final["status"] == "cancelled"
        assert KETTLE in final["cancel_reason"]
    finally:
        # (the warehouse receives as many again, for the tests after this one)
        restock(saga.dynamodb, stock_table, [KETTLE], level)
    wait_until(
        lambda: _catalog_stock(saga, KETTLE) == level or None,
        timeout_s=SAGA_TIMEOUT_S,
        interval_s=0.5,
    )


def test_the_read_model_rebuilt_from_the_events_equals_the_live_one(saga: Saga) -> None:
    # GIVEN every order this module placed, decided and projected
    # WHEN the read model is rebuilt from the events and compared with the live one
    endpoint = saga.emulator.endpoint_url

    def compared() -> dict[str, Any] | None:
        completed = subprocess.run(  # exit 1 while the read model differs: no run_lambdamesh
            [str(LAMBDAMESH), "orders", "rebuild", "--json", "--endpoint", endpoint],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode in (0, 1), completed.stderr
        report: dict[str, Any] = json.loads(completed.stdout)
        return report if report["matches"] else None

    # THEN they match (once the projector has caught up with the last events)
    report = wait_until(compared, timeout_s=SAGA_TIMEOUT_S, interval_s=1.0)
    assert report["orders"] > 0
    assert report["missing"] == report["stale"] == report["different"] == report["extra"] == []
