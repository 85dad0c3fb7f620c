"""``lambdamesh dlq`` run as a command against the embedded LocalStack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RunningEmulator
from tests.e2e.cli_support import run_lambdamesh
from tests.e2e.test_messaging_topology import (
    Topology,
    dead_letter,
    delete_topology,
    deploy_topology,
    depth,
    drain,
    publish,
)


@dataclass(frozen=True)
class DeadLetter:
    """A message dead-lettered for the test.

    Attributes
    ----------
    message_id
        Its SQS message id.
    event_id
        The id of the event it carries.
    correlation_id
        Its correlation id.
    """

    message_id: str
    event_id: str
    correlation_id: str


@pytest.fixture(scope="module")
def topology(
    emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """The messaging topology under a prefix of its own, deleted afterwards."""
    deployed = deploy_topology(emulator, tmp_path_factory.mktemp("dlq-cli"))
    yield deployed
    delete_topology(emulator, deployed)


def make_dead_letter(
    emulator: RunningEmulator, topology: Topology, event_type: str, queue: str, **extra: Any
) -> DeadLetter:
    """Publish an event and let ``queue`` dead-letter it, as a failing consumer would."""
    correlation_id = f"corr-{event_type}"
    event_id = publish(emulator, topology, event_type, correlation_id=correlation_id, **extra)
    last = dead_letter(emulator, topology.queue_url(emulator, queue))
    return DeadLetter(last["MessageId"], event_id, correlation_id)


def lambdamesh(emulator: RunningEmulator, topology: Topology, *args: str) -> str:
    """Run ``lambdamesh dlq ARGS`` against the emulator and the topology's prefix; its output."""
    return run_lambdamesh(emulator, "dlq", *args, "--stack-prefix", topology.prefix)


@pytest.fixture(scope="module")
def failed_outcome(emulator: RunningEmulator, topology: Topology) -> DeadLetter:
    """A payment.failed event dead-lettered by the orders' outcome queue, its failure recorded.

    The failure record is written the way the toolkit's consumer writes it, keyed by the SQS
    message id, which the move to the dead-letter queue keeps.
    """
    letter = make_dead_letter(emulator, topology, "payment.failed", "orders-outcomes")
    emulator.client("dynamodb").put_item(
        TableName=topology.outputs["EventFailuresTable"],
        Item={
            "id": {"S": letter.message_id},
            "service": {"S": "orders"},
            "queue": {"S": f"{topology.prefix}-orders-outcomes"},
            "reason": {"S": "KeyError: 'order_id'"},
            "event_type": {"S": "payment.failed"},
            "correlation_id": {"S": letter.correlation_id},
            "attempts": {"N": "5"},
            "at": {"S": "2026-11-23T12:00:00+00:00"},
        },
    )
    return letter


MESSAGING_DEAD_LETTER_QUEUES = [
    str(resource["Properties"]["QueueName"]["Fn::Sub"]).removeprefix("${NamePrefix}")
    for resource in json.loads(
        (Path(__file__).parents[2] / "infra" / "topology" / "messaging.json").read_text()
    )["Resources"].values()
    if resource["Type"] == "AWS::SQS::Queue"
    and "-dlq" in str(resource["Properties"]["QueueName"]["Fn::Sub"])
]
"""The dead-letter queues the messaging stack declares (names after the prefix)."""


def test_list_shows_every_dead_letter_queue_with_its_depth(
    emulator: RunningEmulator, topology: Topology, failed_outcome: DeadLetter
) -> None:
    # GIVEN one message dead-lettered from the orders' outcome queue
    # WHEN the dead-letter queues are listed
    listed = json.loads(lambdamesh(emulator, topology, "list", "--json"))
    # THEN every dead-letter queue of the messaging stack is there, that one holding the
    # message and naming its source queue; those of the stream functions serve no queue
    by_name = {queue["name"]: queue for queue in listed}
    assert sorted(by_name) == sorted(
        f"{topology.prefix}{name}" for name in MESSAGING_DEAD_LETTER_QUEUES
    )
    assert by_name[f"{topology.prefix}-order-events-dlq"]["sources"] == []
    outcomes = by_name[f"{topology.prefix}-orders-outcomes-dlq"]
    assert outcomes["messages"] == 1
    assert outcomes["sources"] == [f"{topology.prefix}-orders-outcomes"]
    # AND the text form shows the same depth
    text = lambdamesh(emulator, topology, "list")
    assert any(
        line.split()[:2] == [f"{topology.prefix}-orders-outcomes-dlq", "1"]
        for line in text.splitlines()
    )


