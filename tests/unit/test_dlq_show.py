"""Reading dead letters: naming, description, failure lookup and formatting (moto, no network)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
from moto import mock_aws

from lambdamesh.dlq.formatting import format_letters, format_queues
from lambdamesh.dlq.letters import (
    DeadLetter,
    describe_message,
    read_dead_letters,
)
from lambdamesh.dlq.queues import (
    DeadLetterQueue,
    QueueNotFoundError,
    candidate_names,
    is_dead_letter_name,
    list_dead_letter_queues,
    resolve_dead_letter_queue,
)
from lambdamesh_toolkit.events.bookkeeping import DynamoDbFailureStore, RecordFailure
from tests.support.fake_aws import use_fake_aws

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

ENVELOPE = {
    "id": "e-1",
    "type": "payment.failed",
    "source": "payments",
    "correlation_id": "corr-body",
}


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch) -> Iterator[SQSClient]:
    """moto's SQS with the orders' outcome queue, its DLQ and an unrelated queue."""
    use_fake_aws(monkeypatch)
    with mock_aws():
        client: SQSClient = boto3.client("sqs", region_name="us-east-1")
        dlq = client.create_queue(QueueName="lambdamesh-orders-outcomes-dlq")["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
        redrive = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"], "maxReceiveCount": 5}
        client.create_queue(
            QueueName="lambdamesh-orders-outcomes",
            Attributes={"RedrivePolicy": json.dumps(redrive)},
        )
        client.create_queue(QueueName="lambdamesh-users-dlq-notes")
        client.create_queue(QueueName="other-x-dlq")
        yield client


def failure(message_id: str) -> RecordFailure:
    """A failure as a consumer records it: the orders consumer's fifth attempt."""
    return RecordFailure(
        message_id,
        "orders",
        "lambdamesh-orders-outcomes",
        "ValueError: boom",
        5,
        dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC),
    )


def test_short_names_stand_for_the_dead_letter_queue_of_that_queue() -> None:
    # GIVEN short and full names  THEN each maps to the DLQ names to try, literal first
    assert candidate_names("orders-outcomes", "lambdamesh") == [
        "lambdamesh-orders-outcomes-dlq",
        "lambdamesh-orders-outcomes-dlq.fifo",
        "orders-outcomes-dlq",
        "orders-outcomes-dlq.fifo",
    ]
    assert candidate_names("lambdamesh-payments-orders-dlq.fifo", "lambdamesh") == [
        "lambdamesh-payments-orders-dlq.fifo"
    ]
    assert candidate_names("lambdamesh-payments-orders.fifo", "lambdamesh")[0] == (
        "lambdamesh-payments-orders-dlq"
    )
    assert is_dead_letter_name("lambdamesh-payments-orders-dlq.fifo", "lambdamesh")
    assert not is_dead_letter_name("lambdamesh-payments-orders.fifo", "lambdamesh")
    assert not is_dead_letter_name("other-x-dlq", "lambdamesh")


def test_list_finds_only_the_prefixes_dead_letter_queues_with_depth_and_source(
    sqs: SQSClient,
) -> None:
    # GIVEN one message in the outcome DLQ
    dlq = sqs.get_queue_url(QueueName="lambdamesh-orders-outcomes-dlq")["QueueUrl"]
    sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(ENVELOPE))
    # WHEN listed
    [queue] = list_dead_letter_queues(sqs, "lambdamesh")
    # THEN only that DLQ is found, with its depth and the queue it serves
    assert (queue.name, queue.messages, queue.fifo) == ("lambdamesh-orders-outcomes-dlq", 1, False)
    assert queue.source_names == ["lambdamesh-orders-outcomes"]


def test_an_unknown_queue_is_an_error_naming_what_was_tried(sqs: SQSClient) -> None:
    with pytest.raises(QueueNotFoundError, match="lambdamesh-nope-dlq"):
        resolve_dead_letter_queue(sqs, "nope", "lambdamesh")


