"""The messaging topology on the embedded LocalStack: routing, FIFO order, dead-lettering.

The topology is deployed with ``lambdamesh deploy``'s own API under a stack prefix of its own,
so that its topics and queues (``<prefix>-...``) have no consumers: what a test publishes stays
in the queues for it to read.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambdamesh.deploy import DeployOptions, DeployReport, Target, deploy_all
from tests.conftest import RunningEmulator

TOPOLOGY_DIR = Path(__file__).parents[2] / "infra" / "topology"

TOPIC_OF = {
    "user.created": "users",
    "order.placed": "orders.fifo",
    "order.confirmed": "orders.fifo",
    "order.cancelled": "orders.fifo",
    "payment.processed": "payments",
    "payment.failed": "payments",
    "payment.refunded": "payments",
    "inventory.reserved": "inventory",
    "inventory.rejected": "inventory",
    "inventory.released": "inventory",
    "inventory.stock_changed": "inventory",
}
"""Every event type and the topic (name without prefix) it is published on."""

ROUTES = {
    "payments-orders.fifo": {"order.placed", "order.cancelled"},
    "inventory-orders.fifo": {"order.placed", "order.cancelled"},
    "inventory-payments": {"payment.failed"},
    "notifications-orders.fifo": {"order.confirmed", "order.cancelled"},
    "notifications-users": {"user.created"},
    "orders-outcomes": {
        "payment.processed",
        "payment.failed",
        "inventory.reserved",
        "inventory.rejected",
    },
    "catalog-inventory": {"inventory.stock_changed"},
}
"""Queue (name without prefix) → the event types it must receive, and no others."""

MAX_RECEIVE_COUNT = 5
DELIVERY_WAIT_S = 30.0
"""How long to wait for SNS to deliver to SQS before concluding a message is not coming."""


@dataclass(frozen=True)
class Topology:
    """The messaging stack deployed under a prefix of its own.

    Attributes
    ----------
    prefix
        Stack prefix, and prefix of every topic and queue name.
    report
        What deploy did.
    outputs
        The messaging stack's Outputs.
    """

    prefix: str
    report: DeployReport
    outputs: Mapping[str, str]

    def queue_url(self, emulator: RunningEmulator, name: str) -> str:
        """The URL of queue ``<prefix>-<name>``."""
        sqs = emulator.client("sqs")
        url: str = sqs.get_queue_url(QueueName=f"{self.prefix}-{name}")["QueueUrl"]
        return url

    def topic_arn(self, name: str) -> str:
        """The ARN of topic ``<prefix>-<name>``, from the stack's Outputs."""
        output = name.removesuffix(".fifo").capitalize() + "TopicArn"
        return self.outputs[output]


