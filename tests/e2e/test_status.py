"""``lambdamesh status`` shows the deployed system: functions, topics, queues, DLQ depths."""

from __future__ import annotations

import json

from tests.conftest import RunningEmulator
from tests.e2e.cli_support import run_lambdamesh
from tests.e2e.conftest import DeployedSystem

DLQ = "lambdamesh-notifications-users-dlq"


def _status(emulator: RunningEmulator, *extra: str) -> str:
    return run_lambdamesh(emulator, "status", *extra)


def test_status_lists_topics_queues_and_flags_a_dead_letter_queue_holding_messages(
    emulator: RunningEmulator, deployed: DeployedSystem
) -> None:
    # GIVEN the deployed system, with one message waiting in a dead-letter queue
    sqs = emulator.client("sqs")
    url = sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="status-test: not an event")
    try:
        # WHEN status runs, as JSON and as text
        document = json.loads(_status(emulator, "--json"))
        text = _status(emulator)
    finally:
        received = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in received.get("Messages", []):
            if message["Body"] == "status-test: not an event":
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            else:
                sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                )
    # THEN every topic and queue of the topology is listed with its depth
    messaging = document["messaging"]
    assert "lambdamesh-orders.fifo" in messaging["topics"]
    queues = {queue["name"]: queue for queue in messaging["queues"]}
    assert "lambdamesh-orders-outcomes" in queues
    dead_letters = {queue["name"]: queue for queue in messaging["dead_letter_queues"]}
    assert dead_letters[DLQ]["waiting"] + dead_letters[DLQ]["in_flight"] >= 1
    # AND the text flags that DLQ with the command that shows why
    flagged = [line for line in text.splitlines() if line.strip().startswith(DLQ)]
    assert flagged, text
    assert flagged[0].endswith("← lambdamesh dlq show notifications-users")
    # AND the emulator's permission audit is summed up: calls checked, the deployed system's
    # seeding at least, and as many denials listed in the text as the JSON holds
    permissions = document["permissions"]
    assert permissions["checked"] > 0
    assert "  IAM (calls signed by a role, checked against it" in text
    assert text.count("    denied  ") == min(len(permissions["denied"]), 10)
