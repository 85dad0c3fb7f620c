"""The dead letters of one correlation id: the hops that ended in a dead-letter queue.

A message whose consumer gave up on it waits in its queue's DLQ with its correlation id (a
message attribute, or the envelope's field) and its ``traceparent``. Each such message is read
without being consumed, joined to the reason its consumer recorded, as ``lambdamesh dlq show``
reads it (:mod:`lambdamesh.dlq.letters`), and becomes a ``dlq`` hop.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from lambdamesh.dlq.letters import read_dead_letters
from lambdamesh.dlq.queues import list_dead_letter_queues
from lambdamesh.trace.records import HopRecord, hop_from_dead_letter

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

    from lambdamesh_toolkit.events.bookkeeping import RecordFailure

MAX_PER_QUEUE: Final = 100
"""How many messages of each dead-letter queue are looked at."""


def dead_letter_hops(
    sqs: SQSClient,
    prefix: str,
    correlation_id: str,
    find_failures: Callable[[list[str]], Mapping[str, RecordFailure]] | None = None,
    *,
    max_per_queue: int = MAX_PER_QUEUE,
) -> list[HopRecord]:
    """The messages of every ``<prefix>-*-dlq`` queue that carry ``correlation_id``, as hops.

    Parameters
    ----------
    sqs
        SQS.
    prefix
        The stack prefix deploy used.
    correlation_id
        The id.
    find_failures
        Message ids → their failure records, to give each hop its reason; ``None`` without a
        failures table.
    max_per_queue
        Look at no more messages than this in each queue.
    """
    found: list[HopRecord] = []
    for queue in list_dead_letter_queues(sqs, prefix):
        if queue.messages + queue.in_flight + queue.delayed == 0:
            continue
        letters = read_dead_letters(sqs, queue.url, max_per_queue, find_failures)
        found += [
            hop_from_dead_letter(letter, queue.name, prefix)
            for letter in letters
            if letter.correlation_id == correlation_id
        ]
    return found
