"""Consuming events from an SQS queue: a batch → one idempotent handler call per event →
the partial batch response.

A consumer is built once per container and called by a Chalice ``@app.on_sqs_message``
handler. ``functions/payments/app.py`` and its ``chalicelib/wiring.py`` are a complete
example: ``build_order_events_consumer`` in the wiring builds the :class:`EventConsumer`,
and the app's ``handle_order_events`` answers with
``order_events().process(event.to_dict(), event.context)``.

Per record: the raw-delivered body is read as an envelope and its ``data`` validated against
the registered model; the correlation id is restored (logs, and events published by the
handler); an event already processed by this service is acknowledged without calling the
handler again (:mod:`.bookkeeping`). A record that fails (malformed, unknown event, no handler,
handler error) is reported in ``batchItemFailures`` (the deploy step sets
``ReportBatchItemFailures``), its reason is written to the failures table under its SQS message
id (which it keeps in the DLQ), and its visibility is set to a short exponential backoff
(:mod:`.retry_backoff`). A record is not started when the function's timeout is nearer than
:data:`~.time_guard.MIN_TIME_RESERVE_S` or twice the slowest record of the batch so far
(:mod:`.time_guard`): it is reported with
:data:`OUT_OF_TIME_REASON` and made visible again at once, so that a batch slowed down by load
acknowledges what it handled instead of timing out whole (then every message of it waits out the
queue's visibility timeout).

Each delivery is a hop (:mod:`lambdamesh_toolkit.hops`): ``consume`` the first time, ``retry``
from the second receive on (``attempt`` is ``ApproximateReceiveCount``), the child of the
``traceparent`` message attribute the publish put on it; a record dead-lettered at once adds a
``dead_letter`` hop under its delivery, and its copy in the DLQ carries that hop's
``traceparent``, so a redriven delivery joins the trace below it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.events import EventData, EventEnvelope, EventError, event_model
from lambdamesh_toolkit.correlation import is_valid_correlation_id, use_correlation_id
from lambdamesh_toolkit.deadline import use_deadline
from lambdamesh_toolkit.events.bookkeeping import (
    IDEMPOTENCY_TTL,
    DynamoDbFailureStore,
    DynamoDbIdempotencyStore,
    FailureStore,
    IdempotencyStore,
    NoMarks,
    RecordFailure,
    idempotency_key,
)
from lambdamesh_toolkit.events.dead_lettering import DeadLetter, DeadLetterer, PermanentFailure
from lambdamesh_toolkit.events.envelope import event_data, parse_envelope
from lambdamesh_toolkit.events.retry_backoff import (
    RetryBackoffSettings,
    VisibilityBackoff,
    backoff_delay_s,
)
from lambdamesh_toolkit.events.time_guard import TimeGuard
from lambdamesh_toolkit.faults import active_faults, happens, kill_process, wait_past_timeout
from lambdamesh_toolkit.hops import CONSUME, DEAD_LETTER, RETRY, Hop, hop, inbound_hop
from lambdamesh_toolkit.logging import bind_invocation, get_logger
from lambdamesh_toolkit.privacy import mask_text
from lambdamesh_toolkit.trace_context import TRACEPARENT, SpanContext, current_traceparent

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

FIFO_SKIPPED_REASON = "not processed: an earlier message of its group failed in this batch"
OUT_OF_TIME_REASON = "not processed: the invocation was running out of time"

#: A handler receives the envelope and its validated ``data`` (the registered model).
EventHandler = Callable[[EventEnvelope, Any], None]


class MalformedBatchError(ValueError):
    """The invocation is not an SQS batch: nothing in it can be reported or retried.

    SQS never sends one; a direct ``Invoke`` with another payload gets this error, naming what
    is missing, as its ``FunctionError``.
    """


#: What each record of an SQS event must carry for its failure to be reported and retried.
REQUIRED_RECORD_FIELDS = ("messageId", "receiptHandle", "eventSourceARN")


class _RecordFailed(Exception):  # noqa: N818 - internal signal, not an error type users see
    """A record could not be processed; carries what is known about it.

    ``permanent``: no retry can process it as it is (dead-letter it at once).
    ``put_off``: it was not started, for want of time; it did not fail (retry it at once).
    """

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        put_off: bool = False,
        event_type: str | None = None,
        event_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.put_off = put_off
        self.event_type = event_type
        self.event_id = event_id
        self.correlation_id = correlation_id


class EventConsumer:
    """Processes SQS batches of event envelopes with partial batch responses.

    The marks of a batch's events are read in one request before the batch runs
    and written in one request after its handlers returned (two DynamoDB requests
    a batch, not two a record); two deliveries of one event in one batch run the
    handler once. Handlers must be idempotent on their own too: an invocation
    that crashes (or times out) after a side effect but before the marks are
    written runs that handler again on redelivery, and so does a batch whose
    marks could not be written. Make each side effect conditional (a DynamoDB
    condition on the order, a put keyed by the event id) or naturally
    repeatable. The marks only save the work and the second side effect in the
    common case; a consumer whose handlers are all made so can keep none
    (``idempotency_table=None``), as every consumer of this system does.

    FIFO queues use Powertools' ``SqsFifoPartialProcessor`` with
    ``skip_group_on_error``: after a failure, the later records of the *same
    group* in the batch are reported failed without being processed (order
    within a group is kept) while other groups go on. Those skipped records are
    made visible again at once so they follow the failed one as soon as it
    returns; each receive still counts towards ``maxReceiveCount``, so they can
    reach the DLQ behind a poison message: a DLQ on a FIFO queue breaks strict
    order.

    Parameters
    ----------
    service : str
        The consuming service: names its idempotency keys, failures and logs.
    idempotency_table : str | None
        DynamoDB table of processed marks (``EVENT_IDEMPOTENCY_TABLE``); ``None`` keeps no
        marks (:class:`~lambdamesh_toolkit.events.bookkeeping.NoMarks`): for handlers whose
        own conditional writes make a repeat change nothing, it saves the batch's two
        requests.
    failures_table : str
        DynamoDB table of failures (``EVENT_FAILURES_TABLE``).
    handlers : Mapping[tuple[str, int], EventHandler]
        ``(type, version)`` to ``handler(envelope, data)``; every key must be a
        registered event.
    fifo : bool
        Whether the queue is FIFO.
    dynamodb_client, sqs_client : optional
        Clients to use (tests); by default created on first use.
    idempotency_store, failure_store : optional
        Stores to use instead of the DynamoDB ones on the tables above.
    logger : aws_lambda_powertools.Logger | None
        Default: :func:`lambdamesh_toolkit.logging.get_logger` of ``service``.
    retry_backoff_base_s : float | None
        First retry delay; default ``RETRY_BACKOFF_BASE_S`` from the environment, else 1 s.

    Raises
    ------
    UnknownEventError
        When a handler is registered for an event that has no model.
    ConfigurationError
        When ``RETRY_BACKOFF_BASE_S`` is malformed.
    """

    def __init__(
        self,
        service: str,
        *,
        idempotency_table: str | None,
        failures_table: str,
        handlers: Mapping[tuple[str, int], EventHandler],
        fifo: bool,
        dynamodb_client: DynamoDBClient | None = None,
        sqs_client: SQSClient | None = None,
        idempotency_store: IdempotencyStore | None = None,
        failure_store: FailureStore | None = None,
        logger: Logger | None = None,
        retry_backoff_base_s: float | None = None,
    ) -> None:
        for event_type, version in handlers:
            event_model(event_type, version)  # fail at cold start, not on the first event
        self.service = service
        self.fifo = fifo
        self.handlers = dict(handlers)
        if idempotency_store is None:
            idempotency_store = (
                NoMarks()
                if idempotency_table is None
                else DynamoDbIdempotencyStore(idempotency_table, client=dynamodb_client)
            )
        self.idempotency_store: IdempotencyStore = idempotency_store
        self.failure_store: FailureStore = failure_store or DynamoDbFailureStore(
            failures_table, client=dynamodb_client
        )
        self.logger = logger or get_logger(service)
        if retry_backoff_base_s is None:
            retry_backoff_base_s = load_settings(RetryBackoffSettings).retry_backoff_base_s
        if retry_backoff_base_s < 0:
            raise ValueError("retry_backoff_base_s must not be negative")
        self.retry_backoff_base_s = retry_backoff_base_s
        self._backoff = VisibilityBackoff(sqs_client)
        self._dead_letterer = DeadLetterer(sqs_client)
        self._processor = _new_processor(fifo)
        self._request_id: str | None = None
        self._marks = _BatchMarks(self.idempotency_store, frozenset(), None)
        # Each record's delivery span in the batch being processed: its dead_letter hop's parent.
        self._spans: dict[str, SpanContext] = {}

    def process(self, event: Mapping[str, Any], context: Any = None) -> dict[str, Any]:
        """Process one SQS batch; return the partial batch response.

        Parameters
        ----------
        event : Mapping[str, Any]
            The Lambda SQS event (``{"Records": [...]}``; Chalice: ``event.to_dict()``).
        context : Any
            The Lambda context (its ``aws_request_id`` goes into the logs).

        Returns
        -------
        dict
            ``{"batchItemFailures": [{"itemIdentifier": <messageId>}, ...]}``,
            empty when every record succeeded.
        """
        records = sqs_records(event)
        self._request_id = getattr(context, "aws_request_id", None)
        use_deadline(None)  # queued work has no caller waiting: only the function's timeout
        self._marks = _BatchMarks.read(self.idempotency_store, self.service, records)
        self._spans = {}
        processor = self._processor
        handle: Callable[[SQSRecord], None] = self._handle_record
        faults = active_faults()
        if happens(faults.slow_rate):
            wait_past_timeout(context)
        crashing = happens(faults.crash_rate)
        if crashing:
            handle = self._killed_after((len(records) + 1) // 2)
        handle = self._in_time(handle, context)
        try:
            with processor(records, handle):
                processor.process()
            if crashing:  # fewer records reached the handler: a failed FIFO group skips the rest
                kill_process()
            self._write_marks()
            failed = list(zip(processor.fail_messages, processor.exceptions, strict=True))
            dead_lettered = self._after_failures(failed) if failed else set()
            return {
                "batchItemFailures": [
                    item
                    for item in processor.response()["batchItemFailures"]
                    if item["itemIdentifier"] not in dead_lettered
                ]
            }
        finally:
            self.logger.remove_keys(["event_id", "event_type", "message_id"])

    def _in_time(
        self, handle: Callable[[SQSRecord], None], context: Any
    ) -> Callable[[SQSRecord], None]:
        """``handle``, refusing to start a record when the function's timeout is too near
        (:class:`~lambdamesh_toolkit.events.time_guard.TimeGuard`): the records not started in
        time are answered as failures retried at once (no backoff), so the ones handled are
        acknowledged and the rest come back at the next receive."""
        guard = TimeGuard(context)

        def handle_in_time(record: SQSRecord) -> None:
            if not guard.allows_another():
                raise self._failed(OUT_OF_TIME_REASON, record, None, put_off=True)
            with guard.timing():
                handle(record)

        return handle_in_time

    def _killed_after(self, count: int) -> Callable[[SQSRecord], None]:
        """The record handler, with the process killed once ``count`` records were handled."""
        handled = 0

        def handle(record: SQSRecord) -> None:
            nonlocal handled
            try:
                self._handle_record(record)
            finally:
                handled += 1
                if handled >= count:
                    kill_process()

        return handle

    def _write_marks(self) -> None:
        """Mark the events handled in this batch, in one write; a failure is only logged.

        The handlers ran and their records are acknowledged either way: a mark missing after
        an outage costs a second run of an idempotent handler if the event comes again.
        """
        handled = self._marks.handled
        if not handled:
            return
        expires_at = int(time.time() + IDEMPOTENCY_TTL.total_seconds())
        try:
            self.idempotency_store.mark_processed(handled, expires_at=expires_at)
        except Exception:
            self.logger.exception(
                "could not mark events processed", extra={"event_ids": list(handled)}
            )

    def _handle_record(self, record: SQSRecord) -> None:
        """Handle one delivery as a ``consume`` hop (``retry`` from its second receive on)."""
        # Until its body is read, the record's lines carry what its attributes say, never the
        # previous record's ids.
        event_type, correlation_id = _attributes_of(record)
        bind_invocation(self.logger, use_correlation_id(correlation_id), self._request_id)
        self.logger.append_keys(event_id=None, event_type=event_type, message_id=record.message_id)
        attempt = _receive_count(record)
        with inbound_hop(
            CONSUME if attempt == 1 else RETRY,
            record.event_source_arn.rsplit(":", 1)[-1],
            _attribute(record, TRACEPARENT),
            logger=self.logger,
            attempt=attempt,
        ) as delivery:
            self._spans[record.message_id] = delivery.span
            self._handle_delivery(record, delivery)

    def _handle_delivery(self, record: SQSRecord, delivery: Hop) -> None:
        envelope: EventEnvelope | None = None
        try:
            if not isinstance(record.raw_event.get("body"), str):
                raise _RecordFailed("the record's body is not text", permanent=True)
            envelope = parse_envelope(record.body)
            correlation_id = use_correlation_id(envelope.correlation_id)
            bind_invocation(self.logger, correlation_id, self._request_id)
            self.logger.append_keys(
                event_id=envelope.id, event_type=envelope.type, message_id=record.message_id
            )
            self._dispatch(envelope, delivery)
        except _RecordFailed as exc:
            (delivery.refused if exc.permanent else delivery.failed)("rejected")
            raise
        except EventError as exc:
            # A refusal, not a crash: the reason says it all, no stack trace. The event will
            # never read otherwise: it goes to the DLQ now, for a fix and a redrive.
            delivery.refused(type(exc).__name__)
            raise self._failed(str(exc), record, envelope, permanent=True) from None
        except PermanentFailure as exc:
            delivery.refused(type(exc).__name__)
            raise self._failed(exc.reason, record, envelope, permanent=True) from None
        except Exception as exc:
            self.logger.exception("event handler failed")
            delivery.failed(type(exc).__name__)
            raise self._failed(f"{type(exc).__name__}: {exc}", record, envelope) from exc

    def _dispatch(self, envelope: EventEnvelope, delivery: Hop) -> None:
        handler = self.handlers.get((envelope.type, envelope.version))
        if handler is None:
            event_model(envelope.type, envelope.version)  # UnknownEventError names the known ones
            raise _RecordFailed(
                f"{self.service} has no handler for {envelope.type} v{envelope.version}",
                permanent=True,
                event_type=envelope.type,
                event_id=envelope.id,
                correlation_id=envelope.correlation_id,
            )
        data = event_data(envelope)
        key = idempotency_key(self.service, envelope.id)
        if self._marks.is_processed(key):
            self.logger.info("duplicate event acknowledged without processing")
            delivery.ok("duplicate")
            return
        handler(envelope, data)
        self._marks.handled.append(key)
        self.logger.debug("event processed")

    def _failed(
        self,
        reason: str,
        record: SQSRecord,
        envelope: EventEnvelope | None,
        *,
        permanent: bool = False,
        put_off: bool = False,
    ) -> _RecordFailed:
        if envelope is not None:
            return _RecordFailed(
                reason,
                permanent=permanent,
                put_off=put_off,
                event_type=envelope.type,
                event_id=envelope.id,
                correlation_id=envelope.correlation_id,
            )
        event_type, correlation_id = _attributes_of(record)
        return _RecordFailed(
            reason,
            permanent=permanent,
            put_off=put_off,
            event_type=event_type,
            correlation_id=correlation_id,
        )

    def _after_failures(self, failed: Iterable[tuple[Any, Any]]) -> set[str]:
        """Log and record every failed record; dead-letter the hopeless ones at once and
        delay the others. Return the message ids dead-lettered (no longer failures)."""
        at = dt.datetime.now(dt.UTC)
        delays: dict[str, list[tuple[str, int]]] = {}
        dead_lettered: set[str] = set()
        for record, (_, exc, _) in failed:
            failure, delay_s = self._describe(record, exc, at)
            # An unreadable record gets a fresh id, not the previous record's.
            bind_invocation(
                self.logger, use_correlation_id(failure.correlation_id), self._request_id
            )
            self.logger.append_keys(
                event_id=failure.event_id,
                event_type=failure.event_type,
                message_id=failure.message_id,
            )
            moved_to = self._dead_letter_hop(record, failure) if _is_permanent(exc) else None
            last_receive = moved_to is None and self._is_last_receive(record, failure.attempts)
            if last_receive:
                # SQS moves it to the DLQ at its next receive: no backoff to wait out first.
                delay_s = 0
            self.logger.warning(
                "event record failed",
                extra={
                    "reason": failure.reason,
                    "attempts": failure.attempts,
                    "queue": failure.queue,
                    "retry_in_s": None if moved_to else delay_s,
                    "dead_letter_message_id": moved_to,
                },
            )
            if not (isinstance(exc, _RecordFailed) and exc.put_off) or last_receive:
                # A record put off for want of time did not fail: nothing for `dlq show` to
                # tell unless SQS dead-letters it at its next receive (and no write to wait
                # for while the timeout nears).
                self._record(failure)
            if moved_to is not None:
                # Its new message id in the DLQ: where `dlq show` will look for the reason.
                self._record(dataclasses.replace(failure, message_id=moved_to))
                dead_lettered.add(record.message_id)
                continue
            delays.setdefault(record.event_source_arn, []).append((record.receipt_handle, delay_s))
        for queue_arn, entries in delays.items():
            try:
                errors = self._backoff.delay(queue_arn, entries)
            except Exception:
                # The messages come back after the queue's visibility timeout instead.
                self.logger.exception("could not set the retry backoff", extra={"queue": queue_arn})
                continue
            if errors:
                self.logger.warning("retry backoff refused", extra={"errors": errors})
        return dead_lettered

    def _dead_letter_hop(self, record: SQSRecord, failure: RecordFailure) -> str | None:
        """:meth:`_dead_letter_now` as a ``dead_letter`` hop, the child of the record's delivery."""
        with hop(
            DEAD_LETTER,
            failure.queue,
            parent=self._spans.get(record.message_id),
            logger=self.logger,
        ) as moving:
            moved_to = self._dead_letter_now(record, failure)
            if moved_to is None:
                moving.failed("not_moved")
            return moved_to

    def _dead_letter_now(self, record: SQSRecord, failure: RecordFailure) -> str | None:
        """Send a hopeless record to its DLQ; its id there, or ``None`` (then it is retried)."""
        raw_body = record.raw_event.get("body")
        letter = DeadLetter(
            queue_arn=record.event_source_arn,
            # A body that is not text (a direct invoke) is kept as its JSON, never dropped.
            body=raw_body if isinstance(raw_body, str) else json.dumps(raw_body, default=str),
            attributes=record.raw_event.get("messageAttributes") or {},
            group_id=record.attributes.message_group_id,
            message_id=record.message_id,
            reason=failure.reason,
            traceparent=current_traceparent(),
        )
        try:
            moved_to = self._dead_letterer.send(letter)
        except Exception:
            # Left to the ordinary retries: it reaches the DLQ after maxReceiveCount.
            self.logger.exception("could not dead-letter the record at once")
            return None
        if moved_to is None:
            self.logger.warning("the queue has no dead-letter queue; the record is retried")
        return moved_to

    def _is_last_receive(self, record: SQSRecord, attempts: int) -> bool:
        """Whether this was the record's last receive before SQS dead-letters it."""
        try:
            limit = self._dead_letterer.max_receive_count(record.event_source_arn)
        except Exception:
            self.logger.exception("could not read the queue's redrive policy")
            return False
        return limit is not None and attempts >= limit

    def _record(self, failure: RecordFailure) -> None:
        try:
            self.failure_store.record(failure)
        except Exception:
            # The record is handled all the same; only `dlq show` loses its reason.
            self.logger.exception("could not record the failure")

    def _describe(self, record: SQSRecord, exc: Any, at: dt.datetime) -> tuple[RecordFailure, int]:
        attempts = _receive_count(record)
        delay_s = backoff_delay_s(attempts, self.retry_backoff_base_s)
        if isinstance(exc, _RecordFailed):
            reason, event_type = exc.reason, exc.event_type
            event_id, correlation_id = exc.event_id, exc.correlation_id
            if exc.put_off:
                delay_s = 0
        else:
            # Powertools' FIFO short circuit: the record was never handed to us.
            event_type, correlation_id = _attributes_of(record)
            event_id = None
            if _is_fifo_skip(exc):
                reason, delay_s = FIFO_SKIPPED_REASON, 0
            else:
                reason = f"{type(exc).__name__}: {exc}"
        failure = RecordFailure(
            message_id=record.message_id,
            service=self.service,
            queue=record.event_source_arn.rsplit(":", 1)[-1],
            # What a failure says is read by people (``dlq show``, the DLQ's attribute): no
            # address that an exception's text carried goes with it.
            reason=mask_text(reason),
            attempts=attempts,
            at=at,
            event_type=event_type,
            event_id=event_id,
            correlation_id=correlation_id,
        )
        return failure, delay_s


