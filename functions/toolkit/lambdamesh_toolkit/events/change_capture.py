"""Change data capture: a DynamoDB stream's records handled in order, an event store's new
events published from it.

A service that keeps its state as events (:mod:`lambdamesh_toolkit.events.store`) never
publishes while it writes: the table's stream (``NEW_IMAGE``) invokes a function with what was
written, and that function publishes each appended event (:class:`StreamPublisher`, a batch's
events together, ten to a request) or keeps a read model (:func:`process_in_order` with a
handler of one's own). What was committed is published, at least once, and nothing that was not
committed ever is.

In order, at least once
    :func:`process_in_order` hands the batch's records to the handler one at a time, in stream
    order. At the first one that fails it stops and reports that record and every later one in
    ``batchItemFailures`` (by ``SequenceNumber``): Lambda retries the shard from the failed
    record, so a later record never overtakes an earlier one, and a record handled before the
    failure may be handled again (the FIFO topic drops a repeated event id within five minutes
    and every consumer is idempotent: its side effects are conditional). Powertools'
    ``BatchProcessor`` is not used here: it hands every record to the handler whatever failed
    before it, which would publish an order's later events ahead of an earlier one that is
    retried. A handler that leaves work for the end of the batch (the publisher's requests)
    finishes it in ``end``, for every record handled before a failure too; the first record
    whose work ``end`` could not finish is where the shard is retried from.

A poison record does not block its shard
    A record no retry can handle (an item that is not an event, an event over SNS's size limit,
    a handler's :class:`~lambdamesh_toolkit.events.dead_lettering.PermanentFailure`) goes at once
    to the function's dead-letter queue (the event source's on-failure destination), as the
    stream record's JSON with the reason in the ``failure_reason`` message attribute, and the
    batch goes on. What fails for another reason is retried as above; the event source mapping's
    ``MaximumRetryAttempts``, ``BisectBatchOnFunctionError`` and on-failure destination bound
    those retries as AWS does.

>>> record = {
...     "eventName": "INSERT",
...     "dynamodb": {
...         "SequenceNumber": "100",
...         "NewImage": {"stream_id": {"S": "order-1"}, "version": {"N": "1"}},
...     },
... }
>>> seen = []
>>> process_in_order({"Records": [record]}, lambda change: seen.append(change.sequence_number))
{'batchItemFailures': []}
>>> seen
['100']
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.aws.sqs import queue_url
from lambdamesh_toolkit.contracts.events import EventEnvelope, EventError
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.dead_lettering import (
    FAILURE_REASON_ATTRIBUTE,
    MAX_REASON_ATTRIBUTE_CHARS,
    PermanentFailure,
)
from lambdamesh_toolkit.events.envelope import parse_envelope
from lambdamesh_toolkit.events.publishing import BatchEventPublisher, PreparedEvent
from lambdamesh_toolkit.events.store import EVENT_ATTRIBUTE, STREAM_ID_ATTRIBUTE, VERSION_ATTRIBUTE
from lambdamesh_toolkit.events.time_guard import TimeGuard
from lambdamesh_toolkit.faults import active_faults, happens, kill_process, wait_past_timeout
from lambdamesh_toolkit.hops import PUBLISH, STREAM, Hop, inbound_hop, log_hop, planned_hop
from lambdamesh_toolkit.logging import bind_invocation, get_logger
from lambdamesh_toolkit.privacy import mask_text
from lambdamesh_toolkit.trace_context import TRACEPARENT

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_sqs.client import SQSClient

#: An item's correlation id, when it keeps one (the stock items do; an event store's items keep
#: theirs in the envelope).
CORRELATION_ATTRIBUTE = "correlation_id"
#: The stream record types DynamoDB emits.
INSERT, MODIFY, REMOVE = "INSERT", "MODIFY", "REMOVE"


class MalformedStreamEventError(ValueError):
    """The invocation is not a DynamoDB stream batch (no ``Records`` list of records)."""


@dataclass(frozen=True, slots=True)
class Change:
    """One stream record, as DynamoDB Streams delivers it to Lambda.

    Attributes
    ----------
    event_name : str
        ``INSERT``, ``MODIFY`` or ``REMOVE``.
    sequence_number : str
        The record's position in its shard (what ``batchItemFailures`` names).
    new_image, old_image : Mapping[str, Any]
        The item after and before the write, in DynamoDB's attribute-value form
        (``{"S": ...}``); empty when the stream's view type does not carry it.
    raw : Mapping[str, Any]
        The whole record, as delivered.
    """

    event_name: str
    sequence_number: str
    new_image: Mapping[str, Any]
    old_image: Mapping[str, Any]
    raw: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AppendedEvent:
    """An event the stream reports appended to an event store.

    Attributes
    ----------
    stream_id : str
        The event store stream it was appended to.
    version : int
        Its position in that stream.
    envelope : EventEnvelope
        The event.
    """

    stream_id: str
    version: int
    envelope: EventEnvelope


def changes(event: Mapping[str, Any]) -> list[Change]:
    """The records of a DynamoDB stream invocation, in order.

    Raises
    ------
    MalformedStreamEventError
        When ``event`` has no ``Records`` list, or a record no ``dynamodb.SequenceNumber``.
    """
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise MalformedStreamEventError("not a DynamoDB stream event: no Records list")
    found: list[Change] = []
    for record in records:
        body = record.get("dynamodb") if isinstance(record, Mapping) else None
        sequence = body.get("SequenceNumber") if isinstance(body, Mapping) else None
        if not isinstance(sequence, str):
            raise MalformedStreamEventError("a stream record without dynamodb.SequenceNumber")
        assert isinstance(body, Mapping)  # for the type checker: checked with sequence
        found.append(
            Change(
                event_name=str(record.get("eventName", "")),
                sequence_number=sequence,
                new_image=body.get("NewImage") or {},
                old_image=body.get("OldImage") or {},
                raw=record,
            )
        )
    return found


def appended_event(change: Change) -> AppendedEvent | None:
    """The event an event store's stream record reports appended; ``None`` for any record
    but an ``INSERT`` (an event store only appends).

    Raises
    ------
    PermanentFailure
        When the inserted item is not an event store item holding an event envelope.
    """
    if change.event_name != INSERT:
        return None
    image = change.new_image
    stream_id = _image_value(image, STREAM_ID_ATTRIBUTE, "S")
    version_text = _image_value(image, VERSION_ATTRIBUTE, "N")
    body = _image_value(image, EVENT_ATTRIBUTE, "S")
    try:
        version = int(version_text)
    except ValueError:
        raise PermanentFailure(
            f"not an event store item: {VERSION_ATTRIBUTE} {version_text!r} is not a whole number"
        ) from None
    try:
        envelope = parse_envelope(body)
    except EventError as error:
        raise PermanentFailure(f"stream {stream_id} version {version}: {error}") from None
    return AppendedEvent(stream_id=stream_id, version=version, envelope=envelope)


def _image_value(image: Mapping[str, Any], name: str, kind: str) -> str:
    """The text of attribute ``name`` of type ``kind`` (``S``, ``N``) in a stream image.

    Raises
    ------
    PermanentFailure
        Naming the attribute, when the image lacks it or holds it with another type.
    """
    value = image.get(name)
    text = value.get(kind) if isinstance(value, Mapping) else None
    if not isinstance(text, str):
        raise PermanentFailure(
            f"not an event store item: no {name!r} of type {kind} ({STREAM_ID_ATTRIBUTE} S, "
            f"{VERSION_ATTRIBUTE} N and {EVENT_ATTRIBUTE} S are needed)"
        )
    return text


class StreamDeadLetters:
    """Sends stream records no retry can handle to a queue, with the reason.

    Parameters
    ----------
    queue_arn : str
        The queue (the event source's on-failure destination).
    client : SQSClient | None
        A client to use; by default the process's shared consumer client, on first use.
    """

    def __init__(self, queue_arn: str, *, client: SQSClient | None = None) -> None:
        if not queue_arn:
            raise ValueError("queue_arn is empty")
        self.queue_arn = queue_arn
        self._client = client

    def send(self, change: Change, reason: str) -> str:
        """Put the record in the queue; the new message's id.

        The reason is read by people (``lambdamesh dlq show``, the queue's attribute): an
        address that an exception's text carried is masked in it, as the consumers' are.

        Raises
        ------
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            When SQS refuses or cannot be reached (the record is then retried).
        """
        client = self._client or clients.sqs(clients.CONSUMER)
        answer = client.send_message(
            QueueUrl=queue_url(client, self.queue_arn),
            MessageBody=json.dumps(change.raw, separators=(",", ":"), default=str),
            MessageAttributes={
                FAILURE_REASON_ATTRIBUTE: {
                    "DataType": "String",
                    "StringValue": mask_text(reason)[:MAX_REASON_ATTRIBUTE_CHARS]
                    or "no reason given",
                },
                "sequence_number": {"DataType": "String", "StringValue": change.sequence_number},
            },
        )
        return answer["MessageId"]


def process_in_order(
    event: Mapping[str, Any],
    handle: Callable[[Change], None],
    *,
    dead_letters: StreamDeadLetters | None = None,
    logger: Logger | None = None,
    context: Any = None,
    begin: Callable[[Sequence[Change]], None] | None = None,
    end: Callable[[], str | None] | None = None,
    guard: TimeGuard | None = None,
) -> dict[str, list[dict[str, str]]]:
    """Hand a stream batch's records to ``handle`` in order; the partial batch response.

    Parameters
    ----------
    event : Mapping[str, Any]
        The Lambda DynamoDB stream event.
    handle : Callable[[Change], None]
        Handles one record; raises :class:`PermanentFailure` for one no retry can handle,
        anything else for one to retry.
    dead_letters : StreamDeadLetters | None
        Where records no retry can handle go; without it they are retried like any other
        failure (and end at the event source's on-failure destination).
    logger : Logger | None
        Where failures are logged (the toolkit's logger by default).
    context : Any
        The Lambda context (a chaos run's ``slow`` fault waits past its remaining time).
    begin : Callable[[Sequence[Change]], None] | None
        Called with the batch's records, read once, before the first is handled.
    end : Callable[[], str | None] | None
        Called once the records are handled, or one failed: finishes what the records handled
        left to do (events published together, say); returns the sequence number of the first
        record it could not finish, reported with every one after it, or ``None``.
    guard : TimeGuard | None
        Says when the function's timeout is too near to start another record (one on
        ``context`` by default): the record not started is reported with every one after it,
        and the shard is retried from it at once.

    Returns
    -------
    dict
        ``{"batchItemFailures": [{"itemIdentifier": <SequenceNumber>}, ...]}``: the first
        record that failed and every one after it; empty when all were handled.

    Raises
    ------
    MalformedStreamEventError
        When ``event`` is not a stream batch.
    """
    log = logger or get_logger("lambdamesh")
    records = changes(event)
    if begin is not None:
        begin(records)
    plan = active_faults()
    if happens(plan.slow_rate):
        wait_past_timeout(context)
    crash_after = (len(records) + 1) // 2 if happens(plan.crash_rate) else None
    failed_at = _first_failure(
        records, handle, dead_letters, log, crash_after, guard or TimeGuard(context)
    )
    if end is not None:
        unfinished = _position_of(records, end())
        if unfinished is not None and (failed_at is None or unfinished < failed_at):
            failed_at = unfinished
    if failed_at is not None:
        return _failed_from(records, failed_at)
    if crash_after is not None:
        kill_process()
    return {"batchItemFailures": []}


def _first_failure(
    records: Sequence[Change],
    handle: Callable[[Change], None],
    dead_letters: StreamDeadLetters | None,
    log: Logger,
    crash_after: int | None,
    guard: TimeGuard,
) -> int | None:
    """Handle ``records`` in order until one fails, or there is no time left to start the
    next; its position, or ``None``. A record no retry can handle that goes to the dead-letter
    queue is not a failure (a chaos run's ``crash`` fault kills the process at
    ``crash_after``)."""
    for position, change in enumerate(records):
        if crash_after is not None and position >= crash_after:
            kill_process()
        if not guard.allows_another():
            log.warning(
                "stream record not started: the invocation was running out of time; the shard "
                "is retried from it",
                extra={"sequence_number": change.sequence_number, "handled": position},
            )
            return position
        try:
            with guard.timing():
                handle(change)
        except PermanentFailure as hopeless:
            if not _dead_lettered(change, hopeless.reason, dead_letters, log):
                return position
        except Exception as error:
            log.exception(
                "stream record failed; the shard is retried from it",
                extra={"sequence_number": change.sequence_number, "error": type(error).__name__},
            )
            return position
    return None


def _position_of(records: Sequence[Change], sequence_number: str | None) -> int | None:
    """Where the record of ``sequence_number`` is in the batch (``None`` for ``None``)."""
    if sequence_number is None:
        return None
    for position, change in enumerate(records):
        if change.sequence_number == sequence_number:
            return position
    raise ValueError(f"no record {sequence_number} in the batch")


def _dead_lettered(
    change: Change, reason: str, dead_letters: StreamDeadLetters | None, log: Logger
) -> bool:
    """Send a hopeless record to the dead-letter queue; whether it went."""
    if dead_letters is None:
        log.error(
            "stream record cannot be handled and there is no dead-letter queue: retried",
            extra={"sequence_number": change.sequence_number, "reason": reason},
        )
        return False
    try:
        message_id = dead_letters.send(change, reason)
    except Exception:
        log.exception(
            "stream record could not be dead-lettered: retried",
            extra={"sequence_number": change.sequence_number, "reason": reason},
        )
        return False
    log.error(
        "stream record dead-lettered",
        extra={
            "sequence_number": change.sequence_number,
            "reason": reason,
            "dead_letter_message_id": message_id,
        },
    )
    return True


def _image_text(image: Mapping[str, Any], name: str) -> str | None:
    """The text of string attribute ``name`` of a stream image; ``None`` when it has none."""
    value = image.get(name)
    text = value.get("S") if isinstance(value, Mapping) else None
    return text if isinstance(text, str) else None


def _table_of(change: Change) -> str:
    """The table a stream record comes from, by its ``eventSourceARN``
    (``arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>``); ``?`` without one.

    >>> _table_of(Change("INSERT", "1", {}, {},
    ...     {"eventSourceARN": "arn:aws:dynamodb:us-east-1:1:table/Orders/stream/2026-11-01"}))
    'Orders'
    """
    arn = change.raw.get("eventSourceARN")
    if not isinstance(arn, str) or "table/" not in arn:
        return "?"
    return arn.split("table/", 1)[1].split("/", 1)[0]


def _failed_from(records: Sequence[Change], position: int) -> dict[str, list[dict[str, str]]]:
    return {
        "batchItemFailures": [
            {"itemIdentifier": change.sequence_number} for change in records[position:]
        ]
    }


class StreamFunction:
    """What every function on a DynamoDB stream shares: the batch's records handed to
    :meth:`handle` in order (:func:`process_in_order`), records no retry can handle dead-lettered,
    the invocation's request id and each record's correlation id in the logs, each record a
    ``stream`` hop (:mod:`lambdamesh_toolkit.hops`) whose parent is the ``traceparent`` the
    item was written with, when it has one (the event store's items do).

    Subclasses implement :meth:`handle` (and :meth:`begin_batch` and :meth:`end_batch` when
    they keep anything per batch).

    Parameters
    ----------
    dead_letters : StreamDeadLetters | None
        Where records no retry can handle go, with the reason (the event source's on-failure
        destination); without it they are retried like any other failure.
    logger : Logger | None
        The function's logger.
    """

    def __init__(
        self, *, dead_letters: StreamDeadLetters | None = None, logger: Logger | None = None
    ) -> None:
        self._dead_letters = dead_letters
        self._logger = logger or get_logger("lambdamesh")
        self._request_id: str | None = None
        #: The invocation's time (:meth:`process` sets it): what :meth:`end_batch` may still do.
        self._guard = TimeGuard(None)

    def process(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Handle a stream batch in order; the partial batch response.

        Raises
        ------
        MalformedStreamEventError
            When ``event`` is not a DynamoDB stream batch.
        """
        self._request_id = getattr(context, "aws_request_id", None)
        self.use_correlation_id(None)
        self._guard = TimeGuard(context)
        return process_in_order(
            event,
            self._handle_as_hop,
            dead_letters=self._dead_letters,
            logger=self._logger,
            context=context,
            begin=self.begin_batch,
            end=self.end_batch,
            guard=self._guard,
        )

    def _handle_as_hop(self, change: Change) -> None:
        """:meth:`handle` as a ``stream`` hop, the child of the span that wrote the item (its
        ``traceparent`` attribute), logged under the correlation id :meth:`handle` restores."""
        # Until handle() restores the record's own, its item's correlation id (or a new one):
        # never the previous record's.
        self.use_correlation_id(_image_text(change.new_image, CORRELATION_ATTRIBUTE))
        with inbound_hop(
            STREAM,
            _table_of(change),
            _image_text(change.new_image, TRACEPARENT),
            logger=self._logger,
            sequence_number=change.sequence_number,
        ) as handling:
            try:
                self.handle(change)
            except PermanentFailure:
                handling.refused("PermanentFailure")
                raise

    def begin_batch(self, records: Sequence[Change]) -> None:
        """Called with each batch's records before the first is handled (nothing to do by
        default)."""

    def end_batch(self) -> str | None:
        """Called once a batch's records are handled, or one failed: finish what the records
        handled left to do; the sequence number of the first record not finished, or ``None``
        (nothing to do by default)."""
        return None

    def handle(self, change: Change) -> None:
        """Handle one record (see :func:`process_in_order` for what raising means)."""
        raise NotImplementedError

    def use_correlation_id(self, correlation_id: str | None) -> str:
        """Carry ``correlation_id`` (a new one for ``None``) into what follows and the logs."""
        correlation = use_correlation_id(correlation_id)
        bind_invocation(self._logger, correlation, self._request_id)
        return correlation


class StreamPublisher(StreamFunction):
    """Publishes the events a table's stream announces: by default those appended to an event
    store (:func:`appended_event`); a subclass says which event a record announces by
    overriding :meth:`event_of`.

    Every event is published but those of a type kept private: events a service keeps in its
    streams for itself (what it took in, say), which no other service acts on. They stay in the
    store, where the read model and the history read them, and cost no publish.

    A batch's events go out together, in stream order, up to ten to a ``PublishBatch``
    (:meth:`~lambdamesh_toolkit.events.publishing.Publisher.publish_batch`), once every record
    is handled: each is checked against its contract and made into its message as its record
    is handled (one that never can be is dead-lettered then), and the first one SNS does not
    take is where the shard is retried from. Each event keeps its own ``publish`` hop, a child
    of its record's ``stream`` hop, timed by the request that sent it.

    Parameters
    ----------
    publisher : BatchEventPublisher
        The topic. On a FIFO topic each event goes in its key's message group (an order's
        events reach every queue in the order they were appended) under its event id as
        deduplication id.
    group_of : Callable[[str], str] | None
        The message group of an event, from its key (:attr:`RecordEvent.key`, the key itself
        by default); say, the order id of stream ``order-<id>``.
    dead_letters : StreamDeadLetters | None
        Where records that can never be published go (see :class:`StreamFunction`).
    logger : Logger | None
        The function's logger.
    fifo : bool
        Whether the topic is FIFO (a ``.fifo`` topic ARN).
    private_types : Collection[str]
        Event types never published.
    """

    def __init__(
        self,
        publisher: BatchEventPublisher,
        *,
        group_of: Callable[[str], str] | None = None,
        dead_letters: StreamDeadLetters | None = None,
        logger: Logger | None = None,
        fifo: bool = True,
        private_types: Collection[str] = (),
    ) -> None:
        super().__init__(dead_letters=dead_letters, logger=logger)
        self._publisher = publisher
        self._group_of = group_of or (lambda key: key)
        self._fifo = fifo
        self._private_types = frozenset(private_types)
        self._pending: list[_Pending] = []

    def begin_batch(self, records: Sequence[Change]) -> None:
        """Start the batch with nothing to publish."""
        self._pending = []

    def event_of(self, change: Change) -> RecordEvent | None:
        """The event ``change`` announces; ``None`` when it announces none.

        By default the event an ``INSERT`` appended to an event store (:func:`appended_event`),
        its stream id as key; other records announce nothing.

        Raises
        ------
        PermanentFailure
            When no event can ever be made of the record.
        """
        appended = appended_event(change)
        if appended is None:
            return None
        return RecordEvent(
            appended.envelope,
            appended.stream_id,
            {"stream_id": appended.stream_id, "stream_version": appended.version},
        )

    def handle(self, change: Change) -> None:
        """Make the event the record announces (:meth:`event_of`) into its message, to publish
        with the batch (records that announce none, and events of a private type, are
        skipped)."""
        announced = self.event_of(change)
        if announced is None:
            return
        envelope = announced.envelope
        self.use_correlation_id(envelope.correlation_id)
        if envelope.type in self._private_types:
            self._logger.debug(
                "event kept private", extra={"event_id": envelope.id, "event_type": envelope.type}
            )
            return
        publishing = planned_hop(
            PUBLISH, self._publisher.topic_name, event_type=envelope.type, event_id=envelope.id
        )
        try:
            prepared = self._publisher.prepare(
                envelope,
                group_id=self._group_of(announced.key) if self._fifo else None,
                traceparent=publishing.span.traceparent(),
            )
        except EventError as error:  # an unknown type, a broken contract, over 256 KiB
            raise PermanentFailure(f"{envelope.type} {envelope.id}: {error}") from error
        self._pending.append(_Pending(change.sequence_number, announced, prepared, publishing))

    def end_batch(self) -> str | None:
        """Publish the batch's events; the record of the first one SNS did not take."""
        pending, self._pending = self._pending, []
        if not pending:
            return None
        start_ms = time.time_ns() // 1_000_000
        started = time.perf_counter()
        outcome = self._publisher.publish_batch(
            [each.prepared for each in pending], guard=self._guard
        )
        seconds = time.perf_counter() - started
        published = len(outcome.message_ids)
        for position, each in enumerate(pending):
            self.use_correlation_id(each.announced.envelope.correlation_id)
            if position < published:
                each.hop.ok()
            elif position == published:  # SNS's code, or the error's class
                each.hop.failed(str(outcome.failure).split(":", 1)[0])
            else:  # sent in the same request or not: published again with its record's retry
                each.hop.failed("Unconfirmed")
            log_hop(each.hop, start_ms, seconds, logger=self._logger)
            if position < published:
                self._log_published(each, outcome.message_ids[position])
        if outcome.failure is None:
            return None
        failed = pending[published]
        self.use_correlation_id(failed.announced.envelope.correlation_id)
        self._logger.warning(
            "event not published; the shard is retried from its record",
            extra={
                "event_id": failed.announced.envelope.id,
                "event_type": failed.announced.envelope.type,
                "sequence_number": failed.sequence_number,
                "error": outcome.failure,
            },
            exc_info=outcome.error,
        )
        return failed.sequence_number

    def _log_published(self, pending: _Pending, message_id: str) -> None:
        envelope = pending.announced.envelope
        self._logger.info(
            "event published",
            extra={
                **pending.announced.details,
                "event_id": envelope.id,
                "event_type": envelope.type,
                "sequence_number": pending.sequence_number,
                "message_id": message_id,
            },
        )


@dataclass(frozen=True, slots=True)
class RecordEvent:
    """An event a stream record announces (:meth:`StreamPublisher.event_of`).

    Attributes
    ----------
    envelope : EventEnvelope
        The event.
    key : str
        What it is about (an event store's stream id, a product id): its message group on a
        FIFO topic, through the publisher's ``group_of``.
    details : Mapping[str, Any]
        What the ``event published`` log line says of it besides its id and type.
    """

    envelope: EventEnvelope
    key: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class _Pending:
    """An event of the batch made into its message, waiting for the batch's publish."""

    sequence_number: str
    announced: RecordEvent
    prepared: PreparedEvent
    hop: Hop
