"""A consumer's world for tests: moto's SNS, SQS and DynamoDB with the consumer's tables and
two wired queues, and helpers to shape what Lambda's SQS poller delivers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from moto import mock_aws

from lambdamesh_toolkit.contracts.events import EventEnvelope, OrderPlaced, UserCreated
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.events.bookkeeping import EVENT_TABLE_KEY, DynamoDbFailureStore
from lambdamesh_toolkit.events.consuming import EventConsumer
from lambdamesh_toolkit.events.envelope import new_event
from tests.support.sqs import subscribe_raw

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

IDEMPOTENCY_TABLE = "lambdamesh-event-idempotency"
FAILURES_TABLE = "lambdamesh-event-failures"
SERVICE = "notifications"


class SqsSpy:
    """Forwards to a real (moto) SQS client, remembering visibility changes."""

    def __init__(self, client: SQSClient) -> None:
        self.client = client
        self.visibility: dict[str, int] = {}

    def change_message_visibility_batch(self, **kwargs: Any) -> Any:
        for entry in kwargs["Entries"]:
            self.visibility[entry["ReceiptHandle"]] = entry["VisibilityTimeout"]
        return self.client.change_message_visibility_batch(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@dataclass
class Queue:
    url: str
    arn: str
    topic_arn: str


@dataclass
class World:
    """moto's SNS, SQS and DynamoDB with the consumer's tables and two wired queues."""

    sns: SNSClient
    sqs: SQSClient
    dynamodb: DynamoDBClient
    standard: Queue
    fifo: Queue
    spy: SqsSpy
    handled: list[EventEnvelope] = field(default_factory=list)

    def send_raw(self, queue: Queue, body: str, **attributes: str) -> None:
        """Put a message on the queue directly, as a misbehaving publisher could."""
        self.sqs.send_message(
            QueueUrl=queue.url,
            MessageBody=body,
            MessageAttributes={
                name: {"DataType": "String", "StringValue": value}
                for name, value in attributes.items()
            },
        )

    def receive(self, queue: Queue) -> dict[str, Any]:
        """Receive up to 10 messages and shape them as Lambda's SQS event."""
        answer = self.sqs.receive_message(
            QueueUrl=queue.url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return {"Records": [lambda_record(message, queue.arn) for message in answer["Messages"]]}

    def consumer(
        self, handlers: dict[tuple[str, int], Callable[[EventEnvelope, Any], None]], **kwargs: Any
    ) -> EventConsumer:
        options: dict[str, Any] = {
            "idempotency_table": IDEMPOTENCY_TABLE,
            "failures_table": FAILURES_TABLE,
            "fifo": False,
            "dynamodb_client": self.dynamodb,
            "sqs_client": self.spy,
            "retry_backoff_base_s": 1,
        }
        options.update(kwargs)
        return EventConsumer(SERVICE, handlers=handlers, **options)

    def failure(self, message_id: str) -> Any:
        return DynamoDbFailureStore(FAILURES_TABLE, client=self.dynamodb).get(message_id)

    def visible_count(self, queue: Queue) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=queue.url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])


def lambda_record(message: MessageTypeDef, queue_arn: str) -> dict[str, Any]:
    """One SQS message in the form Lambda's event source mapping delivers it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message["Attributes"],
        "messageAttributes": {
            name: {"stringValue": value.get("StringValue"), "dataType": value["DataType"]}
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": "us-east-1",
    }


def create_table(client: DynamoDBClient, name: str) -> None:
    client.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": EVENT_TABLE_KEY, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": EVENT_TABLE_KEY, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def wired_queue(sns: SNSClient, sqs: SQSClient, name: str, *, fifo: bool) -> Queue:
    suffix = ".fifo" if fifo else ""
    topic_arn = sns.create_topic(
        Name=f"{name}{suffix}", Attributes={"FifoTopic": "true"} if fifo else {}
    )["TopicArn"]
    url = sqs.create_queue(
        QueueName=f"{name}-{SERVICE}{suffix}",
        Attributes={"FifoQueue": "true", "VisibilityTimeout": "60"}
        if fifo
        else {"VisibilityTimeout": "60"},
    )["QueueUrl"]
    return Queue(url, subscribe_raw(sns, sqs, topic_arn, url), topic_arn)


def make_world() -> Iterator[World]:
    """The world, alive until the generator is closed."""
    with mock_aws():
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, IDEMPOTENCY_TABLE)
        create_table(dynamodb, FAILURES_TABLE)
        yield World(
            sns,
            sqs,
            dynamodb,
            standard=wired_queue(sns, sqs, "lambdamesh-users", fifo=False),
            fifo=wired_queue(sns, sqs, "lambdamesh-orders", fifo=True),
            spy=SqsSpy(sqs),
        )


def user_created(user_id: str) -> EventEnvelope:
    data = UserCreated(user_id=user_id, email=f"{user_id}@example.com", name="Ada")
    return new_event("user.created", data, source="users")


def order_placed(order_id: str) -> EventEnvelope:
    line = OrderLine(
        product_id="p-1", name="Teapot", quantity=1, unit_price_cents=100, line_total_cents=100
    )
    data = OrderPlaced(
        order_id=order_id, user_id="u-1", lines=[line], total_cents=100, currency="EUR"
    )
    return new_event("order.placed", data, source="orders")


def failed_ids(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


def message_id_of(event: dict[str, Any], user_or_order_id: str) -> str:
    for record in event["Records"]:
        if user_or_order_id in record["body"]:
            return str(record["messageId"])
    raise AssertionError(f"no record about {user_or_order_id}")