def deploy_topology(emulator: RunningEmulator, root: Path) -> Topology:
    """Deploy the shared and messaging stacks (no app) under a fresh prefix, as deploy does."""
    (root / "apps").mkdir()
    options = DeployOptions(
        apps_dir=root / "apps",
        shared_template=TOPOLOGY_DIR / "shared.json",
        cache_dir=root / "cache",
        state_dir=root / "state",
        stack_prefix=f"lm{uuid.uuid4().hex[:8]}",
        only=frozenset(),
    )
    report = deploy_all(Target.localstack(emulator.endpoint_url), options, progress=print)
    stack = emulator.client("cloudformation").describe_stacks(
        StackName=options.stack_name("messaging")
    )["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}
    return Topology(options.stack_prefix, report, outputs)


def delete_topology(emulator: RunningEmulator, topology: Topology) -> None:
    """Delete the stacks ``deploy_topology`` created."""
    cfn = emulator.client("cloudformation")
    for service in ("messaging", "shared"):
        cfn.delete_stack(StackName=f"{topology.prefix}-{service}")


def publish(emulator: RunningEmulator, topology: Topology, event_type: str, **extra: Any) -> str:
    """Publish an envelope of ``event_type`` on its topic, the way the toolkit's Publisher does.

    Returns the event id.
    """
    topic = TOPIC_OF[event_type]
    event_id = str(uuid.uuid4())
    envelope = {
        "id": event_id,
        "type": event_type,
        "version": 1,
        "source": "e2e",
        "correlation_id": extra.pop("correlation_id", f"corr-{event_id[:8]}"),
        "causation_id": None,
        "data": extra.pop("data", {}),
    }
    arguments: dict[str, Any] = {
        "TopicArn": topology.topic_arn(topic),
        "Message": json.dumps(envelope),
        "MessageAttributes": {
            "type": {"DataType": "String", "StringValue": event_type},
            "version": {"DataType": "String", "StringValue": "1"},
            "correlation_id": {"DataType": "String", "StringValue": envelope["correlation_id"]},
        },
    }
    if topic.endswith(".fifo"):
        arguments["MessageGroupId"] = extra.pop("group_id", "group-1")
        arguments["MessageDeduplicationId"] = event_id
    emulator.client("sns").publish(**arguments)
    return event_id


def drain(emulator: RunningEmulator, queue_url: str, expected: int) -> list[dict[str, Any]]:
    """Receive and delete until ``expected`` messages came and then one more wait finds none."""
    sqs = emulator.client("sqs")
    received: list[dict[str, Any]] = []
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while time.monotonic() < deadline:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        for message in batch:
            received.append(message)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        if not batch and len(received) >= expected:
            break
    return received


def dead_letter(emulator: RunningEmulator, queue_url: str) -> dict[str, Any]:
    """Receive the queue's one message without deleting it until SQS dead-letters it.

    Returns the last receive of it (its ``ApproximateReceiveCount`` is the count reached).
    """
    sqs = emulator.client("sqs")
    last: dict[str, Any] = {}
    deadline = time.monotonic() + DELIVERY_WAIT_S
    while time.monotonic() < deadline:
        batch = sqs.receive_message(
            QueueUrl=queue_url,
            WaitTimeSeconds=1,
            VisibilityTimeout=0,
            MessageSystemAttributeNames=["All"],
        ).get("Messages", [])
        if batch:
            last = batch[0]
        elif last:
            return last  # it was there and is gone: moved on this receive
    raise AssertionError(f"no message was dead-lettered from {queue_url}: last receive {last}")


def depth(emulator: RunningEmulator, queue_url: str) -> int:
    """``ApproximateNumberOfMessages`` plus those in flight."""
    attributes = emulator.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture(scope="module")
def topology(
    emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """The topology under a prefix of its own, deleted afterwards."""
    deployed = deploy_topology(emulator, tmp_path_factory.mktemp("topology"))
    yield deployed
    delete_topology(emulator, deployed)


def test_deploy_creates_the_shared_then_the_messaging_stack(topology: Topology) -> None:
    # GIVEN nothing deployed under the prefix  WHEN deploy runs without apps (fixture)
    # THEN the shared stack and then the messaging stack are created
    assert [(s.service, s.action) for s in topology.report.services] == [
        ("shared", "created"),
        ("messaging", "created"),
    ]
    # AND the outputs name every topic, the consumers' failures table and every queue with its DLQ
    assert topology.outputs["OrdersTopicArn"].endswith(f":{topology.prefix}-orders.fifo")
    assert "EventFailuresTable" in topology.outputs
    assert topology.outputs["OrdersOutcomesDeadLetterQueueUrl"].endswith(
        f"/{topology.prefix}-orders-outcomes-dlq"
    )


def test_every_event_type_reaches_exactly_the_queues_subscribed_to_it(
    emulator: RunningEmulator, topology: Topology
) -> None:
    # GIVEN one event of every type, published on its topic
    for event_type in TOPIC_OF:
        publish(emulator, topology, event_type)
    # WHEN every queue is drained
    arrived = {
        queue: sorted(
            message["MessageAttributes"]["type"]["StringValue"]
            for message in drain(emulator, topology.queue_url(emulator, queue), len(types))
        )
        for queue, types in ROUTES.items()
    }
    # THEN each queue got exactly the types its filter policy names, once each, raw
    assert arrived == {queue: sorted(types) for queue, types in ROUTES.items()}


def test_raw_delivery_carries_the_envelope_and_the_correlation_id(
    emulator: RunningEmulator, topology: Topology
) -> None:
    # GIVEN a user.created event with a known correlation id
    event_id = publish(emulator, topology, "user.created", correlation_id="corr-raw")
    # WHEN the notifications queue receives it
    [message] = drain(emulator, topology.queue_url(emulator, "notifications-users"), 1)
    # THEN the body is the envelope itself (no SNS wrapper) and the attributes came along
    assert json.loads(message["Body"])["id"] == event_id
    assert message["MessageAttributes"]["correlation_id"]["StringValue"] == "corr-raw"


def test_the_fifo_topic_keeps_order_within_each_group(
    emulator: RunningEmulator, topology: Topology
) -> None:
    # GIVEN order.placed events for two orders, interleaved
    published: dict[str, list[str]] = {"order-a": [], "order-b": []}
    for index in range(6):
        group = "order-a" if index % 2 == 0 else "order-b"
        published[group].append(publish(emulator, topology, "order.placed", group_id=group))
    # WHEN the payments queue delivers them
    received = drain(emulator, topology.queue_url(emulator, "payments-orders.fifo"), 6)
    # THEN within each group they arrive in publish order
    arrived: dict[str, list[str]] = {"order-a": [], "order-b": []}
    for message in received:
        arrived[message["Attributes"]["MessageGroupId"]].append(json.loads(message["Body"])["id"])
    assert arrived == published


def test_a_message_received_five_times_without_delete_lands_in_the_dlq(
    emulator: RunningEmulator, topology: Topology
) -> None:
    # GIVEN an inventory.rejected event in the orders' outcome queue
    event_id = publish(emulator, topology, "inventory.rejected")
    source = topology.queue_url(emulator, "orders-outcomes")
    # WHEN it is received again and again and never deleted
    last = dead_letter(emulator, source)
    # THEN after maxReceiveCount receives it sits in the dead-letter queue, the same message
    assert int(last["Attributes"]["ApproximateReceiveCount"]) == MAX_RECEIVE_COUNT
    dlq = topology.queue_url(emulator, "orders-outcomes-dlq")
    [moved] = emulator.client("sqs").receive_message(
        QueueUrl=dlq, VisibilityTimeout=0, MessageSystemAttributeNames=["All"]
    )["Messages"]
    assert moved["MessageId"] == last["MessageId"]
    assert json.loads(moved["Body"])["id"] == event_id
    assert depth(emulator, source) == 0