def test_show_gives_type_correlation_id_and_last_error_without_consuming(
    emulator: RunningEmulator, topology: Topology, failed_outcome: DeadLetter
) -> None:
    # GIVEN the dead-lettered payment.failed event and its recorded failure
    # WHEN its queue is shown
    shown = json.loads(lambdamesh(emulator, topology, "show", "orders-outcomes", "--json"))
    # THEN the message is described from its attributes, body and failure record
    [message] = shown["messages"]
    assert message["message_id"] == failed_outcome.message_id
    assert message["event_type"] == "payment.failed"
    assert message["event_id"] == failed_outcome.event_id
    assert message["correlation_id"] == failed_outcome.correlation_id
    assert message["receive_count"] > 5
    assert message["last_error"]["reason"] == "KeyError: 'order_id'"
    assert message["last_error"]["attempts"] == 5
    # AND the text form says the same
    text = lambdamesh(emulator, topology, "show", "orders-outcomes")
    assert "payment.failed" in text
    assert failed_outcome.correlation_id in text
    assert "KeyError: 'order_id'" in text
    # AND the message is still in the queue, visible
    dlq = topology.queue_url(emulator, "orders-outcomes-dlq")
    attributes = emulator.client("sqs").get_queue_attributes(
        QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"


def test_redrive_of_a_standard_queue_moves_the_message_back_and_empties_the_dlq(
    emulator: RunningEmulator, topology: Topology
) -> None:
    # GIVEN a user.created event dead-lettered by the notifications queue
    letter = make_dead_letter(emulator, topology, "user.created", "notifications-users")
    dlq = topology.queue_url(emulator, "notifications-users-dlq")
    assert depth(emulator, dlq) == 1
    # WHEN its dead-letter queue is redriven
    result = json.loads(lambdamesh(emulator, topology, "redrive", "notifications-users", "--json"))
    # THEN one message went back, the dead-letter queue is empty, the event is in its queue
    assert result["moved"] == 1
    assert result["messages_left"] == 0
    assert depth(emulator, dlq) == 0
    [back] = drain(emulator, topology.queue_url(emulator, "notifications-users"), 1)
    assert json.loads(back["Body"])["id"] == letter.event_id
    assert back["MessageAttributes"]["correlation_id"]["StringValue"] == letter.correlation_id


def test_redrive_of_a_fifo_queue_keeps_the_group_and_is_not_deduplicated_away(
    emulator: RunningEmulator, topology: Topology
) -> None:
    # GIVEN an order.placed event dead-lettered by the payments queue seconds after it was
    # published (its deduplication id is still inside the 5-minute window)
    letter = make_dead_letter(
        emulator, topology, "order.placed", "payments-orders.fifo", group_id="order-42"
    )
    dlq = topology.queue_url(emulator, "payments-orders-dlq.fifo")
    # WHEN it is redriven, with progress output
    output = lambdamesh(emulator, topology, "redrive", "payments-orders", "--max", "5")
    # THEN it is back in the payments queue in its group, and the dead-letter queue is empty
    assert "moved 1" in output
    assert depth(emulator, dlq) == 0
    [back] = drain(emulator, topology.queue_url(emulator, "payments-orders.fifo"), 1)
    assert json.loads(back["Body"])["id"] == letter.event_id
    assert back["Attributes"]["MessageGroupId"] == "order-42"