class _BatchMarks:
    """The processed marks of one batch's events, read in one request before the batch runs.

    ``is_processed`` answers from that read, and counts an event handled earlier in the same
    batch (two deliveries of one event in one batch) as processed. When the read failed, each
    record asks on its own, so an outage fails the records with their reason, one by one.
    """

    def __init__(
        self, store: IdempotencyStore, processed: frozenset[str], read_keys: frozenset[str] | None
    ) -> None:
        self._store = store
        self._processed = processed
        self._read_keys = read_keys
        self.handled: list[str] = []
        """Keys of the events handled in this batch, in order."""

    @classmethod
    def read(
        cls, store: IdempotencyStore, service: str, records: Iterable[Mapping[str, Any]]
    ) -> _BatchMarks:
        """Read the marks of every record whose body carries an event id."""
        keys = frozenset(
            idempotency_key(service, event_id)
            for record in records
            if (event_id := _event_id_of(record.get("body"))) is not None
        )
        if not keys:
            return cls(store, frozenset(), frozenset())
        try:
            return cls(store, frozenset(store.processed_among(keys)), keys)
        except Exception:
            return cls(store, frozenset(), None)

    def is_processed(self, key: str) -> bool:
        """Whether the event was processed before this batch or earlier in it."""
        if key in self.handled:
            return True
        if self._read_keys is not None and key in self._read_keys:
            return key in self._processed
        return key in self._store.processed_among([key])


