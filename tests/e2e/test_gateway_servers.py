"""LocalStack's twisted server, the one to choose for HTTP/2 or WebSocket clients
(``--gateway-server loopback-twisted``), still serves the services the system uses."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from lambdamesh.emulator.clients import emulator_client
from lambdamesh.emulator.process import EmbeddedLocalStack
from tests.e2e.lambda_support import unique_name
from tests.e2e.own_emulators import own_emulator


@pytest.fixture
def twisted_emulator() -> Iterator[EmbeddedLocalStack]:
    """A LocalStack of this test's own, served by the twisted loopback server."""
    with own_emulator("twisted", gateway_server="loopback-twisted") as embedded:
        yield embedded


def test_the_twisted_gateway_server_serves_queues_and_objects(
    twisted_emulator: EmbeddedLocalStack,
) -> None:
    # GIVEN an emulator served by LocalStack's twisted server, bound to loopback
    sqs = emulator_client(twisted_emulator.endpoint_url, "sqs")
    s3 = emulator_client(twisted_emulator.endpoint_url, "s3")
    queue_url = sqs.create_queue(QueueName=unique_name("twisted"))["QueueUrl"]
    bucket = unique_name("twisted")
    s3.create_bucket(Bucket=bucket)
    body = os.urandom(3 * 1024 * 1024)
    # WHEN a message and an object go through it
    sqs.send_message(QueueUrl=queue_url, MessageBody="through twisted")
    received = sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=5)["Messages"]
    s3.put_object(Bucket=bucket, Key="object", Body=body)
    # THEN both come back whole
    assert [m["Body"] for m in received] == ["through twisted"]
    assert s3.get_object(Bucket=bucket, Key="object")["Body"].read() == body
