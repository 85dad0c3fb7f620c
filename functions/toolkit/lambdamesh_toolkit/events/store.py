"""Event streams on DynamoDB: append with optimistic concurrency, read from a version.

A stream is the history of one thing, named by its ``stream_id`` (``order-o-123``); its events
are numbered 1, 2, 3, ... (``version``, no gaps). Each event is the envelope the wire already
carries (:class:`~lambdamesh_toolkit.contracts.events.EventEnvelope`), stored as the same JSON
the publishers send, so what a stream holds can be published as it is.

Event store table (one per service that keeps its state as events; created by its template)
    Partition key ``stream_id`` (S), sort key ``version`` (N) (:func:`table_definition`).
    Each item is one event: ``event`` (S, the envelope's ``model_dump_json()``), ``event_id``
    (S) and ``type`` (S) copied from it so that they are read without parsing it, and
    ``recorded_at`` (S, ISO 8601 UTC: when the store wrote it; the envelope's ``time`` says
    when it happened). No TTL: a stream is never shortened. Functions need
    ``dynamodb:PutItem`` and ``dynamodb:ConditionCheckItem`` (what ``TransactWriteItems``
    does) and ``dynamodb:Query`` on it.

Optimistic concurrency
    A writer reads a stream (:meth:`EventStore.read`), decides, and appends its events after
    the version it read (:meth:`EventStore.append`, ``expected_version``). The append is one
    ``TransactWriteItems``: a put of each new ``(stream_id, version)`` item on condition that
    it does not exist yet, and a check that the item at ``expected_version`` does (so a version
    ahead of the stream cannot leave a gap). If another writer appended first, a condition
    fails, nothing at all is written, and :class:`ConcurrencyError` says so: the writer
    reloads, decides again and appends again (:func:`retry_on_conflict`). Of writers that read
    the same version, one appends and the others are refused; on AWS one whose transaction
    meets another in flight (``TransactionConflict``) is refused the same way.

A retry after a lost answer
    botocore's own retries of one append send the same ``ClientRequestToken``, which DynamoDB
    answers with the first request's success for 10 minutes. Anything that repeats the append
    itself (a redelivered message, a retried request) sends a new transaction, and if the
    first was written the repeat finds its own events in place: :class:`ConcurrencyError`.
    The caller recognises it with :meth:`EventStore.already_appended` (the stream holds
    exactly those event ids right after ``expected_version``): the append had succeeded, the
    stream's version after it is ``expected_version + len(events)``, and the caller carries
    on as if it had heard so. Events built with the same ids each time
    (:func:`~lambdamesh_toolkit.events.envelope.derived_event_id`) make a repeat recognisable.

>>> definition = table_definition()
>>> [(key["AttributeName"], key["KeyType"]) for key in definition["KeySchema"]]
[('stream_id', 'HASH'), ('version', 'RANGE')]
>>> error = ConcurrencyError("order-o-1", expected_version=2, actual_version=3)
>>> error.message, error.status
("stream 'order-o-1' is at version 3, not 2 as expected", 409)
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypedDict

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.aws.dynamodb import (
    ITEM_CONDITION_FAILED,
    cancellation_reasons,
    condition_failed,
)
from lambdamesh_toolkit.contracts.events import EventEnvelope
from lambdamesh_toolkit.deadline import remaining_s
from lambdamesh_toolkit.errors import Conflict
from lambdamesh_toolkit.events.envelope import event_data, parse_envelope
from lambdamesh_toolkit.resilience import MIN_ATTEMPT_S
from lambdamesh_toolkit.trace_context import TRACEPARENT, current_traceparent

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeDefinitionTypeDef,
        AttributeValueTypeDef,
        KeySchemaElementTypeDef,
        QueryInputTypeDef,
        TransactWriteItemTypeDef,
    )

#: Partition key (``S``): the stream's id.
STREAM_ID_ATTRIBUTE = "stream_id"
#: Sort key (``N``): the event's position in its stream, from 1.
VERSION_ATTRIBUTE = "version"
#: The envelope as JSON (``S``).
EVENT_ATTRIBUTE = "event"
#: The envelope's ``id`` and ``type`` (``S``), readable without parsing ``event``.
EVENT_ID_ATTRIBUTE = "event_id"
TYPE_ATTRIBUTE = "type"
#: When the store wrote the event (``S``, ISO 8601 UTC).
RECORDED_AT_ATTRIBUTE = "recorded_at"
#: The W3C ``traceparent`` of the hop that appended the event (``S``; absent outside a hop):
#: the stream's functions continue that trace (:mod:`lambdamesh_toolkit.trace_context`).
TRACEPARENT_ATTRIBUTE = TRACEPARENT
#: DynamoDB's largest ``TransactWriteItems``, in items.
MAX_TRANSACTION_ITEMS = 100
#: The cancellation code of a transaction item another transaction was writing at the time.
ITEM_TRANSACTION_CONFLICT = "TransactionConflict"


class TableDefinition(TypedDict):
    """The event store table's keys, as ``CreateTable`` and CloudFormation name them."""

    KeySchema: list[KeySchemaElementTypeDef]
    AttributeDefinitions: list[AttributeDefinitionTypeDef]


