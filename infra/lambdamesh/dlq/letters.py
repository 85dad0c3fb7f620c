"""Reading dead letters without consuming them, and why each one failed."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambdamesh_toolkit.events.bookkeeping import (
    FAILURES_TABLE_OUTPUT,
    DynamoDbFailureStore,
    RecordFailure,
)
from lambdamesh_toolkit.privacy import mask_json_text, mask_text
from lambdamesh_toolkit.trace_context import TRACEPARENT

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        MessageTypeDef,
    )

HOLD_S = 20
"""How long a peeked message stays hidden before it is released (or reappears by itself)."""

RECEIVE_BATCH = 10
"""SQS's largest ``MaxNumberOfMessages``."""

BODY_PREVIEW_CHARS = 300


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue, as ``dlq show`` presents it.

    Attributes
    ----------
    message_id
        The SQS message id: the same in the source queue, the dead-letter queue and the
        failures table.
    event_type
        The event's ``type`` (message attribute, else the envelope's field).
    event_id
        The envelope's ``id``.
    correlation_id
        The correlation id (message attribute, else the envelope's field).
    source
        The service that published the event.
    receive_count
        ``ApproximateReceiveCount``: receives in the source queue plus in this one.
    sent_at
        When the message was first sent (ISO 8601, UTC).
    group_id
        ``MessageGroupId`` (FIFO queues).
    source_queue_arn
        ``DeadLetterQueueSourceArn``: the queue it was dead-lettered from, when reported.
    body_preview
        The start of the body.
    last_error
        The consumer's last recorded failure, when the failures table has one.
    traceparent
        The ``traceparent`` message attribute: the span that published it, or the consumer's
        ``dead_letter`` hop that moved it here (``lambdamesh trace`` hangs it below that span).
    """

    message_id: str
    event_type: str | None
    event_id: str | None
    correlation_id: str | None
    source: str | None
    receive_count: int
    sent_at: str | None
    group_id: str | None
    source_queue_arn: str | None
    body_preview: str
    last_error: RecordFailure | None = None
    traceparent: str | None = None


def _attribute(message: MessageTypeDef, name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    return value.get("StringValue") if value else None


def _envelope(body: str) -> dict[str, Any]:
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _timestamp(millis: str | None) -> str | None:
    if not millis:
        return None
    return datetime.fromtimestamp(int(millis) / 1000, UTC).isoformat(timespec="seconds")


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def describe_message(
    message: MessageTypeDef,
    failure: RecordFailure | None = None,
    *,
    personal_data: bool = False,
) -> DeadLetter:
    """A received SQS message as a :class:`DeadLetter` (a pure function of the message).

    The event type and correlation id come from the message attributes SNS copied onto it
    (raw delivery), else from the event envelope in the body: a message sent to the queue
    directly may carry only the latter. Unless ``personal_data``, the body preview and the
    failure's reason have names and email addresses masked (:mod:`lambdamesh_toolkit.privacy`):
    the whole body is masked before it is cut short, so a name is never left half-visible.

    >>> body = '{"data": {"name": "Ada", "email": "ada@example.com"}}'
    >>> describe_message({"MessageId": "m-1", "Body": body}).body_preview
    '{"data": {"name": "A***", "email": "a***@example.com"}}'
    """
    raw_body = message.get("Body", "")
    envelope = _envelope(raw_body)
    body = raw_body if personal_data else mask_json_text(raw_body)
    if failure is not None and not personal_data:
        failure = dataclasses.replace(failure, reason=mask_text(failure.reason))
    system = message.get("Attributes", {})
    return DeadLetter(
        message_id=message.get("MessageId", ""),
        event_type=_attribute(message, "type") or _text(envelope.get("type")),
        event_id=_text(envelope.get("id")),
        correlation_id=_attribute(message, "correlation_id")
        or _text(envelope.get("correlation_id")),
        source=_text(envelope.get("source")),
        receive_count=int(system.get("ApproximateReceiveCount", 0)),
        sent_at=_timestamp(system.get("SentTimestamp")),
        group_id=system.get("MessageGroupId"),
        source_queue_arn=system.get("DeadLetterQueueSourceArn"),
        body_preview=body[:BODY_PREVIEW_CHARS],
        last_error=failure,
        traceparent=_attribute(message, TRACEPARENT),
    )


def receive_batch(
    sqs: SQSClient, queue_url: str, count: int, *, hold_s: int
) -> list[MessageTypeDef]:
    """Up to ``count`` messages in one receive (no wait), every attribute, hidden ``hold_s``."""
    return sqs.receive_message(
        QueueUrl=queue_url,
        MaxNumberOfMessages=count,
        VisibilityTimeout=hold_s,
        WaitTimeSeconds=0,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])


def peek(sqs: SQSClient, queue_url: str, max_messages: int) -> list[MessageTypeDef]:
    """Up to ``max_messages`` messages of the queue, left in it.

    Each receive hides what it returns for :data:`HOLD_S` seconds, so that the next receive
    returns other messages; all are made visible again before returning (and would reappear by
    themselves after :data:`HOLD_S` seconds if this process died). A receive with a visibility
    timeout of 0 would leave them visible but could return the same message twice and never
    reach the others. Receiving adds one to each message's receive count; a dead-letter queue
    has no redrive policy of its own, so that is harmless.
    """
    received: dict[str, MessageTypeDef] = {}
    try:
        while len(received) < max_messages:
            wanted = min(RECEIVE_BATCH, max_messages - len(received))
            batch = receive_batch(sqs, queue_url, wanted, hold_s=HOLD_S)
            if not batch:
                break
            for message in batch:
                received.setdefault(message.get("MessageId", ""), message)
    finally:
        release(sqs, queue_url, received.values())
    return list(received.values())


def release(sqs: SQSClient, queue_url: str, messages: Iterable[MessageTypeDef]) -> None:
    """Make received messages visible again at once (visibility timeout 0)."""
    entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
        for index, message in enumerate(messages)
        if "ReceiptHandle" in message
    ]
    for start in range(0, len(entries), RECEIVE_BATCH):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=entries[start : start + RECEIVE_BATCH],
        )


def failure_finder(
    cfn: CloudFormationClient, dynamodb: DynamoDBClient, messaging_stack: str
) -> tuple[str | None, Callable[[list[str]], Mapping[str, RecordFailure]] | None]:
    """The failures table of the messaging stack, and what finds failures in it by message id
    (``None`` for both when the stack has no such table)."""
    table = failures_table_name(cfn, messaging_stack)
    if table is None:
        return None, None
    return table, DynamoDbFailureStore(table, client=dynamodb).get_many


def failures_table_name(cfn: CloudFormationClient, messaging_stack: str) -> str | None:
    """The ``EventFailuresTable`` Output of the messaging stack, or ``None`` without one."""
    try:
        stacks = cfn.describe_stacks(StackName=messaging_stack)["Stacks"]
    except ClientError:
        return None
    for stack in stacks:
        for output in stack.get("Outputs", []):
            if output.get("OutputKey") == FAILURES_TABLE_OUTPUT:
                return output.get("OutputValue")
    return None


def read_dead_letters(
    sqs: SQSClient,
    queue_url: str,
    max_messages: int,
    find_failures: Callable[[list[str]], Mapping[str, RecordFailure]] | None = None,
    *,
    personal_data: bool = False,
) -> list[DeadLetter]:
    """Peek at the queue and describe each message, joined to its recorded failure.

    Parameters
    ----------
    sqs
        SQS client.
    queue_url
        The dead-letter queue.
    max_messages
        Read at most this many.
    find_failures
        Message ids → their failure records (``DynamoDbFailureStore.get_many`` on the failures
        table); ``None`` when there is no failures table to read.
    personal_data
        Show names and email addresses as they are (masked by default).
    """
    messages = peek(sqs, queue_url, max_messages)
    ids = [message.get("MessageId", "") for message in messages]
    failures = find_failures(ids) if find_failures is not None and ids else {}
    return [
        describe_message(message, failures.get(id_), personal_data=personal_data)
        for message, id_ in zip(messages, ids, strict=True)
    ]
