"""Fixtures to run the service apps in-process, under moto (loading: ``service_loader``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh_toolkit.contracts.events import EventEnvelope
from tests.support.dynamodb_streams import forget_positions
from tests.support.fake_aws import use_fake_aws
from tests.support.sqs import subscribe_raw
from tests.unit.services.service_loader import (
    LoadedService,
    create_tables,
    function_environment,
    load_service,
    service_resources,
)

ServiceFactory = Callable[..., LoadedService]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An in-process AWS (moto) with fake credentials; nothing leaves the process."""
    use_fake_aws(monkeypatch, AWS_SESSION_TOKEN="testing")
    with mock_aws():
        yield


@pytest.fixture
def deployed_service(aws: None, monkeypatch: pytest.MonkeyPatch) -> ServiceFactory:
    """Create a service's tables and environment under moto, then load its app.

    Call it as ``deployed_service("orders", UsersApiUrl="http://users.test")``: keyword
    arguments resolve the fragment's ``Parameters`` (its dependencies).
    """

    def deploy(name: str, **parameters: str) -> LoadedService:
        resources = service_resources(name)
        tables = create_tables(resources, prefix=f"test-{name}")
        environment = function_environment(resources, {**tables, **parameters})
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)
        return load_service(name)

    return deploy


# --- events: the messaging stack's tables, and topics whose messages a test can read ---

EVENT_TABLE_KEY_SCHEMA: dict[str, Any] = {
    "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
    "BillingMode": "PAY_PER_REQUEST",
}


@pytest.fixture
def event_tables(aws: None) -> dict[str, str]:
    """The messaging stack's ``EventFailuresTable`` under moto.

    Returns the parameters a consumer's fragment takes, by name.
    """
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    names = {"EventFailuresTable": "test-event-failures"}
    for name in names.values():
        dynamodb.create_table(TableName=name, **EVENT_TABLE_KEY_SCHEMA)
    return names


@dataclass(frozen=True)
class TopicInbox:
    """An SNS topic with an SQS queue subscribed to it (raw delivery): what was published.

    Attributes
    ----------
    topic_arn
        The topic (FIFO when its name ends in ``.fifo``; then the queue is FIFO too).
    queue_url
        The queue that receives everything published.
    """

    topic_arn: str
    queue_url: str

    def messages(self) -> list[dict[str, Any]]:
        """Every message delivered so far (received and deleted), in delivery order.

        Each is ``{"body": <parsed JSON>, "attributes": {name: string value},
        "group_id": ..., "deduplication_id": ...}`` (the last two ``None`` on a standard
        topic).
        """
        sqs = boto3.client("sqs", region_name="us-east-1")
        found: list[dict[str, Any]] = []
        while True:
            answer = sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            )
            batch = answer.get("Messages", [])
            if not batch:
                return found
            for message in batch:
                system = message.get("Attributes", {})
                found.append(
                    {
                        "body": json.loads(message["Body"]),
                        "attributes": {
                            name: value["StringValue"]
                            for name, value in message.get("MessageAttributes", {}).items()
                        },
                        "group_id": system.get("MessageGroupId"),
                        "deduplication_id": system.get("MessageDeduplicationId"),
                    }
                )
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


TopicFactory = Callable[[str], TopicInbox]


@pytest.fixture
def topic_inbox(aws: None) -> TopicFactory:
    """Create a topic by name (``lambdamesh-orders.fifo``) with a queue capturing its messages."""

    def create(name: str) -> TopicInbox:
        sns = boto3.client("sns", region_name="us-east-1")
        sqs = boto3.client("sqs", region_name="us-east-1")
        fifo = name.endswith(".fifo")
        fifo_attributes = {"FifoTopic": "true"} if fifo else {}
        topic_arn = sns.create_topic(Name=name, Attributes=fifo_attributes)["TopicArn"]
        queue_name = f"{name.removesuffix('.fifo')}-inbox{'.fifo' if fifo else ''}"
        if fifo:
            queue = sqs.create_queue(QueueName=queue_name, Attributes={"FifoQueue": "true"})
        else:
            queue = sqs.create_queue(QueueName=queue_name)
        queue_url = queue["QueueUrl"]
        subscribe_raw(sns, sqs, topic_arn, queue_url)
        return TopicInbox(topic_arn=topic_arn, queue_url=queue_url)

    return create


# --- events: SQS batches as Lambda hands them to a consumer ----------------------------

TEST_ACCOUNT_ID = "123456789012"


def sqs_event_of(
    queue_name: str, *envelopes: EventEnvelope, receive_count: int = 1
) -> dict[str, Any]:
    """The Lambda SQS event delivering ``envelopes`` (raw delivery) from ``queue_name``.

    Like ``chalice.test``'s ``generate_sqs_event``, with what a consumer reads besides the
    body: a message id per record (the same for a redelivery of the same envelope and
    position), the receive count, the ``type`` / ``correlation_id`` message attributes,
    and on a FIFO queue the group (the order id, else the event id).
    """
    fifo = queue_name.endswith(".fifo")
    records: list[dict[str, Any]] = []
    for position, envelope in enumerate(envelopes):
        attributes = {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": "1767225600000",
            "SenderId": "AIDATEST",
            "ApproximateFirstReceiveTimestamp": "1767225600001",
        }
        if fifo:
            attributes["MessageGroupId"] = str(envelope.data.get("order_id", envelope.id))
            attributes["MessageDeduplicationId"] = envelope.id
            attributes["SequenceNumber"] = str(position + 1)
        records.append(
            {
                "messageId": f"msg-{position}-{envelope.id}",
                "receiptHandle": f"handle-{position}-{envelope.id}",
                "body": envelope.model_dump_json(),
                "attributes": attributes,
                "messageAttributes": {
                    "type": {"stringValue": envelope.type, "dataType": "String"},
                    "correlation_id": {
                        "stringValue": envelope.correlation_id,
                        "dataType": "String",
                    },
                },
                "md5OfBody": "0" * 32,
                "eventSource": "aws:sqs",
                "eventSourceARN": f"arn:aws:sqs:us-east-1:{TEST_ACCOUNT_ID}:{queue_name}",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


@pytest.fixture
def orders_topic(topic_inbox: TopicFactory) -> TopicInbox:
    """The orders FIFO topic, with a queue capturing what orders publish."""
    return topic_inbox("lambdamesh-orders.fifo")


ORDER_EVENTS_DLQ = "lambdamesh-order-events-dlq"


@pytest.fixture
def order_events_dlq(aws: None) -> str:
    """The queue where the orders' stream functions put records they cannot handle (URL)."""
    forget_positions()  # moto starts afresh: so do the streams' read positions
    queue_url: str = boto3.client("sqs", region_name="us-east-1").create_queue(
        QueueName=ORDER_EVENTS_DLQ
    )["QueueUrl"]
    return queue_url


@pytest.fixture
def orders(
    deployed_service: ServiceFactory,
    orders_topic: TopicInbox,
    event_tables: dict[str, str],
    order_events_dlq: str,
) -> LoadedService:
    """The orders service with its tables, its topic and test values for its dependencies."""
    return deployed_service(
        "orders",
        UsersApiUrl="http://users.test/api",
        CatalogFunctionName="lambdamesh-catalog-dev-rpc",
        CircuitBreakerTable="breaker",
        OrdersTopicArn=orders_topic.topic_arn,
        OrderEventsDeadLetterQueueArn=f"arn:aws:sqs:us-east-1:{TEST_ACCOUNT_ID}:{ORDER_EVENTS_DLQ}",
        **event_tables,
    )
