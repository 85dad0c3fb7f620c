"""Redriven messages come back as new messages, as they do on AWS.

AWS's dead-letter queue redrive (``StartMessageMoveTask``) treats every message it moves as a new
one: a new message id, a new enqueue time, no receives yet. LocalStack 4.14.0's move task puts
the same message back, its ``ApproximateReceiveCount`` still above the source queue's
``maxReceiveCount`` and its ``DeadLetterQueueSourceArn`` still set. A consumer that backs off by
the receive count (the toolkit's does: 1, 2, 4, 8 s ...) then waits 32 s, 64 s, 128 s ... between
the retries of a message that fails again: it stays invisible for long stretches, and reaches its
DLQ again only after many minutes, while ``dlq list`` shows nothing.

:func:`apply_fresh_redrive`, an ``on_infra_start`` hook, hands the move task a view of its
destination queue whose ``put`` enqueues :func:`fresh_message` of what it moves: a new message id,
``SentTimestamp`` now, the receive count and the dead-letter source gone, and on a FIFO queue the
new id as deduplication id (the old one would be dropped as a duplicate for five minutes). The
method it wraps, ``MessageMoveTaskManager._get_queue_by_arn``, is looked up when the hook runs;
when it is not there the move task is left as LocalStack wrote it, with a warning.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import wrap_once, written_for_installed_release

#: What a fresh message has not got yet: its receives and where it was dead-lettered from.
DROPPED_ATTRIBUTES: Final = frozenset(
    {
        "ApproximateReceiveCount",
        "ApproximateFirstReceiveTimestamp",
        "DeadLetterQueueSourceArn",
        "SequenceNumber",
        "MessageDeduplicationId",
        "MessageGroupId",
    }
)


def fresh_message(
    message: Mapping[str, Any], *, now_ms: int | None = None, new_id: str | None = None
) -> dict[str, Any]:
    """A copy of ``message`` (LocalStack's ``Message`` dict) as a new message would be.

    >>> old = {"MessageId": "m-1", "Body": "b",
    ...        "Attributes": {"ApproximateReceiveCount": "6", "SentTimestamp": "1",
    ...                       "DeadLetterQueueSourceArn": "arn:q", "SenderId": "000"}}
    >>> fresh_message(old, now_ms=2000, new_id="m-2")
    {'MessageId': 'm-2', 'Body': 'b', 'Attributes': {'SentTimestamp': '2000', 'SenderId': '000'}}
    """
    attributes = {
        name: value
        for name, value in (message.get("Attributes") or {}).items()
        if name not in DROPPED_ATTRIBUTES
    }
    attributes["SentTimestamp"] = str(int(time.time() * 1000) if now_ms is None else now_ms)
    return {**message, "MessageId": new_id or str(uuid.uuid4()), "Attributes": attributes}


class FreshDeliveryQueue:
    """A queue whose ``put`` enqueues a fresh copy of the message; the rest is the queue's.

    Parameters
    ----------
    queue : Any
        LocalStack's ``SqsQueue``.
    """

    def __init__(self, queue: Any) -> None:
        self._queue = queue

    def put(self, message: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Enqueue a fresh copy of ``message`` (on FIFO, deduplicated by its new id)."""
        fresh = fresh_message(message)
        if kwargs.get("message_deduplication_id") is not None:
            kwargs["message_deduplication_id"] = fresh["MessageId"]
        return self._queue.put(fresh, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._queue, name)


def fresh_delivery(
    get_queue_by_arn: Callable[[Any, str], Any],
) -> Callable[[Any, str], FreshDeliveryQueue]:
    """Wrap the move task's queue lookup so that every queue it puts into delivers fresh."""

    def wrapped(self: Any, queue_arn: str) -> FreshDeliveryQueue:
        return FreshDeliveryQueue(get_queue_by_arn(self, queue_arn))

    wrapped.__wrapped__ = get_queue_by_arn  # type: ignore[attr-defined]
    return wrapped


def apply_fresh_redrive() -> None:
    """Make LocalStack's move task deliver fresh messages (idempotent)."""
    if not written_for_installed_release("fresh redrive"):
        return
    from localstack.services.sqs.provider import (  # type: ignore[import-not-found,unused-ignore]
        MessageMoveTaskManager,
    )

    wrap_once(MessageMoveTaskManager, "_get_queue_by_arn", fresh_delivery, "redrives")


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    # As in esm_tuning: registers the hook with plux, which resolves the entry point to it.
    _localstack_hooks.on_infra_start(name="lambdamesh_fresh_redrive")(apply_fresh_redrive)