def table_definition() -> TableDefinition:
    """The key schema and attribute definitions of an event store table.

    Spread into ``CreateTable`` (``client.create_table(TableName=..., BillingMode=...,
    **table_definition())``) or copied into a template's ``AWS::DynamoDB::Table`` properties,
    which use the same names.
    """
    return {
        "KeySchema": [
            {"AttributeName": STREAM_ID_ATTRIBUTE, "KeyType": "HASH"},
            {"AttributeName": VERSION_ATTRIBUTE, "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": STREAM_ID_ATTRIBUTE, "AttributeType": "S"},
            {"AttributeName": VERSION_ATTRIBUTE, "AttributeType": "N"},
        ],
    }


class ConcurrencyError(Conflict):
    """The stream is not at the version the writer read: reload, decide again, append again.

    Nothing of the refused append was written. Left unhandled on an API route it answers 409.

    Parameters
    ----------
    stream_id : str
        The stream.
    expected_version : int
        The version the append was made after.
    actual_version : int | None
        The stream's version read just after the refusal (it may have moved on since);
        ``None`` when that read failed.
    """

    def __init__(
        self, stream_id: str, expected_version: int, actual_version: int | None = None
    ) -> None:
        where = "ahead" if actual_version is None else f"at version {actual_version}"
        super().__init__(f"stream {stream_id!r} is {where}, not {expected_version} as expected")
        self.stream_id = stream_id
        self.expected_version = expected_version
        self.actual_version = actual_version


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as its stream holds it.

    Attributes
    ----------
    version : int
        Its position in the stream, from 1.
    envelope : EventEnvelope
        The event, as appended.
    """

    version: int
    envelope: EventEnvelope


class EventStore:
    """Streams of events in one DynamoDB table (the layout in this module's docstring).

    Parameters
    ----------
    table_name : str
        The table.
    client : DynamoDBClient | None
        A client to use (tests pass one); by default the process's shared client of
        ``profile``, on first use.
    profile : ClientProfile
        Timeouts and retries of the default client: :data:`~lambdamesh_toolkit.aws.clients.REQUEST`
        on an API route, :data:`~lambdamesh_toolkit.aws.clients.CONSUMER` in a consumer.
    clock : Callable[[], datetime] | None
        What ``recorded_at`` reads; the current UTC time by default.
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        profile: clients.ClientProfile = clients.REQUEST,
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        if not table_name:
            raise ValueError("table_name is empty")
        self.table_name = table_name
        self._client = client
        self._profile = profile
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    def append(
        self,
        stream_id: str,
        events: Sequence[EventEnvelope],
        *,
        expected_version: int,
        also: Sequence[TransactWriteItemTypeDef] = (),
    ) -> int:
        """Append ``events``, in order, right after ``expected_version``, all or none.

        Parameters
        ----------
        stream_id : str
            The stream.
        events : Sequence[EventEnvelope]
            The events; each one's ``data`` is validated against its registered model first.
            None is written when any is refused.
        expected_version : int
            The version the writer read: 0 for a stream that has no events yet.
        also : Sequence[TransactWriteItemTypeDef]
            More writes to commit in the same transaction, all or none with the events (say,
            completing the idempotency claim of the request that appends them). When one of
            their conditions fails and the stream's did not, the transaction's
            ``ClientError`` is raised as it is.

        Returns
        -------
        int
            The stream's new version, ``expected_version + len(events)``; ``expected_version``
            itself when ``events`` is empty (nothing is sent).

        Raises
        ------
        ConcurrencyError
            When the stream is not at ``expected_version``: another writer appended first (or
            is appending the same versions right now), or the stream is behind it. Nothing
            was written.
        ValueError
            When ``stream_id`` is empty, ``expected_version`` negative, an event id repeated,
            or the append needs more than DynamoDB's 100 transaction items (``events``, plus
            one checking ``expected_version`` when it is not 0).
        UnknownEventError, InvalidEventError
            When an event's data does not match its registered model.
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            Any other refusal (an item over 400 KB, throttling after botocore's retries).
        """
        _check_stream(stream_id)
        _check_version(expected_version, "expected_version")
        if not events:
            return expected_version
        ids = [event.id for event in events]
        if len(set(ids)) != len(ids):
            raise ValueError(f"an event id is repeated in the append to {stream_id!r}")
        items = len(events) + (1 if expected_version else 0) + len(also)
        if items > MAX_TRANSACTION_ITEMS:
            raise ValueError(
                f"an append is one DynamoDB transaction of at most {MAX_TRANSACTION_ITEMS}"
                f" items; {len(events)} events after version {expected_version}"
                f" and {len(also)} other writes need {items}"
            )
        for event in events:
            event_data(event)
        recorded_at = self._clock().astimezone(dt.UTC).isoformat()
        traceparent = current_traceparent()
        writes: list[TransactWriteItemTypeDef] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": _item(
                        stream_id, expected_version + offset, event, recorded_at, traceparent
                    ),
                    "ConditionExpression": "attribute_not_exists(#stream)",
                    "ExpressionAttributeNames": {"#stream": STREAM_ID_ATTRIBUTE},
                }
            }
            for offset, event in enumerate(events, start=1)
        ]
        if expected_version:
            writes.append(
                {
                    "ConditionCheck": {
                        "TableName": self.table_name,
                        "Key": _key(stream_id, expected_version),
                        "ConditionExpression": "attribute_exists(#stream)",
                        "ExpressionAttributeNames": {"#stream": STREAM_ID_ATTRIBUTE},
                    }
                }
            )
        stream_items = len(writes)
        writes.extend(also)
        from botocore.exceptions import ClientError  # botocore on first use, not at cold start

        try:
            self._dynamodb().transact_write_items(TransactItems=writes)
        except ClientError as error:
            if not _is_conflict(error, stream_items):
                raise
            raise ConcurrencyError(
                stream_id, expected_version, self._version_after_conflict(stream_id)
            ) from error
        return expected_version + len(events)

    def read(self, stream_id: str, *, after_version: int = 0) -> list[StoredEvent]:
        """The stream's events after ``after_version``, in order (consistent reads).

        Parameters
        ----------
        stream_id : str
            The stream; one that has no events reads as empty.
        after_version : int
            Leave out the events up to this version (those a caller has already applied).

        Raises
        ------
        ValueError
            When ``stream_id`` is empty or ``after_version`` negative.
        InvalidEventError
            When a stored event is not an envelope.
        """
        _check_stream(stream_id)
        _check_version(after_version, "after_version")
        request: QueryInputTypeDef = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#stream = :stream AND #version > :after",
            "ExpressionAttributeNames": {
                "#stream": STREAM_ID_ATTRIBUTE,
                "#version": VERSION_ATTRIBUTE,
            },
            "ExpressionAttributeValues": {
                ":stream": {"S": stream_id},
                ":after": {"N": str(after_version)},
            },
            "ConsistentRead": True,
        }
        return [
            StoredEvent(
                version=int(item[VERSION_ATTRIBUTE]["N"]),
                envelope=parse_envelope(item[EVENT_ATTRIBUTE]["S"]),
            )
            for item in self._query(request)
        ]

    def current_version(self, stream_id: str) -> int:
        """The version of the stream's last event; 0 when it has none (one consistent read).

        Raises
        ------
        ValueError
            When ``stream_id`` is empty.
        """
        _check_stream(stream_id)
        answer = self._dynamodb().query(
            TableName=self.table_name,
            KeyConditionExpression="#stream = :stream",
            ExpressionAttributeNames={
                "#stream": STREAM_ID_ATTRIBUTE,
                "#version": VERSION_ATTRIBUTE,
            },
            ExpressionAttributeValues={":stream": {"S": stream_id}},
            ProjectionExpression="#version",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = answer.get("Items", [])
        return int(str(items[0][VERSION_ATTRIBUTE]["N"])) if items else 0

    def already_appended(
        self, stream_id: str, events: Sequence[EventEnvelope], *, expected_version: int
    ) -> bool:
        """Whether the stream holds ``events`` (by id, in order) right after
        ``expected_version``: an append refused with :class:`ConcurrencyError` was the repeat of
        one that succeeded, and the stream's version after it is
        ``expected_version + len(events)``.

        Reads only those versions, keys and ids (one consistent query). Empty ``events`` are
        held trivially.
        """
        _check_stream(stream_id)
        _check_version(expected_version, "expected_version")
        if not events:
            return True
        request: QueryInputTypeDef = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#stream = :stream AND #version BETWEEN :first AND :last",
            "ExpressionAttributeNames": {
                "#stream": STREAM_ID_ATTRIBUTE,
                "#version": VERSION_ATTRIBUTE,
                "#id": EVENT_ID_ATTRIBUTE,
            },
            "ExpressionAttributeValues": {
                ":stream": {"S": stream_id},
                ":first": {"N": str(expected_version + 1)},
                ":last": {"N": str(expected_version + len(events))},
            },
            "ProjectionExpression": "#version, #id",
            "ConsistentRead": True,
        }
        stored = [str(item[EVENT_ID_ATTRIBUTE]["S"]) for item in self._query(request)]
        return stored == [event.id for event in events]

    def _version_after_conflict(self, stream_id: str) -> int | None:
        try:
            return self.current_version(stream_id)
        except Exception:  # the conflict is the answer; the version only describes it
            return None

    def _query(self, request: QueryInputTypeDef) -> Iterator[Mapping[str, Any]]:
        """Every item the query matches, page after page (DynamoDB pages at 1 MB)."""
        client = self._dynamodb()
        while True:
            answer = client.query(**request)
            yield from answer.get("Items", [])
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            request = {**request, "ExclusiveStartKey": last}

    def _dynamodb(self) -> DynamoDBClient:
        return self._client or clients.dynamodb(self._profile)