def test_reading_dead_letters_leaves_them_in_the_queue_and_joins_their_failure(
    sqs: SQSClient,
) -> None:
    # GIVEN two dead letters, a failure recorded for the first
    dlq = resolve_dead_letter_queue(sqs, "orders-outcomes", "lambdamesh")
    first = sqs.send_message(QueueUrl=dlq, MessageBody=json.dumps(ENVELOPE))["MessageId"]
    sqs.send_message(QueueUrl=dlq, MessageBody="not json")
    recorded = {first: failure(first)}
    # WHEN read
    letters = read_dead_letters(sqs, dlq, 10, lambda ids: recorded)
    # THEN both are described, the first with its failure, and both are still visible
    assert {letter.message_id: letter.last_error for letter in letters} == {
        first: recorded[first],
        letters[1].message_id if letters[0].message_id == first else letters[0].message_id: None,
    }
    again = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10)["Messages"]
    assert len(again) == 2


def test_failure_records_are_read_by_message_id(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a failures table with one record written the way consumers write it
    use_fake_aws(monkeypatch)
    with mock_aws():
        dynamodb: DynamoDBClient = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
            TableName="failures",
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.put_item(
            TableName="failures",
            Item={
                "id": {"S": "m-1"},
                "service": {"S": "orders"},
                "queue": {"S": "lambdamesh-orders-outcomes"},
                "reason": {"S": "KeyError: 'x'"},
                "attempts": {"N": "3"},
                "at": {"S": "2026-11-23T12:00:00+00:00"},
            },
        )
        # WHEN two message ids are looked up
        records = DynamoDbFailureStore("failures", client=dynamodb).get_many(["m-1", "m-2"])
    # THEN the recorded one is found, the other absent
    assert records == {
        "m-1": RecordFailure(
            "m-1",
            "orders",
            "lambdamesh-orders-outcomes",
            "KeyError: 'x'",
            3,
            dt.datetime(2026, 11, 23, 12, tzinfo=dt.UTC),
        )
    }


def test_type_and_correlation_come_from_attributes_else_from_the_envelope() -> None:
    # GIVEN a raw-delivered message with attributes, and one sent with the envelope only
    with_attributes: dict[str, Any] = {
        "MessageId": "m1",
        "Body": json.dumps(ENVELOPE),
        "Attributes": {"ApproximateReceiveCount": "6", "SentTimestamp": "1795446143989"},
        "MessageAttributes": {
            "type": {"DataType": "String", "StringValue": "payment.failed"},
            "correlation_id": {"DataType": "String", "StringValue": "corr-attr"},
        },
    }
    body_only: dict[str, Any] = {"MessageId": "m2", "Body": json.dumps(ENVELOPE)}
    # WHEN described
    first = describe_message(cast(Any, with_attributes))
    second = describe_message(cast(Any, body_only))
    # THEN the attributes win where present; the envelope fills in otherwise
    assert (first.event_type, first.correlation_id, first.receive_count) == (
        "payment.failed",
        "corr-attr",
        6,
    )
    assert first.sent_at == "2026-11-23T15:02:23+00:00"
    assert (second.event_type, second.correlation_id, second.event_id, second.source) == (
        "payment.failed",
        "corr-body",
        "e-1",
        "payments",
    )


def test_text_output_shows_depths_and_each_messages_essentials() -> None:
    # GIVEN a queue with one described message and its failure
    queue = DeadLetterQueue(
        "lambdamesh-orders-outcomes-dlq",
        "u",
        "a",
        1,
        sources=["http://x/lambdamesh-orders-outcomes"],
    )
    letter = DeadLetter(
        "m1",
        "payment.failed",
        "e-1",
        "corr-1",
        "payments",
        6,
        None,
        None,
        None,
        "{}",
        failure("m1"),
    )
    # WHEN formatted
    listing = format_queues([queue])
    shown = "\n".join(format_letters(queue, [letter], "failures"))
    # THEN the listing has a header, the queue's depth and source, and a total
    assert listing[1].split() == [
        "lambdamesh-orders-outcomes-dlq",
        "1",
        "0",
        "lambdamesh-orders-outcomes",
    ]
    assert listing[-1] == "1 message(s) in 1 dead-letter queue(s)"
    # AND the message block names type, correlation id, receives and the last error
    for expected in (
        "payment.failed",
        "corr-1",
        "receives     6",
        "ValueError: boom (orders, attempt 5, 2026-11-23T12:00:00+00:00)",
    ):
        assert expected in shown
