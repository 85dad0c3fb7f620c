"""The inventory service under moto: seeding, reserving all or nothing, releasing once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from chalice.test import Client

from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderPlaced,
    OrderVoided,
    PaymentFailed,
)
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.envelope import new_event
from tests.unit.services.conftest import ServiceFactory, TopicFactory, TopicInbox, sqs_event_of
from tests.unit.services.service_loader import LoadedService, load_service

ORDERS_QUEUE = "lambdamesh-inventory-orders.fifo"
PAYMENTS_QUEUE = "lambdamesh-inventory-payments"
STOCK_TABLE = "test-inventory-StockTable"


def line(product_id: str, quantity: int) -> OrderLine:
    return OrderLine(
        product_id=product_id,
        name=product_id,
        quantity=quantity,
        unit_price_cents=100,
        line_total_cents=100 * quantity,
    )


def order_placed(order_id: str, *lines: tuple[str, int]) -> EventEnvelope:
    use_correlation_id("trace-inv-1")
    order_lines = [line(product_id, quantity) for product_id, quantity in lines]
    data = OrderPlaced(
        order_id=order_id,
        user_id="u-ann",
        lines=order_lines,
        total_cents=sum(item.line_total_cents for item in order_lines),
        currency="EUR",
    )
    return new_event("order.placed", data, source="orders")


def order_cancelled(order_id: str) -> EventEnvelope:
    use_correlation_id("trace-inv-1")
    data = OrderCancelled(order_id=order_id, user_id="u-ann", reason="payment failed")
    return new_event("order.cancelled", data, source="orders")


def payment_failed(order_id: str) -> EventEnvelope:
    use_correlation_id("trace-inv-1")
    return new_event(
        "payment.failed", PaymentFailed(order_id=order_id, reason="declined"), source="payments"
    )


@pytest.fixture
def inventory_topic(topic_inbox: TopicFactory) -> TopicInbox:
    return topic_inbox("lambdamesh-inventory")


@pytest.fixture
def inventory(
    deployed_service: ServiceFactory, inventory_topic: TopicInbox, event_tables: dict[str, str]
) -> LoadedService:
    return deployed_service(
        "inventory", InventoryTopicArn=inventory_topic.topic_arn, **event_tables
    )


@pytest.fixture
def client(inventory: LoadedService) -> Client:
    return inventory.client()


@pytest.fixture
def seeded(client: Client) -> dict[str, Any]:
    payload: dict[str, Any] = client.lambda_.invoke("seed", {}).payload
    return payload


Deliver = Callable[..., dict[str, Any]]


@pytest.fixture
def deliver_orders(client: Client, seeded: dict[str, Any]) -> Deliver:
    """Hand envelopes to the orders-queue consumer as one SQS batch; its answer."""

    def run(*envelopes: EventEnvelope) -> dict[str, Any]:
        event = sqs_event_of(ORDERS_QUEUE, *envelopes)
        payload: dict[str, Any] = client.lambda_.invoke("handle_order_events", event).payload
        return payload

    return run


@pytest.fixture
def deliver_payments(client: Client, seeded: dict[str, Any]) -> Deliver:
    """Hand envelopes to the payments-queue consumer as one SQS batch; its answer."""

    def run(*envelopes: EventEnvelope) -> dict[str, Any]:
        event = sqs_event_of(PAYMENTS_QUEUE, *envelopes)
        payload: dict[str, Any] = client.lambda_.invoke("handle_payment_events", event).payload
        return payload

    return run


def stock(product_id: str) -> int:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    item = dynamodb.get_item(TableName=STOCK_TABLE, Key={"product_id": {"S": product_id}})["Item"]
    return int(item["stock"]["N"])


def set_stock(product_id: str, units: int) -> None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.put_item(
        TableName=STOCK_TABLE,
        Item={"product_id": {"S": product_id}, "stock": {"N": str(units)}},
    )


def forget_handled_events(event_tables: dict[str, str]) -> None:
    """Empty the consumer's idempotency table: as if it died before marking events handled."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    table = event_tables["EventIdempotencyTable"]
    for item in dynamodb.scan(TableName=table)["Items"]:
        dynamodb.delete_item(TableName=table, Key={"id": item["id"]})


def test_seed_stocks_the_catalogs_products_once(client: Client) -> None:
    # GIVEN an empty stock table
    # WHEN the seed function runs twice
    first = client.lambda_.invoke("seed", {}).payload
    second = client.lambda_.invoke("seed", {}).payload
    # THEN the first run stocks the six catalog products, the second finds them all present
    assert len(first["added"]) == 6
    assert "p-espresso-beans" in first["added"]
    assert second == {"added": [], "present": first["added"]}
    assert stock("p-burr-grinder") == 12
    assert stock("p-milk-jug") == 0