def retry_on_conflict[T](
    operation: Callable[[], T],
    *,
    attempts: int = 5,
    max_pause_s: float = 0.05,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``operation`` again while it raises :class:`ConcurrencyError`: reload and retry.

    ``operation`` must do the whole read-decide-append each time it runs: reload the stream,
    decide from what it finds (which may be that there is nothing left to do), append after
    the version it read. A random pause of up to ``max_pause_s`` before each retry keeps
    writers that collided from colliding again in step. No retry starts after the request's
    deadline (:mod:`lambdamesh_toolkit.deadline`). Built on tenacity, imported on first use.

    >>> answers = [ConcurrencyError("order-o-1", 1, 2), "appended"]
    >>> def reload_decide_append():
    ...     answer = answers.pop(0)
    ...     if isinstance(answer, Exception):
    ...         raise answer
    ...     return answer
    >>> retry_on_conflict(reload_decide_append, sleep=lambda seconds: None)
    'appended'

    Parameters
    ----------
    operation : Callable[[], T]
        Reloads, decides and appends.
    attempts : int
        Runs at most, the first included.
    max_pause_s : float
        The longest pause before a retry.
    sleep : Callable[[float], None]
        How to pause (tests record instead).

    Returns
    -------
    T
        What the first run that was not refused returned.

    Raises
    ------
    ConcurrencyError
        The last refusal, when every attempt was refused (or the deadline came first).
    Exception
        Anything else ``operation`` raised, at once.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        stop_after_attempt,
        stop_any,
        stop_before_delay,
    )
    from tenacity.stop import stop_base

    stops: list[stop_base] = [stop_after_attempt(attempts)]
    left = remaining_s()
    if left is not None:
        stops.append(stop_before_delay(max(0.0, left - MIN_ATTEMPT_S)))
    retrying = Retrying(
        stop=stop_any(*stops),
        wait=lambda _: random.uniform(0.0, max_pause_s),  # noqa: S311 - jitter, not secrets
        retry=retry_if_exception_type(ConcurrencyError),
        sleep=sleep,
        reraise=True,
    )
    return retrying(operation)


