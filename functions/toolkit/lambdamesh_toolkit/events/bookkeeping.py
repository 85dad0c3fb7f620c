"""What a consumer remembers: the events it processed, and why a message failed.

Two DynamoDB tables, laid out here and nowhere else; ``lambdamesh dlq show`` reads the failures
through this module too:

- a processed-marks table, for a consumer that keeps marks (``EventConsumer`` with an
  ``idempotency_table``): key ``id`` = ``<service>#<event id>``, TTL ``expiration``
  (:data:`IDEMPOTENCY_TTL`). An item means the service processed that event. None of this
  system's consumers keeps marks (each makes its side effects conditional, see
  :class:`NoMarks`), so the messaging stack has no such table: a consumer that needs one
  brings it.
- ``EventFailuresTable`` (the messaging stack's, ``infra/topology/messaging.json``): key ``id``
  = the SQS message id (a message keeps it in its DLQ), the last failure's ``service``,
  ``queue``, ``reason``, ``attempts``, ``at`` and, when known, ``event_type``, ``event_id``,
  ``correlation_id``; TTL ``expiration`` (:data:`FAILURE_TTL`, the DLQs' retention).

>>> import datetime as dt
>>> failure = RecordFailure("m-1", "payments", "q", "ValueError: x", 2,
...                         dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
>>> RecordFailure.from_item(failure.to_item()) == failure
True
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.aws.dynamodb import until_processed

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesTypeDef,
        WriteRequestTypeDef,
    )

#: Key attribute (``S``) of the idempotency and failures tables.
EVENT_TABLE_KEY = "id"
#: TTL attribute (epoch seconds, ``N``) of the idempotency and failures tables.
EVENT_TABLE_TTL_ATTRIBUTE = "expiration"
#: The messaging stack's Output naming the failures table.
FAILURES_TABLE_OUTPUT = "EventFailuresTable"
#: How long an event id is remembered as processed.
IDEMPOTENCY_TTL = dt.timedelta(days=7)
#: How long a failure is kept: the DLQs' retention.
FAILURE_TTL = dt.timedelta(days=14)
#: Longest reason kept in the failures table.
MAX_REASON_CHARS = 1000
#: DynamoDB's largest BatchGetItem and BatchWriteItem.
MAX_BATCH_GET_KEYS = 100
MAX_BATCH_WRITE_ITEMS = 25


def idempotency_key(service: str, event_id: str) -> str:
    """The idempotency table's key of ``event_id`` processed by ``service``.

    >>> idempotency_key("payments", "e-1")
    'payments#e-1'
    """
    return f"{service}#{event_id}"


@dataclass(frozen=True, slots=True)
class RecordFailure:
    """Why a record failed, as written to the failures table.

    Attributes
    ----------
    message_id : str
        SQS message id (the table key; the message keeps it in the DLQ).
    service : str
        The consuming service.
    queue : str
        Name of the queue the record came from.
    reason : str
        What went wrong.
    attempts : int
        ``ApproximateReceiveCount`` of this receive.
    at : datetime
        When it failed (UTC).
    event_type : str | None
        The event's type, when known (from the envelope or the ``type`` attribute).
    event_id : str | None
        The event's id, when the envelope could be read.
    correlation_id : str | None
        The correlation id, when known.
    """

    message_id: str
    service: str
    queue: str
    reason: str
    attempts: int
    at: dt.datetime
    event_type: str | None = None
    event_id: str | None = None
    correlation_id: str | None = None

    def to_item(self) -> dict[str, AttributeValueTypeDef]:
        """Return the DynamoDB item (absent values are left out), TTL 14 days from ``at``."""
        item: dict[str, AttributeValueTypeDef] = {
            EVENT_TABLE_KEY: {"S": self.message_id},
            "service": {"S": self.service},
            "queue": {"S": self.queue},
            "reason": {"S": self.reason[:MAX_REASON_CHARS]},
            "attempts": {"N": str(self.attempts)},
            "at": {"S": self.at.isoformat()},
            EVENT_TABLE_TTL_ATTRIBUTE: {"N": str(int((self.at + FAILURE_TTL).timestamp()))},
        }
        for name in ("event_type", "event_id", "correlation_id"):
            value = getattr(self, name)
            if value is not None:
                item[name] = {"S": value}
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> RecordFailure:
        """Read a failure back from its DynamoDB item."""

        def text(name: str) -> str | None:
            value = item.get(name)
            return str(value["S"]) if value is not None else None

        return cls(
            message_id=str(item[EVENT_TABLE_KEY]["S"]),
            service=str(item["service"]["S"]),
            queue=str(item["queue"]["S"]),
            reason=str(item["reason"]["S"]),
            attempts=int(item["attempts"]["N"]),
            at=dt.datetime.fromisoformat(str(item["at"]["S"])),
            event_type=text("event_type"),
            event_id=text("event_id"),
            correlation_id=text("correlation_id"),
        )


class IdempotencyStore(Protocol):
    """Remembers which events a service has processed; read and written a batch at a time."""

    def processed_among(self, keys: Collection[str]) -> set[str]:
        """The keys (:func:`idempotency_key`) among ``keys`` that are marked processed."""
        ...

    def mark_processed(self, keys: Collection[str], *, expires_at: int) -> None:
        """Mark every key processed until ``expires_at`` (epoch seconds)."""
        ...


class FailureStore(Protocol):
    """Keeps the last failure of each SQS message."""

    def record(self, failure: RecordFailure) -> None:
        """Store ``failure``, replacing an earlier one of the same message."""
        ...


class NoMarks:
    """:class:`IdempotencyStore` that remembers nothing: every delivery runs its handler.

    For a consumer whose handlers make every side effect conditional (a write keyed by the
    order, a version condition, an event store's expected version), so that a repeat changes
    nothing and at most publishes again the event it stored the first time. Marks would only
    spare such a repeat its reads, and cost two requests a batch on every batch; a repeat is
    rare (a redelivery after a crash or a timeout, a duplicate publish).

    >>> marks = NoMarks()
    >>> marks.mark_processed(["payments#e-1"], expires_at=0)
    >>> marks.processed_among(["payments#e-1"])
    set()
    """

    def processed_among(self, keys: Collection[str]) -> set[str]:
        """None of them: nothing is remembered."""
        return set()

    def mark_processed(self, keys: Collection[str], *, expires_at: int) -> None:
        """Remember nothing."""


class DynamoDbIdempotencyStore:
    """:class:`IdempotencyStore` on the idempotency table.

    One ``BatchGetItem`` reads the marks of up to 100 events and one ``BatchWriteItem`` writes
    up to 25, so a batch of records costs two requests, not two per record. Keys a batch
    request leaves unprocessed (throttling) are asked again after a short backoff.

    Parameters
    ----------
    table_name : str
        The table (``EVENT_IDEMPOTENCY_TABLE``).
    client : DynamoDBClient | None
        A client to use; by default the process's shared consumer client, on first use.
    """

    #: Requests sent at most for one batch, and the pause before the second.
    UNPROCESSED_ATTEMPTS = 4
    UNPROCESSED_BACKOFF_S = 0.05

    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    def processed_among(self, keys: Collection[str]) -> set[str]:
        """Read the marks with consistent reads (a redelivery may follow a mark closely).

        Raises
        ------
        UnprocessedItemsError
            When DynamoDB kept leaving keys unread.
        """
        items = batch_get(
            self._dynamodb(),
            self.table_name,
            keys,
            keys_only=True,
            what=f"processed marks in {self.table_name}",
            attempts=self.UNPROCESSED_ATTEMPTS,
            first_pause_s=self.UNPROCESSED_BACKOFF_S,
        )
        return {str(item[EVENT_TABLE_KEY]["S"]) for item in items}

    def mark_processed(self, keys: Collection[str], *, expires_at: int) -> None:
        """Put every mark (a later mark of the same event replaces the earlier one).

        Raises
        ------
        UnprocessedItemsError
            When DynamoDB kept leaving marks unwritten.
        """
        client = self._dynamodb()
        unique = list(dict.fromkeys(keys))  # BatchWriteItem refuses two writes of one key
        for start in range(0, len(unique), MAX_BATCH_WRITE_ITEMS):
            writes: list[WriteRequestTypeDef] = [
                {
                    "PutRequest": {
                        "Item": {
                            EVENT_TABLE_KEY: {"S": key},
                            EVENT_TABLE_TTL_ATTRIBUTE: {"N": str(expires_at)},
                        }
                    }
                }
                for key in unique[start : start + MAX_BATCH_WRITE_ITEMS]
            ]
            request: dict[str, list[WriteRequestTypeDef]] = {self.table_name: writes}
            for _ in until_processed(
                lambda part: client.batch_write_item(RequestItems=part),
                request,
                leftover="UnprocessedItems",
                what=f"processed marks in {self.table_name}",
                attempts=self.UNPROCESSED_ATTEMPTS,
                first_pause_s=self.UNPROCESSED_BACKOFF_S,
            ):
                pass

    def _dynamodb(self) -> DynamoDBClient:
        return self._client or clients.dynamodb(clients.CONSUMER)


class DynamoDbFailureStore:
    """:class:`FailureStore` on the failures table; also read back by the DLQ tooling.

    Parameters
    ----------
    table_name : str
        The table (``EVENT_FAILURES_TABLE``).
    client : DynamoDBClient | None
        A client to use; by default the process's shared consumer client, on first use.
    """

    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    def record(self, failure: RecordFailure) -> None:
        """Put the failure, replacing the previous one of the message (the last error wins)."""
        self._dynamodb().put_item(TableName=self.table_name, Item=failure.to_item())

    def get(self, message_id: str) -> RecordFailure | None:
        """Return the last failure recorded for ``message_id``, if any."""
        return self.get_many([message_id]).get(message_id)

    def get_many(self, message_ids: Iterable[str]) -> dict[str, RecordFailure]:
        """The last failures of ``message_ids``, by message id (ids without one are left out).

        Raises
        ------
        UnprocessedItemsError
            When DynamoDB kept leaving keys unread.
        """
        items = batch_get(
            self._dynamodb(), self.table_name, message_ids, what=f"failures in {self.table_name}"
        )
        failures = (RecordFailure.from_item(item) for item in items)
        return {failure.message_id: failure for failure in failures}

    def _dynamodb(self) -> DynamoDBClient:
        return self._client or clients.dynamodb(clients.CONSUMER)


def batch_get(
    client: DynamoDBClient,
    table_name: str,
    keys: Iterable[str],
    *,
    what: str,
    keys_only: bool = False,
    attempts: int = 4,
    first_pause_s: float = 0.05,
) -> Iterator[Mapping[str, Any]]:
    """The items of ``keys`` (values of :data:`EVENT_TABLE_KEY`) that exist, read consistently
    with as few ``BatchGetItem`` requests as DynamoDB allows.

    Raises
    ------
    UnprocessedItemsError
        When DynamoDB kept leaving keys unread after ``attempts`` requests.
    """
    unique = list(dict.fromkeys(keys))  # BatchGetItem refuses duplicate keys
    for start in range(0, len(unique), MAX_BATCH_GET_KEYS):
        chunk = unique[start : start + MAX_BATCH_GET_KEYS]
        request: KeysAndAttributesTypeDef = {
            "Keys": [{EVENT_TABLE_KEY: {"S": key}} for key in chunk],
            "ConsistentRead": True,
        }
        if keys_only:
            request["ProjectionExpression"] = "#k"
            request["ExpressionAttributeNames"] = {"#k": EVENT_TABLE_KEY}
        for answer in until_processed(
            lambda part: client.batch_get_item(RequestItems=part),
            {table_name: request},
            leftover="UnprocessedKeys",
            what=what,
            attempts=attempts,
            first_pause_s=first_pause_s,
        ):
            yield from answer.get("Responses", {}).get(table_name, [])
