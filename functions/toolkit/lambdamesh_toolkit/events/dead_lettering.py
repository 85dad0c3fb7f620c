"""Dead-lettering at once what no retry can fix.

A record whose event can never be processed as it is (not an envelope, an unknown type or
version, data that breaks its contract, a handler's :class:`PermanentFailure` such as an address
the mail service refuses) would otherwise come back ``maxReceiveCount`` times, each after its
backoff, before SQS moved it to the dead-letter queue. The consumer sends it there itself, at
once, with the same body, message attributes and message group, plus the reason in the
``failure_reason`` attribute, then lets the batch delete it from its queue. Fix the cause, then
``lambdamesh dlq redrive`` brings it back as a fresh message.

The dead-letter queue is the one the source queue's ``RedrivePolicy`` names. A queue without
one, or a send that fails, leaves the record to the ordinary retries: nothing is dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.aws.sqs import queue_url
from lambdamesh_toolkit.trace_context import TRACEPARENT

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

#: The message attribute that carries why a message was dead-lettered at once.
FAILURE_REASON_ATTRIBUTE = "failure_reason"
#: SQS's largest number of message attributes.
MAX_MESSAGE_ATTRIBUTES = 10
#: How much of the reason the attribute keeps.
MAX_REASON_ATTRIBUTE_CHARS = 256


class PermanentFailure(Exception):  # noqa: N818 - a verdict on a record, as SQS names them
    """Raised by a handler for an event that no retry can process: dead-letter it now.

    Parameters
    ----------
    reason : str
        Why, for the failures table, the DLQ and the logs.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record to dead-letter: what SQS delivered, and why it failed."""

    queue_arn: str
    body: str
    attributes: Mapping[str, Any]
    """The record's ``messageAttributes``, in the Lambda event's form."""
    group_id: str | None
    message_id: str
    reason: str
    traceparent: str | None = None
    """The ``dead_letter`` hop's: a redriven copy's delivery is its child in a trace."""


class DeadLetterer:
    """Sends records to their queue's dead-letter queue.

    Parameters
    ----------
    client : SQSClient | None
        A client to use; by default the process's shared consumer client, on first use.
    """

    def __init__(self, client: SQSClient | None = None) -> None:
        self._client = client
        self._policies: dict[str, _RedrivePolicy] = {}

    def send(self, letter: DeadLetter) -> str | None:
        """Put ``letter`` in its DLQ; the new message's id, or ``None`` without a DLQ.

        Raises
        ------
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            When SQS refuses or cannot be reached.
        """
        client = self._sqs()
        url = self._dead_letter_url(client, letter.queue_arn)
        if url is None:
            return None
        request: dict[str, Any] = {
            "QueueUrl": url,
            "MessageBody": letter.body,
            "MessageAttributes": sqs_attributes(
                letter.attributes, letter.reason, traceparent=letter.traceparent
            ),
        }
        if url.endswith(".fifo"):
            request["MessageGroupId"] = letter.group_id or letter.message_id
            request["MessageDeduplicationId"] = letter.message_id
        answer = client.send_message(**request)
        return answer["MessageId"]

    def max_receive_count(self, queue_arn: str) -> int | None:
        """The queue's ``maxReceiveCount`` (read once), or ``None`` without a dead-letter queue.

        Raises
        ------
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            When SQS refuses or cannot be reached.
        """
        return self._policy(self._sqs(), queue_arn).max_receive_count

    def _dead_letter_url(self, client: SQSClient, queue_arn: str) -> str | None:
        return self._policy(client, queue_arn).dead_letter_url

    def _policy(self, client: SQSClient, queue_arn: str) -> _RedrivePolicy:
        if queue_arn not in self._policies:
            self._policies[queue_arn] = _read_redrive_policy(client, queue_arn)
        return self._policies[queue_arn]

    def _sqs(self) -> SQSClient:
        return self._client or clients.sqs(clients.CONSUMER)


@dataclass(frozen=True, slots=True)
class _RedrivePolicy:
    """What a queue's ``RedrivePolicy`` says: its DLQ's URL and ``maxReceiveCount``."""

    dead_letter_url: str | None = None
    max_receive_count: int | None = None


def _read_redrive_policy(client: SQSClient, queue_arn: str) -> _RedrivePolicy:
    answer = client.get_queue_attributes(
        QueueUrl=queue_url(client, queue_arn), AttributeNames=["RedrivePolicy"]
    )
    policy = answer.get("Attributes", {}).get("RedrivePolicy")
    if not policy:
        return _RedrivePolicy()
    parsed = json.loads(policy)
    return _RedrivePolicy(
        queue_url(client, str(parsed["deadLetterTargetArn"])), int(parsed["maxReceiveCount"])
    )


def sqs_attributes(
    attributes: Mapping[str, Any], reason: str, *, traceparent: str | None = None
) -> dict[str, MessageAttributeValueTypeDef]:
    """A record's message attributes in ``SendMessage``'s form, with the failure's reason (and,
    when given, ``traceparent`` in place of the one it came with).

    >>> attributes = {"type": {"stringValue": "order.placed", "dataType": "String"}}
    >>> converted = sqs_attributes(attributes, "no handler")
    >>> converted["type"], converted["failure_reason"]["StringValue"]
    ({'DataType': 'String', 'StringValue': 'order.placed'}, 'no handler')
    >>> sorted(sqs_attributes(attributes, "no handler", traceparent="00-...-01"))
    ['failure_reason', 'traceparent', 'type']
    """
    ours: dict[str, MessageAttributeValueTypeDef] = {
        FAILURE_REASON_ATTRIBUTE: {
            "DataType": "String",
            "StringValue": reason[:MAX_REASON_ATTRIBUTE_CHARS] or "unknown",
        }
    }
    if traceparent is not None:
        ours[TRACEPARENT] = {"DataType": "String", "StringValue": traceparent}
    converted: dict[str, MessageAttributeValueTypeDef] = {}
    for name, value in attributes.items():
        if len(converted) == MAX_MESSAGE_ATTRIBUTES - len(ours):
            break
        if name in ours or not isinstance(value, dict):
            continue
        data_type = value.get("dataType") or value.get("DataType")
        text = value.get("stringValue") or value.get("StringValue")
        if isinstance(data_type, str) and isinstance(text, str):
            converted[name] = {"DataType": data_type, "StringValue": text}
    return {**converted, **ours}
