"""The inventory service under moto: seeding, reserving all or nothing, releasing once, and
announcing every stock level from the stock table's stream."""

from __future__ import annotations

import doctest
import json
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
from lambdamesh_toolkit.events.dead_lettering import FAILURE_REASON_ATTRIBUTE
from lambdamesh_toolkit.events.envelope import derived_event_id, new_event
from lambdamesh_toolkit.trace_context import parse_traceparent
from tests.support.dynamodb_streams import forget_positions, stream_event
from tests.support.sqs import queue_arn
from tests.support.stream_records import image, stream_record
from tests.support.stream_records import stream_event as stream_event_of
from tests.unit.services.conftest import ServiceFactory, TopicFactory, TopicInbox, sqs_event_of
from tests.unit.services.service_loader import LoadedService, load_service, service_resources

ORDERS_QUEUE = "lambdamesh-inventory-orders.fifo"
PAYMENTS_QUEUE = "lambdamesh-inventory-payments"
STOCK_TABLE = "test-inventory-StockTable"
STOCK_CHANGES_DLQ = "lambdamesh-inventory-stock-changes-dlq"


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
def stock_changes_dlq(aws: None) -> str:
    """The queue where the stock stream's publisher puts records it can never publish (URL)."""
    forget_positions()  # moto starts afresh: so do the streams' read positions
    queue_url: str = boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName=STOCK_CHANGES_DLQ
    )["QueueUrl"]
    return queue_url


