"""The queues' depths that ``lambdamesh status`` and the chaos run read."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh.messaging_status import queue_depths


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        yield boto3.client("sqs", region_name="us-east-1")


def test_queues_and_dead_letter_queues_of_a_prefix_are_listed_apart_with_every_count(
    sqs: Any,
) -> None:
    # GIVEN a queue with one message waiting, one in flight and one delayed, its DLQ, and a
    # queue of another prefix
    url = sqs.create_queue(QueueName="shop-orders")["QueueUrl"]
    sqs.create_queue(QueueName="shop-orders-dlq")
    sqs.create_queue(QueueName="other-orders")
    for body in ("a", "b"):
        sqs.send_message(QueueUrl=url, MessageBody=body)
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=60)
    sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=60)
    # WHEN the prefix's depths are read
    queues, dead_letters = queue_depths(sqs, "shop")
    # THEN the queue and its DLQ are apart, the other prefix left out, every count read
    assert [(q.name, q.waiting, q.in_flight, q.delayed, q.total) for q in queues] == [
        ("shop-orders", 1, 1, 1, 3)
    ]
    assert [(q.name, q.total) for q in dead_letters] == [("shop-orders-dlq", 0)]