def _event_id_of(body: Any) -> str | None:
    """The ``id`` of an envelope's JSON body, or ``None`` (full validation comes later)."""
    if not isinstance(body, str):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    event_id = document.get("id") if isinstance(document, dict) else None
    return event_id if isinstance(event_id, str) else None


def typed_handler[M: EventData, R](
    model: type[M],
    handle: Callable[[EventEnvelope, M], R],
    report: Callable[[EventEnvelope, R], None],
) -> tuple[tuple[str, int], EventHandler]:
    """Adapt a handler written for one event model to :class:`EventConsumer`'s handlers.

    A service's handlers take the event's ``data`` as its own model and return what they
    did (the event they published, a message id, ...); the consumer calls every handler
    with the data validated against the model registered for the event's type and
    version. This wraps ``handle`` for the consumer and keys it by ``model``'s type and
    version, so a table of handlers is ``dict([typed_handler(...), ...])``:
    ``build_order_events_consumer`` in ``functions/payments/chalicelib/wiring.py`` builds
    one for ``OrderPlaced`` and ``OrderCancelled``.

    Parameters
    ----------
    model : type[M]
        The event's data model: its ``event_type`` and ``contract_version`` are the key.
    handle : Callable[[EventEnvelope, M], R]
        The service's handler of ``model`` events.
    report : Callable[[EventEnvelope, R], None]
        Called with the event and ``handle``'s result after ``handle`` returned (to log
        it); :func:`log_published` for handlers that return the event they published.

    Returns
    -------
    tuple[tuple[str, int], EventHandler]
        ``((event type, version), handler)``: one entry of ``EventConsumer``'s ``handlers``.

    Notes
    -----
    The handler raises ``TypeError`` when handed data of another model. The consumer
    validates ``data`` against the registered model, so this only guards against a
    mis-wired table of handlers.

    Examples
    --------
    >>> from lambdamesh_toolkit.contracts.events import OrderPlaced
    >>> key, handler = typed_handler(OrderPlaced, lambda event, data: None, print)
    >>> key
    ('order.placed', 1)
    """

    def run(event: EventEnvelope, data: BaseModel) -> None:
        if not isinstance(data, model):
            raise TypeError(f"{event.type} v{event.version} handed {type(data).__name__}")
        report(event, handle(event, data))

    return (model.event_type, model.contract_version), run


