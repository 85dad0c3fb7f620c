"""SQS event source mappings on the embedded LocalStack: concurrent batches, FIFO order, retries.

The functions under test record what they saw (time stamps, bodies) into a "stamps" queue that
the test reads back; they need boto3, which the ``process`` executor provides.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.lambda_support import create_function, invoke, unique_name, wait_until
from tests.support.sqs import queue_arn

HOLDING_RECORDER = """
    import json
    import os
    import time

    import boto3

    sqs = boto3.client("sqs")

    def handler(event, context):
        started = time.time()
        time.sleep(float(os.environ["HOLD_SECONDS"]))
        sqs.send_message(
            QueueUrl=os.environ["STAMPS_URL"],
            MessageBody=json.dumps({
                "start": started,
                "end": time.time(),
                "bodies": [record["body"] for record in event["Records"]],
            }),
        )
        return {}
"""

ORDER_RECORDER = """
    import json
    import os
    import time

    import boto3

    sqs = boto3.client("sqs")

    def handler(event, context):
        for record in event["Records"]:
            body = json.loads(record["body"])
            sqs.send_message(
                QueueUrl=os.environ["STAMPS_URL"],
                MessageBody=json.dumps(
                    {"group": body["group"], "seq": body["seq"], "at": time.time()}
                ),
            )
            time.sleep(0.01)
        return {}
"""

POISON_REPORTER = """
    import json
    import os

    import boto3

    sqs = boto3.client("sqs")

    def handler(event, context):
        failures = []
        for record in event["Records"]:
            sqs.send_message(
                QueueUrl=os.environ["STAMPS_URL"], MessageBody=json.dumps(record["body"])
            )
            if record["body"].startswith("poison"):
                failures.append({"itemIdentifier": record["messageId"]})
        return {"batchItemFailures": failures}
"""


@pytest.fixture(scope="module")
def sqs(emulator: Any) -> Any:
    return emulator.client("sqs")


@pytest.fixture(scope="module")
def lambda_client(emulator: Any) -> Any:
    return emulator.client("lambda")


@pytest.fixture
def stamps_url(sqs: Any) -> Iterator[str]:
    url: str = sqs.create_queue(QueueName=unique_name("stamps"))["QueueUrl"]
    yield url
    sqs.delete_queue(QueueUrl=url)


def map_queue(lambda_client: Any, function_name: str, source_arn: str, **settings: Any) -> str:
    """Create an event source mapping and wait until it is enabled."""
    uuid: str = lambda_client.create_event_source_mapping(
        FunctionName=function_name, EventSourceArn=source_arn, **settings
    )["UUID"]

    def enabled() -> bool | None:
        state = lambda_client.get_event_source_mapping(UUID=uuid)["State"]
        return True if state == "Enabled" else None

    wait_until(enabled)
    return uuid


def read_stamps(sqs: Any, url: str, count: int, timeout_s: float = 60.0) -> list[Any]:
    """Read ``count`` JSON bodies from ``url``, then make sure no more arrive for a second."""
    stamps: list[Any] = []

    def collected() -> list[Any] | None:
        response = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in response.get("Messages", []):
            stamps.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return stamps if len(stamps) >= count else None

    wait_until(collected, timeout_s=timeout_s, interval_s=0)
    late = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
    stamps.extend(json.loads(message["Body"]) for message in late.get("Messages", []))
    return stamps


def test_batches_of_one_mapping_are_processed_concurrently(
    sqs: Any, lambda_client: Any, stamps_url: str
) -> None:
    # GIVEN a queue holding five messages and a function that holds each batch for a second
    source_url = sqs.create_queue(QueueName=unique_name("overlap"))["QueueUrl"]
    for index in range(5):
        sqs.send_message(QueueUrl=source_url, MessageBody=f"message-{index}")
    function_name = create_function(
        lambda_client,
        HOLDING_RECORDER,
        environment={"STAMPS_URL": stamps_url, "HOLD_SECONDS": "1"},
    )

    # WHEN a mapping with one message per batch drains the queue
    map_queue(lambda_client, function_name, queue_arn(sqs, source_url), BatchSize=1)
    batches = read_stamps(sqs, stamps_url, 5)

    # THEN every message was handled once, and some batches ran at the same time
    assert sorted(body for batch in batches for body in batch["bodies"]) == [
        f"message-{index}" for index in range(5)
    ]
    overlapping = [
        (first, second)
        for first in batches
        for second in batches
        if first is not second and first["start"] < second["end"] and second["start"] < first["end"]
    ]
    assert overlapping, f"no two batches overlapped: {batches}"


def test_fifo_messages_of_one_group_are_processed_in_order(
    sqs: Any, lambda_client: Any, stamps_url: str
) -> None:
    # GIVEN a FIFO queue holding three message groups of eight messages each, interleaved
    source_url = sqs.create_queue(
        QueueName=unique_name("ordered") + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    groups, per_group = ("a", "b", "c"), 8
    for seq in range(per_group):
        for group in groups:
            sqs.send_message(
                QueueUrl=source_url,
                MessageBody=json.dumps({"group": group, "seq": seq}),
                MessageGroupId=group,
            )
    function_name = create_function(
        lambda_client, ORDER_RECORDER, environment={"STAMPS_URL": stamps_url}
    )

    # WHEN a mapping with small batches (so several are in flight) drains the queue
    map_queue(lambda_client, function_name, queue_arn(sqs, source_url), BatchSize=2)
    stamps = read_stamps(sqs, stamps_url, len(groups) * per_group)

    # THEN each group's messages were handled once each, in the order they were sent
    for group in groups:
        handled = sorted(
            (stamp for stamp in stamps if stamp["group"] == group), key=lambda s: s["at"]
        )
        assert [stamp["seq"] for stamp in handled] == list(range(per_group)), group


def test_partial_batch_failure_retries_only_the_failed_message_until_the_dlq(
    sqs: Any, lambda_client: Any, stamps_url: str
) -> None:
    # GIVEN a queue that redrives to a DLQ after three receives, holding four good messages and
    # one the function always reports as failed
    max_receive_count = 3
    dlq_url = sqs.create_queue(QueueName=unique_name("dlq"))["QueueUrl"]
    source_url = sqs.create_queue(
        QueueName=unique_name("partial"),
        Attributes={
            "VisibilityTimeout": "3",
            "RedrivePolicy": json.dumps(
                {
                    "deadLetterTargetArn": queue_arn(sqs, dlq_url),
                    "maxReceiveCount": str(max_receive_count),
                }
            ),
        },
    )["QueueUrl"]
    good = [f"good-{index}" for index in range(4)]
    for body in [*good, "poison"]:
        sqs.send_message(QueueUrl=source_url, MessageBody=body)
    function_name = create_function(
        lambda_client, POISON_REPORTER, environment={"STAMPS_URL": stamps_url}
    )
    # A warm function keeps the first batch well inside the visibility timeout.
    invoke(lambda_client, function_name, {"Records": []})

    # WHEN a mapping that honours partial batch responses drains the queue
    map_queue(
        lambda_client,
        function_name,
        queue_arn(sqs, source_url),
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )

    def dead_letter() -> str | None:
        response = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=1)
        messages = response.get("Messages", [])
        return str(messages[0]["Body"]) if messages else None

    dead = wait_until(dead_letter, timeout_s=60, interval_s=0)
    deliveries = read_stamps(sqs, stamps_url, len(good) + max_receive_count)

    # THEN the good messages were delivered once each, and the poison message maxReceiveCount
    # times before it reached the DLQ
    assert dead == "poison"
    assert sorted(deliveries) == sorted([*good, *["poison"] * max_receive_count])