def _item(
    stream_id: str,
    version: int,
    event: EventEnvelope,
    recorded_at: str,
    traceparent: str | None,
) -> dict[str, AttributeValueTypeDef]:
    item: dict[str, AttributeValueTypeDef] = {
        **_key(stream_id, version),
        EVENT_ID_ATTRIBUTE: {"S": event.id},
        TYPE_ATTRIBUTE: {"S": event.type},
        RECORDED_AT_ATTRIBUTE: {"S": recorded_at},
        EVENT_ATTRIBUTE: {"S": event.model_dump_json()},
    }
    if traceparent is not None:
        item[TRACEPARENT_ATTRIBUTE] = {"S": traceparent}
    return item


def _key(stream_id: str, version: int) -> dict[str, AttributeValueTypeDef]:
    return {STREAM_ID_ATTRIBUTE: {"S": stream_id}, VERSION_ATTRIBUTE: {"N": str(version)}}


def _is_conflict(error: ClientError, stream_items: int) -> bool:
    """Whether a refused transaction met another writer on the stream: a condition on one of
    the first ``stream_items`` items (the stream's) did not hold, or another transaction was
    writing one of them (on AWS, two appends racing)."""
    reasons = cancellation_reasons(error)
    if not reasons:  # not a cancelled transaction, or no reasons given
        return condition_failed(error)
    return any(
        reason.code in (ITEM_CONDITION_FAILED, ITEM_TRANSACTION_CONFLICT)
        for reason in reasons[:stream_items]
    )


def _check_stream(stream_id: str) -> None:
    if not stream_id:
        raise ValueError("stream_id is empty")


def _check_version(version: int, name: str) -> None:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"{name} must be a whole number from 0, not {version!r}")