def test_seed_never_overwrites_a_stock_level(client: Client, seeded: dict[str, Any]) -> None:
    # GIVEN a product whose stock moved since seeding
    set_stock("p-burr-grinder", 3)
    # WHEN the seed function runs again
    client.lambda_.invoke("seed", {})
    # THEN the level is left as it was
    assert stock("p-burr-grinder") == 3


def test_order_placed_reserves_every_line(
    deliver_orders: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN a seeded stock
    placed = order_placed("o-1", ("p-burr-grinder", 2), ("p-ceramic-mug", 5))
    # WHEN an order for two products is handled
    answer = deliver_orders(placed)
    # THEN both lines' stock is taken and inventory.reserved is published, caused by it
    assert answer == {"batchItemFailures": []}
    assert (stock("p-burr-grinder"), stock("p-ceramic-mug")) == (10, 55)
    [message] = inventory_topic.messages()
    assert message["attributes"]["type"] == "inventory.reserved"
    assert message["body"]["data"]["order_id"] == "o-1"
    assert message["body"]["causation_id"] == placed.id
    assert message["body"]["correlation_id"] == "trace-inv-1"


def test_a_short_line_rejects_the_whole_order_naming_the_product(
    deliver_orders: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN an order whose second line wants more grinders than there are (12)
    placed = order_placed("o-1", ("p-ceramic-mug", 5), ("p-burr-grinder", 13))
    # WHEN it is handled
    answer = deliver_orders(placed)
    # THEN inventory.rejected names the grinder and says how many there are
    assert answer == {"batchItemFailures": []}
    [message] = inventory_topic.messages()
    assert message["body"]["type"] == "inventory.rejected"
    assert message["body"]["data"]["product_id"] == "p-burr-grinder"
    assert "13 wanted, 12 available" in message["body"]["data"]["reason"]
    # AND no stock was taken from any line (all or nothing)
    assert (stock("p-burr-grinder"), stock("p-ceramic-mug")) == (12, 60)


@pytest.mark.parametrize(
    ("product_id", "reason"),
    [("p-milk-jug", "1 wanted, 0 available"), ("p-unicorn", "not stocked")],
)
def test_an_out_of_stock_or_unknown_product_is_rejected(
    deliver_orders: Deliver, inventory_topic: TopicInbox, product_id: str, reason: str
) -> None:
    # GIVEN an order for a product with no stock, or one the inventory does not hold
    # WHEN it is handled
    deliver_orders(order_placed("o-1", (product_id, 1)))
    # THEN it is rejected naming the product, with the reason
    [message] = inventory_topic.messages()
    assert message["body"]["type"] == "inventory.rejected"
    assert message["body"]["data"]["product_id"] == product_id
    assert reason in message["body"]["data"]["reason"]


def test_stock_never_goes_negative_when_orders_compete_for_the_last_units(
    deliver_orders: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN three grinders left and two orders for two each, in one batch
    set_stock("p-burr-grinder", 3)
    first = order_placed("o-1", ("p-burr-grinder", 2))
    second = order_placed("o-2", ("p-burr-grinder", 2))
    # WHEN both are handled
    deliver_orders(first, second)
    # THEN the first is reserved, the second rejected, and one grinder is left
    outcomes = {
        m["body"]["data"]["order_id"]: m["body"]["type"] for m in inventory_topic.messages()
    }
    assert outcomes == {"o-1": "inventory.reserved", "o-2": "inventory.rejected"}
    assert stock("p-burr-grinder") == 1


def test_the_same_product_on_two_lines_is_taken_once_in_total(
    deliver_orders: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN an order naming one product on two lines
    # WHEN it is handled
    deliver_orders(order_placed("o-1", ("p-burr-grinder", 2), ("p-burr-grinder", 3)))
    # THEN it is reserved and the product's stock drops by the sum
    assert [m["body"]["type"] for m in inventory_topic.messages()] == ["inventory.reserved"]
    assert stock("p-burr-grinder") == 7


def test_a_rerun_after_a_crash_reserves_once_and_republishes_the_same_event(
    deliver_orders: Deliver, inventory_topic: TopicInbox, event_tables: dict[str, str]
) -> None:
    # GIVEN an order reserved by a run that died before the event was marked handled
    placed = order_placed("o-1", ("p-burr-grinder", 2))
    deliver_orders(placed)
    first = inventory_topic.messages()
    forget_handled_events(event_tables)
    # WHEN the event is delivered again
    deliver_orders(placed)
    # THEN the stock is taken once, and the same announcement (same event id) goes out again
    assert stock("p-burr-grinder") == 10
    assert [m["body"]["id"] for m in inventory_topic.messages()] == [first[0]["body"]["id"]]


def test_order_cancelled_releases_the_reservation_once(
    deliver_orders: Deliver, deliver_payments: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN a reserved order
    deliver_orders(order_placed("o-1", ("p-burr-grinder", 2), ("p-ceramic-mug", 1)))
    [reserved] = inventory_topic.messages()
    # WHEN it is cancelled, and its payment.failed arrives too
    assert deliver_orders(order_cancelled("o-1")) == {"batchItemFailures": []}
    assert deliver_payments(payment_failed("o-1")) == {"batchItemFailures": []}
    # THEN the stock is back and inventory.released is published once
    assert (stock("p-burr-grinder"), stock("p-ceramic-mug")) == (12, 60)
    [released] = inventory_topic.messages()
    assert released["attributes"]["type"] == "inventory.released"
    assert released["body"]["data"] == reserved["body"]["data"]


def test_payment_failed_releases_the_reservation(
    deliver_orders: Deliver, deliver_payments: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN a reserved order
    deliver_orders(order_placed("o-1", ("p-burr-grinder", 2)))
    inventory_topic.messages()
    # WHEN its payment fails
    answer = deliver_payments(payment_failed("o-1"))
    # THEN the stock is back and inventory.released is published
    assert answer == {"batchItemFailures": []}
    assert stock("p-burr-grinder") == 12
    assert [m["body"]["type"] for m in inventory_topic.messages()] == ["inventory.released"]


def test_order_voided_gives_back_what_an_orphan_order_placed_took(
    deliver_orders: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN stock taken for an order.placed that orders never committed
    deliver_orders(order_placed("o-orphan", ("p-burr-grinder", 3)))
    inventory_topic.messages()
    assert stock("p-burr-grinder") == 9
    # WHEN orders answers its outcome with order.voided
    use_correlation_id("trace-inv-1")
    voided = OrderVoided(order_id="o-orphan", reason="no order o-orphan")
    answer = deliver_orders(new_event("order.voided", voided, source="orders"))
    # THEN the stock is back and inventory.released is published
    assert answer == {"batchItemFailures": []}
    assert stock("p-burr-grinder") == 12
    assert [m["body"]["type"] for m in inventory_topic.messages()] == ["inventory.released"]


def test_a_rejected_order_releases_nothing(
    deliver_orders: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN a rejected order
    deliver_orders(order_placed("o-1", ("p-burr-grinder", 50)))
    inventory_topic.messages()
    # WHEN it is cancelled
    deliver_orders(order_cancelled("o-1"))
    # THEN no stock moves and nothing is published
    assert stock("p-burr-grinder") == 12
    assert inventory_topic.messages() == []


def test_an_order_whose_payment_failed_first_never_takes_stock(
    deliver_orders: Deliver, deliver_payments: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN a payment.failed handled before inventory saw the order
    deliver_payments(payment_failed("o-1"))
    # WHEN the order.placed comes
    deliver_orders(order_placed("o-1", ("p-burr-grinder", 2)))
    # THEN no stock is taken and nothing is published
    assert stock("p-burr-grinder") == 12
    assert inventory_topic.messages() == []


# --- the rules, without AWS -----------------------------------------------------------


@pytest.fixture
def domain() -> Any:
    return load_service("inventory").module("chalicelib.domain")


def test_stock_lines_sum_each_product_in_id_order(domain: Any) -> None:
    # GIVEN order lines naming a product twice, out of id order
    lines = [line("p-b", 1), line("p-a", 2), line("p-b", 4)]
    # WHEN they become stock lines
    result = domain.stock_lines(lines)
    # THEN one line per product, quantities summed, sorted by id
    assert result == (domain.StockLine("p-a", 2), domain.StockLine("p-b", 5))


def test_rejection_reasons_say_what_was_missing(domain: Any) -> None:
    # GIVEN a shortage and an unknown product
    short = domain.Shortage("p-a", wanted=3, available=1)
    unknown = domain.Shortage("p-x", wanted=1, available=None)
    # WHEN they are described
    # THEN each says which product and why
    assert domain.rejection_reason(short) == "not enough stock of p-a: 3 wanted, 1 available"
    assert domain.rejection_reason(unknown) == "product p-x is not stocked"


def test_seed_stock_copies_the_catalog_assortment(domain: Any) -> None:
    # GIVEN the catalog's seed products (inventory keeps its own copy of ids and stock)
    catalog = load_service("catalog").module("chalicelib.domain")
    expected = {product.id: product.stock for product in catalog.SEED_PRODUCTS}
    # WHEN compared with inventory's seed stock
    # THEN they agree
    assert dict(domain.SEED_STOCK) == expected