def log_published(logger: Logger) -> Callable[[EventEnvelope, EventEnvelope | None], None]:
    """A ``report`` for :func:`typed_handler`: logs what a handler published.

    Parameters
    ----------
    logger : aws_lambda_powertools.Logger
        Where ``event handled`` is logged (info), with the handled event's id and type
        and the published event's type and id (``None`` when it published nothing).

    Returns
    -------
    Callable[[EventEnvelope, EventEnvelope | None], None]
        The report, for handlers that return the event they published, if any.
    """

    def report(event: EventEnvelope, published: EventEnvelope | None) -> None:
        logger.info(
            "event handled",
            extra={
                "event_id": event.id,
                "event_type": event.type,
                "published": None if published is None else published.type,
                "published_id": None if published is None else published.id,
            },
        )

    return report


def _new_processor(fifo: bool) -> BatchProcessor:
    # Imported here: the batch utility pulls in every event source's data classes.
    from aws_lambda_powertools.utilities.batch import (
        BatchProcessor,
        EventType,
        SqsFifoPartialProcessor,
    )

    processor: BatchProcessor
    if fifo:
        processor = SqsFifoPartialProcessor(skip_group_on_error=True)
        # Its constructor takes no such argument; the attribute is the public switch.
        processor.raise_on_entire_batch_failure = False
    else:
        processor = BatchProcessor(EventType.SQS, raise_on_entire_batch_failure=False)
    # raise_on_entire_batch_failure off: a batch whose records all failed is answered with
    # all of them listed, not a crash, so the backoff just set and the failures recorded stand,
    # and the invocation is not counted as a function error.
    return processor


