"""The order-shaped floor: no-op functions wired with the hops an order makes, on the emulator.

What the saga benchmark holds the real system against. An order of the real system goes

1. client → API Gateway → orders (``POST /orders``) → HTTP through API Gateway → users, and an
   RPC (Lambda ``Invoke``) of the catalog; ``order.placed`` appended to orders' event store;
2. event store stream → ``publish_order_events`` → the orders FIFO topic → the FIFO queues of
   payments and inventory (the stream's other consumer, ``project_orders``, keeps the read
   model);
3. payments and inventory → their outcomes to their standard topics → orders' outcomes queue →
   ``handle_outcomes``, which appends each (``order.payment_recorded``,
   ``order.stock_recorded``) and, on the second, ``order.confirmed``; the stream publishes
   ``order.confirmed`` to the FIFO topic again (the records stay in the store: no other service
   acts on them);
4. ``order.confirmed`` → notifications' FIFO queue → a mail through SES.

The floor makes the same hops with functions that do nothing else: ``floor-users`` answers
``200 {}``; ``floor-catalog`` answers one RPC result; ``floor-orders`` GETs the users API over
HTTP, invokes ``floor-catalog`` once and puts an ``order.placed`` item (a conditional
``PutItem``) into a table whose ``NEW_IMAGE`` stream feeds ``floor-publisher`` (one SNS FIFO
publish per inserted item but the outcomes' records, group = order id, deduplication id = event
id) and the no-op
``floor-projector``; ``floor-payments`` and ``floor-inventory`` publish one outcome each;
``floor-outcomes`` appends the outcome and counts it with a conditional update of the order's
state item, and the one that makes the count two appends ``order.confirmed``;
``floor-notifications`` sends one mail through SES per confirmed order and marks the state item
``mailed``: an order is done when it has that mark.

Settings come from the real templates, read when the floor is built, so that they cannot drift:
topics, queues and subscriptions (FIFO, deduplication, visibility timeout, raw delivery, filter
policies) from ``infra/topology/messaging.json``, the stream's view type and both stream
mappings' settings from ``functions/orders/resources.json``; the SQS mappings take what every
real consumer declares (``on_sqs_message(batch_size=10, maximum_batching_window_in_seconds=0)``)
plus ``ReportBatchItemFailures``, which deploy adds. Function timeouts are the real functions'.
Left out, as they change nothing on an order's way: dead-letter queues of the queues (the
stream mappings' on-failure queue is there, as their settings name one), queue policies, IAM.

Everything is made through AWS APIs (boto3) and removed afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from lambdamesh.deploy.template import REPORT_BATCH_ITEM_FAILURES
from lambdamesh.emulator.paths import ProjectPaths
from tests.benchmarks.test_event_source_speed import wait_enabled
from tests.conftest import RunningEmulator
from tests.e2e.lambda_support import (
    create_function,
    create_proxy_api,
    stage_url,
    unique_name,
)
from tests.support.sqs import queue_arn

STAGE = "api"
"""The stage of both REST APIs (Chalice's ``api_gateway_stage``)."""

SQS_MAPPING: dict[str, Any] = {
    "BatchSize": 10,
    "MaximumBatchingWindowInSeconds": 0,
    "FunctionResponseTypes": [REPORT_BATCH_ITEM_FAILURES],
}
"""Every real SQS consumer's mapping: its ``on_sqs_message`` arguments, and the partial batch
responses deploy adds (``lambdamesh.deploy.template.add_partial_batch_responses``)."""

TOPICS = ("OrdersTopic", "PaymentsTopic", "InventoryTopic")
"""The real topics (``messaging.json``) an order goes through; the floor has a copy of each."""

QUEUES = {
    "PaymentsOrdersQueue": "payments",
    "InventoryOrdersQueue": "inventory",
    "OrdersOutcomesQueue": "outcomes",
    "NotificationsOrdersQueue": "notifications",
}
"""The real queues an order goes through → the floor function that reads the floor's copy."""

STREAM_CONSUMERS = {"PublishOrderEvents": "publisher", "ProjectOrders": "projector"}
"""The real functions on orders' event store stream (``resources.json``) → the floor's."""

FUNCTIONS = {
    "users": ("users", 10),
    "catalog": ("catalog", 5),
    "orders": ("orders", 30),
    "publisher": ("publish", 30),
    "projector": ("project", 30),
    "payments": ("outcome", 10),
    "inventory": ("outcome", 10),
    "outcomes": ("outcomes", 10),
    "notifications": ("notify", 10),
}
"""Floor function → its handler in :data:`SOURCE` and its timeout (the real function's, s)."""

OUTCOMES = {
    "payments": ("PaymentsTopic", "payment.processed"),
    "inventory": ("InventoryTopic", "inventory.reserved"),
}
"""What ``floor-payments`` and ``floor-inventory`` publish, and to which topic."""

SOURCE = """
# The order-shaped floor's functions: an order's hops, and no work of their own.
import base64
import json
import os
import traceback
import uuid
from datetime import UTC, datetime
from functools import cache
from urllib.parse import quote

import boto3
import urllib3

HTTP = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2.0, read=10.0))
RECORDED = {
    "payment.processed": "order.payment_recorded",
    "inventory.reserved": "order.stock_recorded",
}


@cache
def client(name):
    return boto3.client(name)


def now():
    return datetime.now(UTC).isoformat()


def type_attribute(event_type):
    return {"type": {"DataType": "String", "StringValue": event_type}}


def append(order_id, event_type, event_id, at=None):
    # An event appended to the order's stream, once: a repeat changes nothing.
    dynamodb = client("dynamodb")
    try:
        dynamodb.put_item(
            TableName=os.environ["EVENTS_TABLE"],
            Item={
                "order_id": {"S": order_id},
                "type": {"S": event_type},
                "id": {"S": event_id},
                "at": {"S": at or now()},
            },
            ConditionExpression="attribute_not_exists(order_id)",
        )
    except dynamodb.exceptions.ConditionalCheckFailedException:
        pass


def each(event, handle, identifier):
    # Every record in order; from the first that fails on, all are reported failed (what a
    # stream or a FIFO queue needs, and right for a standard queue too).
    records = event["Records"]
    for index, record in enumerate(records):
        try:
            handle(record)
        except Exception:
            traceback.print_exc()
            return {
                "batchItemFailures": [
                    {"itemIdentifier": identifier(later)} for later in records[index:]
                ]
            }
    return {"batchItemFailures": []}


def message_id(record):
    return record["messageId"]


def users(event, context):
    # GET /users/{id}: every user exists.
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}


def catalog(event, context):
    # RPC GetProduct: one product.
    product_id = event["payload"]["product_id"]
    product = {"id": product_id, "name": "Floor", "price_cents": 450, "currency": "EUR"}
    return {"ok": True, "result": product}


def orders(event, context):
    # POST /orders: the user checked over HTTP, each item priced by RPC, order.placed appended.
    body = event.get("body") or "{}"
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body)
    request = json.loads(body)
    user_url = os.environ["USERS_API_URL"] + "users/" + quote(request["user_id"], safe="")
    answer = HTTP.request("GET", user_url)
    if answer.status != 200:
        raise RuntimeError(f"users answered HTTP {answer.status}")
    for item in request["items"]:
        called = client("lambda").invoke(
            FunctionName=os.environ["CATALOG_FUNCTION"],
            Payload=json.dumps(
                {
                    "method": "GetProduct",
                    "version": 1,
                    "correlation_id": "floor",
                    "payload": {"product_id": item["product_id"]},
                }
            ),
        )
        result = json.loads(called["Payload"].read())
        if "FunctionError" in called or not result.get("ok"):
            raise RuntimeError(f"catalog answered {result}")
    order_id = str(uuid.uuid4())
    created_at = now()
    append(order_id, "order.placed", str(uuid.uuid4()), created_at)
    return {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"id": order_id, "created_at": created_at}),
    }


def publish(event, context):
    # The events table's stream: every appended event published to the orders FIFO topic but
    # the outcomes' records, which orders keeps private (chalicelib/wiring.PRIVATE_EVENT_TYPES).
    def handle(record):
        if record["eventName"] != "INSERT":
            return
        image = record["dynamodb"]["NewImage"]
        fields = {name: image[name]["S"] for name in ("id", "type", "order_id")}
        if fields["type"] in RECORDED.values():
            return
        client("sns").publish(
            TopicArn=os.environ["ORDERS_TOPIC_ARN"],
            Message=json.dumps(fields),
            MessageAttributes=type_attribute(fields["type"]),
            MessageGroupId=fields["order_id"],
            MessageDeduplicationId=fields["id"],
        )

    return each(event, handle, lambda record: record["dynamodb"]["SequenceNumber"])


def project(event, context):
    # The stream's second consumer (the real one keeps the read model).
    return {"batchItemFailures": []}


def outcome(event, context):
    # order.placed: one outcome published (payment.processed, inventory.reserved).
    def handle(record):
        placed = json.loads(record["body"])
        if placed["type"] != "order.placed":
            return
        kind = os.environ["OUTCOME_TYPE"]
        client("sns").publish(
            TopicArn=os.environ["OUTCOME_TOPIC_ARN"],
            Message=json.dumps(
                {"id": str(uuid.uuid4()), "type": kind, "order_id": placed["order_id"]}
            ),
            MessageAttributes=type_attribute(kind),
        )

    return each(event, handle, message_id)


def outcomes(event, context):
    # An outcome appended and counted; the second of an order appends order.confirmed.
    def handle(record):
        taken = json.loads(record["body"])
        order_id = taken["order_id"]
        append(order_id, RECORDED[taken["type"]], taken["id"])
        dynamodb = client("dynamodb")
        try:
            counted = dynamodb.update_item(
                TableName=os.environ["STATE_TABLE"],
                Key={"id": {"S": order_id}},
                UpdateExpression="SET #outcome = :id ADD #count :one",
                ConditionExpression="attribute_not_exists(#outcome)",
                ExpressionAttributeNames={
                    "#outcome": taken["type"].replace(".", "_"),
                    "#count": "outcomes",
                },
                ExpressionAttributeValues={":id": {"S": taken["id"]}, ":one": {"N": "1"}},
                ReturnValues="UPDATED_NEW",
            )
        except dynamodb.exceptions.ConditionalCheckFailedException:
            return  # counted before: a repeat delivery
        if counted["Attributes"]["outcomes"]["N"] == "2":
            append(order_id, "order.confirmed", str(uuid.uuid4()))

    return each(event, handle, message_id)


def notify(event, context):
    # order.confirmed: one mail through SES, then the order marked mailed.
    def handle(record):
        decided = json.loads(record["body"])
        if decided["type"] != "order.confirmed":
            return
        client("ses").send_email(
            Source=os.environ["SENDER"],
            Destination={"ToAddresses": [os.environ["RECIPIENT"]]},
            Message={
                "Subject": {"Data": "Your order is confirmed", "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": "Order " + decided["order_id"], "Charset": "UTF-8"}
                },
            },
        )
        client("dynamodb").update_item(
            TableName=os.environ["STATE_TABLE"],
            Key={"id": {"S": decided["order_id"]}},
            UpdateExpression="SET #mailed = :at",
            ExpressionAttributeNames={"#mailed": "mailed"},
            ExpressionAttributeValues={":at": {"S": now()}},
        )

    return each(event, handle, message_id)
"""

DONE_ATTRIBUTE = "mailed"
"""The state item's attribute that ``floor-notifications`` sets once an order's mail is sent."""


@dataclass(frozen=True)
class OrderFloor:
    """The floor, built and ready.

    Attributes
    ----------
    orders_url
        ``POST`` orders here (``{"user_id": ..., "items": [{"product_id": ...}]}``); the answer
        is ``201 {"id", "created_at"}``.
    state_table
        Keyed by ``id`` (the order id); an order is done when its item has
        :data:`DONE_ATTRIBUTE`.
    """

    orders_url: str
    state_table: str


def _template(relative: str) -> dict[str, Any]:
    """A template of the project, parsed (``relative`` to the project's root)."""
    template: dict[str, Any] = json.loads((ProjectPaths.discover().root / relative).read_text())
    return template


def _api_attributes(properties: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """CloudFormation properties as the API's string attributes (``true``, policies as JSON)."""
    attributes: dict[str, str] = {}
    for name in names:
        if name not in properties:
            continue
        value = properties[name]
        if isinstance(value, bool):
            attributes[name] = "true" if value else "false"
        elif isinstance(value, dict | list):
            attributes[name] = json.dumps(value)
        else:
            attributes[name] = str(value)
    return attributes


def _stream_mapping(
    orders_template: dict[str, Any], function: str, on_failure_arn: str
) -> dict[str, Any]:
    """The settings of the real function's DynamoDB stream event source, for the floor's."""
    events = orders_template["Resources"][function]["Properties"]["Events"]
    (source,) = [event["Properties"] for event in events.values() if event["Type"] == "DynamoDB"]
    settings = {name: value for name, value in source.items() if name != "Stream"}
    if "DestinationConfig" in settings:
        settings["DestinationConfig"] = {"OnFailure": {"Destination": on_failure_arn}}
    return settings


class _Builder:
    """Makes the floor's resources, each with its removal registered on ``cleanup``."""

    def __init__(self, emulator: RunningEmulator, cleanup: ExitStack) -> None:
        self.emulator = emulator
        self.cleanup = cleanup
        self.lambda_client = emulator.client("lambda")
        self.dynamodb = emulator.client("dynamodb")
        self.sns = emulator.client("sns")
        self.sqs = emulator.client("sqs")

    def table(self, prefix: str, key: list[str], stream: dict[str, Any] | None = None) -> str:
        """A table with string key attributes ``key`` (hash, then range)."""
        name = unique_name(prefix)
        extra = {"StreamSpecification": stream} if stream else {}
        self.dynamodb.create_table(
            TableName=name,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": part, "AttributeType": "S"} for part in key],
            KeySchema=[
                {"AttributeName": part, "KeyType": kind}
                for part, kind in zip(key, ("HASH", "RANGE"), strict=False)
            ],
            **extra,
        )
        self.cleanup.callback(self.dynamodb.delete_table, TableName=name)
        self.dynamodb.get_waiter("table_exists").wait(TableName=name)
        return name

    def topic(self, properties: dict[str, Any], prefix: str) -> str:
        """A topic with the real one's FIFO and deduplication attributes: its ARN."""
        attributes = _api_attributes(properties, ("FifoTopic", "ContentBasedDeduplication"))
        suffix = ".fifo" if attributes.get("FifoTopic") == "true" else ""
        arn: str = self.sns.create_topic(Name=unique_name(prefix) + suffix, Attributes=attributes)[
            "TopicArn"
        ]
        self.cleanup.callback(self.sns.delete_topic, TopicArn=arn)
        return arn

    def queue(self, properties: dict[str, Any], prefix: str) -> tuple[str, str]:
        """A queue with the real one's attributes: its URL and ARN."""
        names = ("FifoQueue", "ContentBasedDeduplication", "VisibilityTimeout")
        attributes = _api_attributes(properties, names)
        suffix = ".fifo" if attributes.get("FifoQueue") == "true" else ""
        url: str = self.sqs.create_queue(
            QueueName=unique_name(prefix) + suffix, Attributes=attributes
        )["QueueUrl"]
        self.cleanup.callback(self.sqs.delete_queue, QueueUrl=url)
        return url, queue_arn(self.sqs, url)

    def subscribe(self, topic_arn: str, queue: str, properties: dict[str, Any]) -> None:
        """Subscribe the queue (its ARN) to the topic as the real subscription is made."""
        names = ("RawMessageDelivery", "FilterPolicyScope", "FilterPolicy")
        arn = self.sns.subscribe(
            TopicArn=topic_arn,
            Protocol="sqs",
            Endpoint=queue,
            Attributes=_api_attributes(properties, names),
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
        self.cleanup.callback(self.sns.unsubscribe, SubscriptionArn=arn)

    def function(self, role: str, environment: dict[str, str] | None = None) -> str:
        """The floor function of ``role`` (:data:`FUNCTIONS`), active: its name."""
        handler, timeout = FUNCTIONS[role]
        name = create_function(
            self.lambda_client,
            SOURCE,
            name=unique_name(f"floor-{role}"),
            handler=f"app.{handler}",
            timeout=timeout,
            environment=environment,
        )
        self.cleanup.callback(self.lambda_client.delete_function, FunctionName=name)
        return name

    def api(self, function: str) -> str:
        """A REST API proxying every request to ``function``: its stage's URL."""
        apigateway = self.emulator.client("apigateway")
        api_id = create_proxy_api(self.lambda_client, apigateway, function, stage=STAGE)
        self.cleanup.callback(apigateway.delete_rest_api, restApiId=api_id)
        return stage_url(self.emulator.endpoint_url, api_id, STAGE)

    def mapping(self, function: str, source_arn: str, settings: dict[str, Any]) -> None:
        """An event source mapping of ``source_arn`` to ``function``, enabled."""
        uuid = self.lambda_client.create_event_source_mapping(
            FunctionName=function, EventSourceArn=source_arn, **settings
        )["UUID"]
        self.cleanup.callback(self.lambda_client.delete_event_source_mapping, UUID=uuid)
        wait_enabled(self.lambda_client, uuid)

    def mail_sender(self) -> str:
        """A verified SES sender address."""
        ses = self.emulator.client("ses")
        sender = f"{unique_name('floor')}@example.org"
        ses.verify_email_identity(EmailAddress=sender)
        self.cleanup.callback(ses.delete_identity, Identity=sender)
        return sender


@contextmanager
def order_floor(emulator: RunningEmulator) -> Iterator[OrderFloor]:
    """Build the floor on ``emulator``; remove all of it on leaving (also when building fails).

    Functions are active and every event source mapping is enabled when it is handed out; no
    order has gone through it yet (warm it with one).
    """
    messaging = _template("infra/topology/messaging.json")["Resources"]
    orders_template = _template("functions/orders/resources.json")
    with ExitStack() as cleanup:
        build = _Builder(emulator, cleanup)
        events_table_properties = orders_template["Resources"]["OrderEventsTable"]["Properties"]
        stream = {"StreamEnabled": True, **events_table_properties["StreamSpecification"]}
        events_table = build.table("floor-events", ["order_id", "type"], stream)
        state_table = build.table("floor-state", ["id"])
        stream_arn = build.dynamodb.describe_table(TableName=events_table)["Table"][
            "LatestStreamArn"
        ]
        topics = {
            name: build.topic(messaging[name]["Properties"], f"floor-{name}") for name in TOPICS
        }
        queues = {
            name: build.queue(messaging[name]["Properties"], f"floor-{role}")
            for name, role in QUEUES.items()
        }
        for resource in messaging.values():
            properties = resource.get("Properties", {})
            if resource["Type"] != "AWS::SNS::Subscription":
                continue
            topic = properties["TopicArn"]["Ref"]
            queue = properties["Endpoint"]["Fn::GetAtt"][0]
            if topic in topics and queue in queues:
                build.subscribe(topics[topic], queues[queue][1], properties)
        dead_letters = messaging["OrderEventsDeadLetterQueue"]["Properties"]
        _, on_failure_arn = build.queue(dead_letters, "floor-events-dlq")

        users_url = build.api(build.function("users"))
        catalog_function = build.function("catalog")
        environment = {
            "USERS_API_URL": users_url,
            "CATALOG_FUNCTION": catalog_function,
            "EVENTS_TABLE": events_table,
            "STATE_TABLE": state_table,
            "ORDERS_TOPIC_ARN": topics["OrdersTopic"],
            "SENDER": build.mail_sender(),
            "RECIPIENT": "floor-customer@example.org",
        }
        functions = {"orders": build.function("orders", environment)}
        for role in ("publisher", "projector", "outcomes", "notifications"):
            functions[role] = build.function(role, environment)
        for role, (topic, outcome) in OUTCOMES.items():
            outcome_environment = {"OUTCOME_TOPIC_ARN": topics[topic], "OUTCOME_TYPE": outcome}
            functions[role] = build.function(role, {**environment, **outcome_environment})
        orders_url = build.api(functions["orders"]) + "orders"

        for real, role in STREAM_CONSUMERS.items():
            settings = _stream_mapping(orders_template, real, on_failure_arn)
            build.mapping(functions[role], stream_arn, settings)
        for name, role in QUEUES.items():
            build.mapping(functions[role], queues[name][1], SQS_MAPPING)
        yield OrderFloor(orders_url, state_table)