@pytest.fixture
def inventory(
    deployed_service: ServiceFactory,
    inventory_topic: TopicInbox,
    event_tables: dict[str, str],
    stock_changes_dlq: str,
) -> LoadedService:
    sqs = boto3.client("sqs", region_name="us-east-1")
    return deployed_service(
        "inventory",
        InventoryTopicArn=inventory_topic.topic_arn,
        InventoryStockChangesDeadLetterQueueArn=queue_arn(sqs, stock_changes_dlq),
        **event_tables,
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


def test_a_redelivered_order_placed_reserves_once_and_republishes_the_same_event(
    deliver_orders: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN an order reserved (inventory keeps no processed marks: its conditions decide)
    placed = order_placed("o-1", ("p-burr-grinder", 2))
    deliver_orders(placed)
    first = inventory_topic.messages()
    # WHEN the event is delivered again, as after a run that died before publishing
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


# --- the stock table's stream: inventory.stock_changed --------------------------------


def stock_item(product_id: str) -> dict[str, Any]:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    item: dict[str, Any] = dynamodb.get_item(
        TableName=STOCK_TABLE, Key={"product_id": {"S": product_id}}
    )["Item"]
    return item


def version_of(product_id: str) -> int:
    return int(stock_item(product_id)["stock_version"]["N"])


def publish_stock_changes(client: Client, event: dict[str, Any]) -> dict[str, Any]:
    """Run the stock stream's publisher over ``event``; its answer."""
    payload: dict[str, Any] = client.lambda_.invoke("publish_stock_changes", event).payload
    return payload


def dead_letters(queue_url: str) -> list[Any]:
    sqs = boto3.client("sqs", region_name="us-east-1")
    return sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    ).get("Messages", [])


def test_every_write_that_changes_a_level_adds_one_to_its_stock_version(
    deliver_orders: Deliver, deliver_payments: Deliver, client: Client
) -> None:
    # GIVEN a seeded stock: every product starts at version 1
    assert (version_of("p-burr-grinder"), version_of("p-ceramic-mug")) == (1, 1)
    # WHEN an order reserves two products, and its payment fails (the stock comes back)
    deliver_orders(order_placed("o-1", ("p-burr-grinder", 2), ("p-ceramic-mug", 1)))
    after_reserve = (version_of("p-burr-grinder"), version_of("p-ceramic-mug"))
    deliver_payments(payment_failed("o-1"))
    after_release = (version_of("p-burr-grinder"), version_of("p-ceramic-mug"))
    # AND an order that cannot be served is rejected, and the seed runs again
    deliver_orders(order_placed("o-2", ("p-burr-grinder", 99)))
    client.lambda_.invoke("seed", {})
    # THEN the reservation and the release each added 1, in the same write as the level ...
    assert after_reserve == (2, 2)
    assert after_release == (3, 3)
    # AND what changed no level (a rejection, a seed finding the product) added nothing
    assert (version_of("p-burr-grinder"), version_of("p-ceramic-mug")) == (3, 3)
    assert version_of("p-espresso-beans") == 1
    # AND the item keeps the correlation id of the request that changed it last, and the
    # trace context of the delivery that did (the stream's publisher continues that trace)
    assert stock_item("p-burr-grinder")["correlation_id"] == {"S": "trace-inv-1"}
    assert parse_traceparent(stock_item("p-burr-grinder")["traceparent"]["S"]) is not None


def test_the_stream_publisher_announces_every_level_the_stock_table_took(
    inventory: LoadedService, client: Client, deliver_orders: Deliver, inventory_topic: TopicInbox
) -> None:
    # GIVEN a seeded stock (six INSERTs on the stream) and an order that reserved two products
    deliver_orders(order_placed("o-1", ("p-burr-grinder", 2), ("p-ceramic-mug", 5)))
    inventory_topic.messages()  # inventory.reserved: not what this test reads
    event = stream_event(STOCK_TABLE)
    # WHEN the stock stream's publisher runs over what the table's stream holds
    answer = publish_stock_changes(client, event)
    # THEN the batch succeeded and every level was announced, in stream order
    assert answer == {"batchItemFailures": []}
    messages = inventory_topic.messages()
    announced = [
        (
            m["body"]["data"]["product_id"],
            m["body"]["data"]["available"],
            m["body"]["data"]["stock_version"],
        )
        for m in messages
    ]
    seed = inventory.module("chalicelib.seed_data").SEED_STOCK
    assert announced[:6] == [(product, units, 1) for product, units in seed]
    assert announced[6:] == [("p-burr-grinder", 10, 2), ("p-ceramic-mug", 55, 2)]
    # AND each is an inventory.stock_changed from inventory under an id derived from the
    # product and its version, carrying the reserving request's correlation id
    reserved = messages[6]
    assert reserved["attributes"]["type"] == "inventory.stock_changed"
    assert reserved["body"]["source"] == "inventory"
    assert reserved["body"]["id"] == derived_event_id(
        "inventory.stock_changed", "p-burr-grinder", "2"
    )
    assert reserved["body"]["correlation_id"] == "trace-inv-1"
    # AND the same records read again (a retried batch) give the same events, same ids
    assert publish_stock_changes(client, event) == {"batchItemFailures": []}
    assert [m["body"]["id"] for m in inventory_topic.messages()] == [
        m["body"]["id"] for m in messages
    ]


def stock_image(product_id: str, stock: int, version: int) -> dict[str, Any]:
    return image(product_id=product_id, stock=stock, stock_version=version)


def test_a_write_that_changes_no_level_and_a_removal_announce_nothing(
    client: Client, inventory_topic: TopicInbox
) -> None:
    # GIVEN a MODIFY that left the level as it was, a REMOVE, and a MODIFY that moved it
    unchanged = stream_record(
        "MODIFY",
        "1",
        new_image={**stock_image("p-mug", 5, 3), **image(correlation_id="c-2")},
        old_image={**stock_image("p-mug", 5, 3), **image(correlation_id="c-1")},
    )
    removed = stream_record("REMOVE", "2", old_image=stock_image("p-mug", 5, 3))
    moved = stream_record(
        "MODIFY", "3", new_image=stock_image("p-mug", 4, 4), old_image=stock_image("p-mug", 5, 3)
    )
    # WHEN the publisher runs over them
    answer = publish_stock_changes(client, stream_event_of(unchanged, removed, moved))
    # THEN only the moved level is announced
    assert answer == {"batchItemFailures": []}
    assert [m["body"]["data"] for m in inventory_topic.messages()] == [
        {"product_id": "p-mug", "available": 4, "stock_version": 4}
    ]


@pytest.mark.parametrize(
    ("new_image", "old_image", "reason"),
    [
        (image(product_id="p-mug", stock=4), None, "not a stock item"),
        (image(stock=4, stock_version=2), None, "not a stock item"),
        (
            stock_image("p-mug", -1, 2),
            None,
            "stock of p-mug at version 2: available: Input should be greater than or equal to 0",
        ),
        (
            stock_image("p-mug", 4, 3),
            stock_image("p-mug", 5, 3),
            "stock of p-mug changed while its stock_version went from 3 to 3",
        ),
    ],
    ids=["no stock_version", "no product_id", "negative level", "version not grown"],
)
def test_a_record_that_can_never_be_announced_is_dead_lettered_and_the_batch_goes_on(
    client: Client,
    inventory_topic: TopicInbox,
    stock_changes_dlq: str,
    new_image: dict[str, Any],
    old_image: dict[str, Any] | None,
    reason: str,
) -> None:
    # GIVEN a batch whose first record no stock_changed can be made of, then a good one
    bad = stream_record(
        "MODIFY" if old_image else "INSERT", "1", new_image=new_image, old_image=old_image
    )
    good = stream_record("INSERT", "2", new_image=stock_image("p-jug", 7, 1))
    # WHEN the publisher runs over them
    answer = publish_stock_changes(client, stream_event_of(bad, good))
    # THEN nothing is retried, the good record is announced ...
    assert answer == {"batchItemFailures": []}
    assert [m["body"]["data"]["product_id"] for m in inventory_topic.messages()] == ["p-jug"]
    # AND the bad one waits in the dead-letter queue as it came, with the reason
    [letter] = dead_letters(stock_changes_dlq)
    assert json.loads(letter["Body"]) == bad
    assert reason in letter["MessageAttributes"][FAILURE_REASON_ATTRIBUTE]["StringValue"]


def test_a_batch_that_is_not_a_stream_batch_is_refused(client: Client) -> None:
    # GIVEN an invocation that is not a DynamoDB stream batch
    # WHEN the publisher is invoked with it  THEN it fails as a whole, saying why
    with pytest.raises(ValueError, match="Records"):
        publish_stock_changes(client, {"hello": "world"})


def test_the_template_streams_the_stock_table_into_the_publisher_with_scoped_grants() -> None:
    # GIVEN inventory's resources.json
    resources = service_resources("inventory")["Resources"]
    # THEN the stock table streams both images ...
    stream = resources["StockTable"]["Properties"]["StreamSpecification"]
    assert stream == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
    # AND the publisher reads it in order, bisecting and reporting failed records, retrying
    # a bounded number of times, then sending what is left to the dead-letter queue
    function = resources["PublishStockChanges"]
    [(_, source)] = function["Properties"]["Events"].items()
    assert source["Type"] == "DynamoDB"
    settings = source["Properties"]
    assert settings["Stream"] == {"Fn::GetAtt": ["StockTable", "StreamArn"]}
    assert settings["StartingPosition"] == "TRIM_HORIZON"
    assert settings["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert settings["BisectBatchOnFunctionError"] is True
    assert settings["MaximumRetryAttempts"] == 10
    dlq = {"Ref": "InventoryStockChangesDeadLetterQueueArn"}
    assert settings["DestinationConfig"] == {"OnFailure": {"Destination": dlq}}
    # AND the grants it needs, its own (deploy makes them its role's, which exists before the
    # mapping AWS checks against it), name exactly its stream, its topic and its dead-letter queue
    [policy] = function["Properties"]["Policies"]
    statements = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert statements["ReadStockStream"]["Resource"] == [settings["Stream"]]
    assert sorted(statements["ReadStockStream"]["Action"]) == [
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
        "dynamodb:ListStreams",
    ]
    assert statements["PublishInventoryEvents"]["Resource"] == [{"Ref": "InventoryTopicArn"}]
    assert statements["StockChangesDeadLetters"]["Resource"] == [dlq]
    assert sorted(statements["StockChangesDeadLetters"]["Action"]) == [
        "sqs:GetQueueUrl",
        "sqs:SendMessage",
    ]


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


def test_the_examples_in_stock_changes_run() -> None:
    # GIVEN the module's docstring examples  WHEN they run as doctests
    result = doctest.testmod(
        load_service("inventory").module("chalicelib.stock_changes"), report=False
    )
    # THEN there are some, and every one holds
    assert result.attempted > 0
    assert result.failed == 0
