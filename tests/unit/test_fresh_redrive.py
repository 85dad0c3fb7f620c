"""A redriven message is enqueued as a new one (the emulator's move task, made AWS-like)."""

from __future__ import annotations

from typing import Any

from lambdamesh_localstack.fresh_redrive import FreshDeliveryQueue, fresh_delivery, fresh_message

DEAD_LETTER: dict[str, Any] = {
    "MessageId": "m-1",
    "Body": '{"id": "e-1"}',
    "MD5OfBody": "x",
    "MessageAttributes": {"type": {"DataType": "String", "StringValue": "order.placed"}},
    "Attributes": {
        "ApproximateReceiveCount": "6",
        "ApproximateFirstReceiveTimestamp": "1700000000000",
        "DeadLetterQueueSourceArn": "arn:aws:sqs:us-east-1:000000000000:orders",
        "SentTimestamp": "1700000000000",
        "SenderId": "000000000000",
        "MessageGroupId": "o-1",
        "MessageDeduplicationId": "d-1",
        "SequenceNumber": "1",
    },
}


class RecordingQueue:
    def __init__(self) -> None:
        self.put_calls: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.name = "orders"

    def put(self, message: dict[str, Any], **kwargs: Any) -> str:
        self.put_calls.append((message, kwargs))
        return "queued"


def test_a_fresh_message_has_a_new_id_no_receives_and_no_dead_letter_source() -> None:
    # GIVEN a message dead-lettered after six receives
    # WHEN it is made fresh
    fresh = fresh_message(DEAD_LETTER, now_ms=1800000000000, new_id="m-2")
    # THEN it is new: another id, sent now, never received, from no dead-letter queue
    assert fresh["MessageId"] == "m-2"
    assert fresh["Attributes"] == {"SentTimestamp": "1800000000000", "SenderId": "000000000000"}
    # AND it says the same: body and message attributes untouched, the original unchanged
    assert (fresh["Body"], fresh["MessageAttributes"]) == (
        DEAD_LETTER["Body"],
        DEAD_LETTER["MessageAttributes"],
    )
    assert DEAD_LETTER["Attributes"]["ApproximateReceiveCount"] == "6"


def test_the_move_tasks_destination_enqueues_fresh_copies_deduplicated_by_their_new_id() -> None:
    # GIVEN the move task's queue lookup, wrapped
    queue = RecordingQueue()
    lookup = fresh_delivery(lambda manager, arn: queue)
    destination = lookup(object(), "arn:aws:sqs:us-east-1:000000000000:orders.fifo")
    assert isinstance(destination, FreshDeliveryQueue)
    # WHEN it puts a dead letter back, as the move task does
    destination.put(DEAD_LETTER, message_group_id="o-1", message_deduplication_id="d-1")
    # THEN the queue got a fresh copy, in its group, deduplicated by the new id
    [(message, options)] = queue.put_calls
    assert message["MessageId"] != "m-1"
    assert "ApproximateReceiveCount" not in message["Attributes"]
    assert options == {"message_group_id": "o-1", "message_deduplication_id": message["MessageId"]}
    # AND everything else is the queue's own
    assert destination.name == "orders"
