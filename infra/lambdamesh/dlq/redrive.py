"""Sending dead letters back to the queue they came from.

Two ways, the first where it can be used:

- ``StartMessageMoveTask``: SQS moves the messages itself, each to its own source queue, and
  reports progress (AWS; LocalStack 4.14). Used for standard queues when every message is to
  move.
- receive → send → delete, one message at a time, otherwise: with ``--max``, for FIFO queues,
  and where the endpoint has no move tasks (moto). A message is deleted from the dead-letter
  queue only after its copy was sent, and only with the receipt handle of the receive that
  returned it, so a failure can leave a message in both queues (consumers are idempotent by
  event id) but never in neither, and never deletes a message twice.

FIFO queues always take the second way, with a new deduplication id: the message's own id (the
event id) is still inside the source queue's 5-minute deduplication window when a poison
message is redriven soon after it failed, and SQS would silently drop the copy — LocalStack's
move task keeps the old id and loses the message that way.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdamesh.dlq.letters import RECEIVE_BATCH, receive_batch, release
from lambdamesh.dlq.queues import DeadLetterQueue, queue_name
from lambdamesh_toolkit.aws.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        MessageTypeDef,
        SendMessageRequestTypeDef,
        StartMessageMoveTaskRequestTypeDef,
    )

Progress = Callable[[str], None]

MOVE_TASK = "move-task"
MESSAGE_BY_MESSAGE = "receive-send-delete"

REDRIVE_HOLD_S = 60
"""How long received messages stay hidden while they are sent back (ample for ten sends)."""

MOVE_TASK_POLL_S = 0.5
MOVE_TASK_TIMEOUT_S = 600.0

_UNSUPPORTED_CODES = frozenset(
    {
        "InvalidAction",
        "UnknownOperationException",
        "UnsupportedOperation",
        "AWS.SimpleQueueService.UnsupportedOperation",
        "NotImplemented",
    }
)
_FINISHED = frozenset({"COMPLETED", "FAILED", "CANCELLED"})


class RedriveError(RuntimeError):
    """A redrive stopped; the message says how far it got and why."""


class MoveTaskUnsupportedError(RedriveError):
    """The endpoint has no ``StartMessageMoveTask``."""


@dataclass(frozen=True)
class RedriveResult:
    """What a redrive did.

    Attributes
    ----------
    method
        :data:`MOVE_TASK` or :data:`MESSAGE_BY_MESSAGE`.
    moved
        Messages sent back.
    destinations
        Destination queue name → messages sent there (message by message only; a move task
        does not say).
    """

    method: str
    moved: int
    destinations: dict[str, int] = field(default_factory=dict)


def redrive(
    sqs: SQSClient,
    dlq: DeadLetterQueue,
    *,
    max_messages: int | None = None,
    progress: Progress = print,
) -> RedriveResult:
    """Move the dead letters of ``dlq`` back to their source queue.

    Parameters
    ----------
    sqs
        SQS client.
    dlq
        The dead-letter queue (:func:`~lambdamesh.dlq.queues.describe_dead_letter_queue`).
    max_messages
        Move at most this many; ``None`` for all.
    progress
        Receives one line per step.

    Raises
    ------
    RedriveError
        When a message cannot be sent back; those moved before it stay moved.
    """
    if max_messages is None and not dlq.fifo:
        try:
            return run_move_task(sqs, dlq, progress)
        except MoveTaskUnsupportedError:
            progress("    StartMessageMoveTask is not available here; moving message by message")
    return move_messages(sqs, dlq, max_messages=max_messages, progress=progress)


def _is_unsupported(error: ClientError) -> bool:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return error_code(error) in _UNSUPPORTED_CODES or status == 501


def _task_started_ms(sqs: SQSClient, source_arn: str) -> set[int]:
    listed = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=10)
    return {entry.get("StartedTimestamp", 0) for entry in listed.get("Results", [])}


def _move_task_request(sqs: SQSClient, dlq: DeadLetterQueue) -> StartMessageMoveTaskRequestTypeDef:
    """The move task's source, and its destination when the DLQ serves a single queue.

    Named explicitly because a message the consumer dead-lettered itself (sent to the DLQ, not
    moved there by SQS after its receives ran out) has no ``DeadLetterQueueSourceArn`` to go
    back to; with several source queues, SQS is left to send each message where it came from.
    """
    request: StartMessageMoveTaskRequestTypeDef = {"SourceArn": dlq.arn}
    if len(dlq.sources) == 1:
        attributes = sqs.get_queue_attributes(QueueUrl=dlq.sources[0], AttributeNames=["QueueArn"])
        request["DestinationArn"] = attributes["Attributes"]["QueueArn"]
    return request


def run_move_task(
    sqs: SQSClient,
    dlq: DeadLetterQueue,
    progress: Progress,
    *,
    poll_s: float = MOVE_TASK_POLL_S,
    timeout_s: float = MOVE_TASK_TIMEOUT_S,
) -> RedriveResult:
    """Redrive with ``StartMessageMoveTask`` and wait for it, reporting messages moved.

    The destination is the DLQ's one source queue when it serves a single queue
    (:func:`_move_task_request`); otherwise SQS sends every message back to the queue it was
    dead-lettered from.

    Raises
    ------
    MoveTaskUnsupportedError
        When the endpoint does not implement move tasks.
    RedriveError
        When the task fails, is cancelled, or runs longer than ``timeout_s``.
    """
    try:
        earlier = _task_started_ms(sqs, dlq.arn)
        handle = sqs.start_message_move_task(**_move_task_request(sqs, dlq))["TaskHandle"]
    except NotImplementedError as error:
        # moto's in-process backend raises this for actions it does not implement.
        raise MoveTaskUnsupportedError(str(error)) from error
    except ClientError as error:
        if _is_unsupported(error):
            raise MoveTaskUnsupportedError(str(error)) from error
        raise RedriveError(f"{dlq.name}: cannot start a move task: {error}") from error
    progress(f"    move task started on {dlq.name} (back to each message's source queue)")
    deadline = time.monotonic() + timeout_s
    reported = -1
    while True:
        entry = _current_task(sqs, dlq.arn, handle, earlier)
        status = entry.get("Status", "RUNNING")
        moved = int(entry.get("ApproximateNumberOfMessagesMoved", 0))
        if moved != reported:
            total = entry.get("ApproximateNumberOfMessagesToMove")
            progress(f"    moved {moved}" + (f" of ~{total}" if total is not None else ""))
            reported = moved
        if status == "COMPLETED":
            return RedriveResult(MOVE_TASK, moved)
        if status in _FINISHED:
            reason = entry.get("FailureReason", "no reason given")
            raise RedriveError(f"{dlq.name}: move task {status} after {moved} message(s): {reason}")
        if time.monotonic() > deadline:
            raise RedriveError(
                f"{dlq.name}: move task still {status} after {timeout_s:.0f} s "
                f"({moved} moved); it keeps running: `aws sqs list-message-move-tasks "
                f"--source-arn {dlq.arn}`"
            )
        time.sleep(poll_s)


def _current_task(
    sqs: SQSClient, source_arn: str, handle: str, earlier: set[int]
) -> Mapping[str, Any]:
    """The move task started here: the newest one, unless it is one that existed before."""
    results = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=1).get("Results", [])
    if not results:
        return {}
    newest: Mapping[str, Any] = results[0]
    if newest.get("TaskHandle") == handle or newest.get("StartedTimestamp") not in earlier:
        return newest
    return {}  # ours is not listed yet


def copy_attributes(
    attributes: Mapping[str, Mapping[str, Any]],
) -> dict[str, MessageAttributeValueTypeDef]:
    """Message attributes as received, in the form ``SendMessage`` takes."""
    copied: dict[str, MessageAttributeValueTypeDef] = {}
    for name, value in attributes.items():
        attribute: MessageAttributeValueTypeDef = {"DataType": value["DataType"]}
        if "StringValue" in value:
            attribute["StringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            attribute["BinaryValue"] = value["BinaryValue"]
        copied[name] = attribute
    return copied


def send_arguments(
    queue_url: str, message: MessageTypeDef, *, fifo: bool, deduplication_id: str
) -> SendMessageRequestTypeDef:
    """The ``SendMessage`` request that puts ``message`` back on ``queue_url``.

    Body and message attributes are kept; on a FIFO queue so is ``MessageGroupId`` (order
    within the group), with ``deduplication_id`` as the new deduplication id.

    Raises
    ------
    RedriveError
        For a FIFO message that does not report its group.
    """
    arguments: SendMessageRequestTypeDef = {
        "QueueUrl": queue_url,
        "MessageBody": message.get("Body", ""),
    }
    attributes = copy_attributes(message.get("MessageAttributes", {}))
    if attributes:
        arguments["MessageAttributes"] = attributes
    if fifo:
        group = message.get("Attributes", {}).get("MessageGroupId")
        if not group:
            raise RedriveError(f"message {message.get('MessageId')} has no MessageGroupId")
        arguments["MessageGroupId"] = group
        arguments["MessageDeduplicationId"] = deduplication_id
    return arguments


@dataclass
class _Destinations:
    """Source queue URLs by ARN, looked up once each."""

    sqs: SQSClient
    dlq: DeadLetterQueue
    urls: dict[str, str] = field(default_factory=dict)

    def url_for(self, message: MessageTypeDef) -> str:
        arn = message.get("Attributes", {}).get("DeadLetterQueueSourceArn")
        if arn:
            if arn not in self.urls:
                account = arn.split(":")[4]
                self.urls[arn] = self.sqs.get_queue_url(
                    QueueName=queue_name(arn), QueueOwnerAWSAccountId=account
                )["QueueUrl"]
            return self.urls[arn]
        # Endpoints that do not report DeadLetterQueueSourceArn (moto): the queue's only source.
        if len(self.dlq.sources) == 1:
            return self.dlq.sources[0]
        raise RedriveError(
            f"message {message.get('MessageId')} does not say which queue it came from and "
            f"{self.dlq.name} serves {len(self.dlq.sources)} queues"
        )


def new_deduplication_id() -> str:
    """A deduplication id no earlier send used."""
    return f"redrive-{uuid.uuid4().hex}"


def move_messages(
    sqs: SQSClient,
    dlq: DeadLetterQueue,
    *,
    max_messages: int | None = None,
    progress: Progress = print,
    deduplication_id: Callable[[], str] = new_deduplication_id,
) -> RedriveResult:
    """Redrive message by message: receive, send a copy to the source queue, then delete.

    Parameters
    ----------
    sqs
        SQS client.
    dlq
        The dead-letter queue.
    max_messages
        Move at most this many; ``None`` until the queue answers empty.
    progress
        Receives one line per message moved.
    deduplication_id
        Makes the deduplication id of each copy sent to a FIFO queue.

    Raises
    ------
    RedriveError
        When a send or delete fails; the messages of that receive not yet moved are released.
    """
    destinations = _Destinations(sqs, dlq)
    counts: dict[str, int] = {}
    moved = 0
    while max_messages is None or moved < max_messages:
        wanted = RECEIVE_BATCH if max_messages is None else min(RECEIVE_BATCH, max_messages - moved)
        batch = receive_batch(sqs, dlq.url, wanted, hold_s=REDRIVE_HOLD_S)
        if not batch:
            break
        for index, message in enumerate(batch):
            destination = _move_one(
                sqs, dlq, destinations, message, batch[index:], deduplication_id
            )
            name = queue_name(destination)
            counts[name] = counts.get(name, 0) + 1
            moved += 1
            progress(f"    moved {moved}: {message.get('MessageId')} → {name}")
    return RedriveResult(MESSAGE_BY_MESSAGE, moved, counts)


def _move_one(
    sqs: SQSClient,
    dlq: DeadLetterQueue,
    destinations: _Destinations,
    message: MessageTypeDef,
    unmoved: Sequence[MessageTypeDef],
    deduplication_id: Callable[[], str],
) -> str:
    """Send one message back, then delete it; on failure release ``unmoved`` and raise."""
    try:
        destination = destinations.url_for(message)
        sqs.send_message(
            **send_arguments(
                destination, message, fifo=dlq.fifo, deduplication_id=deduplication_id()
            )
        )
        # Only now, and only with this receive's handle: a crash before this line leaves a
        # copy in both queues, never in neither.
        sqs.delete_message(QueueUrl=dlq.url, ReceiptHandle=message["ReceiptHandle"])
    except (BotoCoreError, ClientError, RedriveError) as error:
        release(sqs, dlq.url, unmoved)
        raise RedriveError(f"{dlq.name}: message {message.get('MessageId')}: {error}") from error
    return destination
