"""Redrive's ordering guarantees, against a fake SQS that records every call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import ClientError

from lambdamesh.dlq.queues import DeadLetterQueue
from lambdamesh.dlq.redrive import (
    MESSAGE_BY_MESSAGE,
    MOVE_TASK,
    RedriveError,
    move_messages,
    redrive,
    run_move_task,
    send_arguments,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

SOURCE = "http://sqs/000000000000/lambdamesh-orders-outcomes"
SOURCE_ARN = "arn:aws:sqs:us-east-1:000000000000:lambdamesh-orders-outcomes"


def _message(number: int, **attributes: str) -> dict[str, Any]:
    return {
        "MessageId": f"m{number}",
        "ReceiptHandle": f"handle-{number}",
        "Body": f'{{"id": "e{number}"}}',
        "Attributes": {"ApproximateReceiveCount": "6", **attributes},
        "MessageAttributes": {
            "type": {"DataType": "String", "StringValue": "payment.failed", "StringListValues": []}
        },
    }


@dataclass
class FakeSqs:
    """Serves ``messages`` in batches of up to ten and records the calls made."""

    messages: list[dict[str, Any]]
    fail_send_of: str | None = None
    calls: list[tuple[str, Any]] = field(default_factory=list)

    def receive_message(self, **kwargs: Any) -> dict[str, Any]:
        batch = self.messages[: kwargs["MaxNumberOfMessages"]]
        self.messages = self.messages[len(batch) :]
        self.calls.append(("receive", [m["MessageId"] for m in batch]))
        return {"Messages": batch}

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        if self.fail_send_of is not None and self.fail_send_of in kwargs["MessageBody"]:
            raise ClientError({"Error": {"Code": "AccessDenied", "Message": "no"}}, "SendMessage")
        self.calls.append(("send", kwargs))
        return {"MessageId": "new"}

    def delete_message(self, **kwargs: Any) -> None:
        self.calls.append(("delete", kwargs["ReceiptHandle"]))

    def change_message_visibility_batch(self, **kwargs: Any) -> None:
        self.calls.append(("release", [entry["ReceiptHandle"] for entry in kwargs["Entries"]]))

    def get_queue_url(self, **kwargs: Any) -> dict[str, str]:
        return {"QueueUrl": f"http://sqs/{kwargs['QueueOwnerAWSAccountId']}/{kwargs['QueueName']}"}

    def client(self) -> SQSClient:
        return cast("SQSClient", self)


def _dlq(name: str = "lambdamesh-orders-outcomes-dlq", messages: int = 0) -> DeadLetterQueue:
    return DeadLetterQueue(
        name, f"http://sqs/000000000000/{name}", f"arn:{name}", messages, sources=[SOURCE]
    )


def test_each_message_is_sent_before_it_is_deleted_by_its_own_receipt_handle() -> None:
    # GIVEN twelve dead letters (two receives' worth)
    sqs = FakeSqs([_message(n) for n in range(12)])
    # WHEN they are moved message by message
    result = move_messages(sqs.client(), _dlq(), progress=lambda _: None)
    # THEN every message was sent to its source and only then deleted, by that receive's handle
    steps = [(kind, arg if kind != "send" else arg["MessageBody"]) for kind, arg in sqs.calls]
    sends_and_deletes = [step for step in steps if step[0] in ("send", "delete")]
    assert sends_and_deletes == [
        step
        for n in range(12)
        for step in (("send", f'{{"id": "e{n}"}}'), ("delete", f"handle-{n}"))
    ]
    assert result.method == MESSAGE_BY_MESSAGE
    assert result.moved == 12
    assert result.destinations == {"lambdamesh-orders-outcomes": 12}
    # AND no receipt handle was used twice
    deleted = [arg for kind, arg in sqs.calls if kind == "delete"]
    assert len(deleted) == len(set(deleted))


def test_a_failed_send_deletes_nothing_of_it_and_releases_the_rest_of_the_batch() -> None:
    # GIVEN three dead letters, the second of which cannot be sent
    sqs = FakeSqs([_message(n) for n in range(3)], fail_send_of='"e1"')
    # WHEN redriven
    with pytest.raises(RedriveError, match="m1"):
        move_messages(sqs.client(), _dlq(), progress=lambda _: None)
    # THEN the first moved, the second was not deleted, and it and the third were released
    assert [arg for kind, arg in sqs.calls if kind == "delete"] == ["handle-0"]
    assert ("release", ["handle-1", "handle-2"]) in sqs.calls


def test_max_stops_after_that_many_messages() -> None:
    # GIVEN five dead letters  WHEN at most two are redriven
    sqs = FakeSqs([_message(n) for n in range(5)])
    result = move_messages(sqs.client(), _dlq(), max_messages=2, progress=lambda _: None)
    # THEN two were received, sent and deleted
    assert result.moved == 2
    assert sqs.calls[0] == ("receive", ["m0", "m1"])


def test_a_message_goes_back_to_the_queue_it_says_it_came_from() -> None:
    # GIVEN a dead letter that reports its source queue
    other = "arn:aws:sqs:us-east-1:111111111111:lambdamesh-other"
    sqs = FakeSqs([_message(1, DeadLetterQueueSourceArn=other)])
    # WHEN redriven  THEN it is sent there, not to the queue's registered source
    move_messages(sqs.client(), _dlq(), progress=lambda _: None)
    [send] = [arg for kind, arg in sqs.calls if kind == "send"]
    assert send["QueueUrl"] == "http://sqs/111111111111/lambdamesh-other"


def test_a_fifo_copy_keeps_body_attributes_and_group_with_a_new_deduplication_id() -> None:
    # GIVEN a FIFO dead letter of group order-1, deduplicated by its event id
    message = _message(1, MessageGroupId="order-1", MessageDeduplicationId="e1")
    # WHEN its send is built
    arguments = send_arguments(
        "http://q.fifo", cast(Any, message), fifo=True, deduplication_id="d2"
    )
    # THEN body, attributes (in SendMessage's form) and group are kept, the dedup id is new
    assert arguments == {
        "QueueUrl": "http://q.fifo",
        "MessageBody": '{"id": "e1"}',
        "MessageAttributes": {"type": {"DataType": "String", "StringValue": "payment.failed"}},
        "MessageGroupId": "order-1",
        "MessageDeduplicationId": "d2",
    }


def test_a_standard_copy_has_neither_group_nor_deduplication_id() -> None:
    arguments = send_arguments("http://q", cast(Any, _message(1)), fifo=False, deduplication_id="x")
    assert "MessageGroupId" not in arguments
    assert "MessageDeduplicationId" not in arguments


@dataclass
class FakeMoveTasks:
    """An SQS with message move tasks that complete after two polls."""

    supported: bool = True
    polls: int = 0
    started: list[str] = field(default_factory=list)
    destinations: list[str | None] = field(default_factory=list)

    def list_message_move_tasks(self, **kwargs: Any) -> dict[str, Any]:
        if not self.started:
            return {"Results": [{"Status": "COMPLETED", "StartedTimestamp": 1}]}
        self.polls += 1
        status = "RUNNING" if self.polls < 2 else "COMPLETED"
        return {
            "Results": [
                {
                    "Status": status,
                    "StartedTimestamp": 2,
                    "ApproximateNumberOfMessagesMoved": 3 if status == "COMPLETED" else 1,
                    "ApproximateNumberOfMessagesToMove": 3,
                }
            ]
        }

    def start_message_move_task(self, **kwargs: Any) -> dict[str, str]:
        if not self.supported:
            raise NotImplementedError("The start_message_move_task action has not been implemented")
        self.started.append(kwargs["SourceArn"])
        self.destinations.append(kwargs.get("DestinationArn"))
        return {"TaskHandle": "task-1"}

    def get_queue_attributes(self, QueueUrl: str, **kwargs: Any) -> dict[str, Any]:  # noqa: N803
        return {"Attributes": {"QueueArn": f"arn:{QueueUrl.rsplit('/', 1)[-1]}"}}


def test_a_move_task_is_followed_until_it_completes_with_progress() -> None:
    # GIVEN an endpoint with move tasks (and an older, finished one on the same queue)
    sqs = FakeMoveTasks()
    lines: list[str] = []
    # WHEN a standard queue is redriven in full
    result = run_move_task(cast("SQSClient", sqs), _dlq(), lines.append, poll_s=0)
    # THEN the task's own progress is reported until it completes
    assert result.method == MOVE_TASK
    assert result.moved == 3
    assert sqs.started == ["arn:lambdamesh-orders-outcomes-dlq"]
    # AND its one source queue is named as the destination: letters the consumer dead-lettered
    # itself have no DeadLetterQueueSourceArn to go back to
    assert sqs.destinations == [f"arn:{SOURCE.rsplit('/', 1)[-1]}"]
    assert [line for line in lines if "moved" in line] == ["    moved 1 of ~3", "    moved 3 of ~3"]


def test_a_dead_letter_queue_of_several_queues_sends_each_letter_where_it_came_from() -> None:
    # GIVEN a standard dead-letter queue serving two source queues
    sqs = FakeMoveTasks()
    dlq = DeadLetterQueue(
        "shared-dlq", "http://sqs/0/shared-dlq", "arn:shared-dlq", 2, sources=[SOURCE, SOURCE + "2"]
    )
    # WHEN it is redriven in full
    run_move_task(cast("SQSClient", sqs), dlq, lambda _: None, poll_s=0)
    # THEN the move task names no destination: SQS returns each message to its own source
    assert sqs.destinations == [None]


def test_fifo_queues_and_partial_redrives_never_use_a_move_task() -> None:
    # GIVEN an endpoint with move tasks, a FIFO dead-letter queue and a standard one
    for dlq, limit in ((_dlq("lambdamesh-payments-orders-dlq.fifo"), None), (_dlq(), 1)):
        sqs = FakeMoveTasks()
        # WHEN redriven (the FIFO one in full, the standard one with --max)
        with pytest.raises(AttributeError, match="receive_message"):
            redrive(cast("SQSClient", sqs), dlq, max_messages=limit, progress=lambda _: None)
        # THEN no move task was started: message by message it goes
        assert sqs.started == []


class FakeSqsWithoutMoveTasks(FakeSqs):
    """An endpoint where StartMessageMoveTask is not implemented (moto in-process)."""

    def list_message_move_tasks(self, **kwargs: Any) -> dict[str, Any]:
        return {"Results": []}

    def get_queue_attributes(self, **kwargs: Any) -> dict[str, Any]:
        return {"Attributes": {"QueueArn": "arn:source"}}

    def start_message_move_task(self, **kwargs: Any) -> dict[str, str]:
        raise NotImplementedError("The start_message_move_task action has not been implemented")


def test_without_move_tasks_redrive_falls_back_to_message_by_message() -> None:
    # GIVEN an endpoint lacking StartMessageMoveTask, with one dead letter
    sqs = FakeSqsWithoutMoveTasks([_message(1)])
    lines: list[str] = []
    # WHEN redriven
    result = redrive(sqs.client(), _dlq(), progress=lines.append)
    # THEN it says so and moves the message itself
    assert result.method == MESSAGE_BY_MESSAGE
    assert result.moved == 1
    assert any("not available" in line for line in lines)