def _is_fifo_skip(exc: Any) -> bool:
    from aws_lambda_powertools.utilities.batch.exceptions import (
        SQSFifoCircuitBreakerError,
        SQSFifoMessageGroupCircuitBreakerError,
    )

    return isinstance(exc, SQSFifoCircuitBreakerError | SQSFifoMessageGroupCircuitBreakerError)


def _receive_count(record: SQSRecord) -> int:
    try:
        return max(1, int(record.attributes.approximate_receive_count))
    except (TypeError, ValueError):
        return 1


def _attribute(record: SQSRecord, name: str) -> str | None:
    """The text of message attribute ``name``; ``None`` when the record has none."""
    attribute = (record.raw_event.get("messageAttributes") or {}).get(name)
    if isinstance(attribute, dict):
        text = attribute.get("stringValue")
        return text if isinstance(text, str) else None
    return None


def _attributes_of(record: SQSRecord) -> tuple[str | None, str | None]:
    """The ``type`` and ``correlation_id`` message attributes (the body may be unreadable)."""
    event_type = _attribute(record, "type")
    correlation_id = _attribute(record, "correlation_id")
    if event_type is not None and not is_valid_correlation_id(event_type):
        event_type = None  # goes into logs and a table: same safe alphabet as ids
    if correlation_id is not None and not is_valid_correlation_id(correlation_id):
        correlation_id = None
    return event_type, correlation_id


def _is_permanent(exc: Any) -> bool:
    return isinstance(exc, _RecordFailed) and exc.permanent


def sqs_records(event: Any) -> list[dict[str, Any]]:
    """The records of an SQS event, each checked for what reporting its failure needs.

    Raises
    ------
    MalformedBatchError
        When ``event`` is not ``{"Records": [...]}`` or a record lacks a field SQS always
        sends (:data:`REQUIRED_RECORD_FIELDS`), naming it.
    """
    if not isinstance(event, Mapping) or not isinstance(event.get("Records"), list):
        raise MalformedBatchError('not an SQS event: expected {"Records": [...]}')
    records: list[dict[str, Any]] = event["Records"]
    for index, record in enumerate(records):
        if not isinstance(record, Mapping):
            raise MalformedBatchError(f"not an SQS event: Records[{index}] is not an object")
        for name in REQUIRED_RECORD_FIELDS:
            if not isinstance(record.get(name), str) or not record[name]:
                raise MalformedBatchError(f"not an SQS event: Records[{index}] has no {name}")
    return records
