"""Consuming events from an SQS queue: one idempotent handler call per event.

The body of a Chalice ``@app.on_sqs_message`` handler::

    CONSUMER = EventConsumer(
        "payments",
        idempotency_table=SETTINGS.event_idempotency_table,
        failures_table=SETTINGS.event_failures_table,
        handlers={("order.placed", 1): on_order_placed, ("order.cancelled", 1): on_cancelled},
        fifo=True,
    )

    @app.on_sqs_message(queue="lambdamesh-payments-orders.fifo", batch_size=10)
    def orders_events(event: SQSEvent) -> dict[str, Any]:
        return CONSUMER.process(event.to_dict(), event.context)

Per record: the raw-delivered body is read as an :class:`EventEnvelope` and its
``data`` validated against the registered model; the correlation id is
restored (logs, and events published by the handler); an event already
processed by this service is acknowledged without calling the handler again.
A record that fails (malformed, unknown event, no handler, handler error) is
reported in ``batchItemFailures`` (the deploy step sets
``ReportBatchItemFailures``), its reason is written to the failures table under
its SQS message id (which it keeps in the DLQ), and its visibility is set to a
short exponential backoff so a poison message reaches the DLQ after
``maxReceiveCount`` receives within seconds, not after as many visibility
timeouts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, cast

from pydantic import BaseModel, Field

from lambdamesh_toolkit import aws
from lambdamesh_toolkit.config import EnvSettings, load_settings
from lambdamesh_toolkit.contracts.events import (
    EventData,
    EventEnvelope,
    EventError,
    event_data,
    event_model,
    parse_envelope,
)
from lambdamesh_toolkit.correlation import is_valid_correlation_id, use_correlation_id
from lambdamesh_toolkit.logging import bind_invocation, get_logger

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from aws_lambda_powertools.utilities.batch import BatchProcessor
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        KeysAndAttributesTypeDef,
        WriteRequestTypeDef,
    )
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef

#: Key attribute (``S``) of the idempotency and failures tables.
EVENT_TABLE_KEY = "id"
#: TTL attribute (epoch seconds, ``N``) of the idempotency and failures tables.
EVENT_TABLE_TTL_ATTRIBUTE = "expiration"
#: How long an event id is remembered as processed.
IDEMPOTENCY_TTL = dt.timedelta(days=7)
#: How long a failure is kept: the DLQs' retention.
FAILURE_TTL = dt.timedelta(days=14)
#: SQS's largest visibility timeout (12 hours).
MAX_VISIBILITY_TIMEOUT_S = 43_200
#: Environment variable of the first retry delay, in seconds (default 1: 1, 2, 4, 8 s ...).
RETRY_BACKOFF_BASE_ENV = "RETRY_BACKOFF_BASE_S"
#: Longest reason kept in the failures table.
MAX_REASON_CHARS = 1000
#: DynamoDB's largest BatchGetItem and BatchWriteItem.
MAX_BATCH_GET_KEYS = 100
MAX_BATCH_WRITE_ITEMS = 25

FIFO_SKIPPED_REASON = "not processed: an earlier message of its group failed in this batch"

#: A handler receives the envelope and its validated ``data`` (the registered model).
EventHandler = Callable[[EventEnvelope, Any], None]


class UnprocessedKeysError(RuntimeError):
    """DynamoDB kept leaving part of a batch request unprocessed (throttling)."""


class ConsumerSettings(EnvSettings):
    """Tunables of :class:`EventConsumer` read from the environment.

    Attributes
    ----------
    retry_backoff_base_s : float
        ``RETRY_BACKOFF_BASE_S``: visibility delay after a record's first
        failed receive; doubled at each further receive.
    """

    retry_backoff_base_s: float = Field(1.0, alias="RETRY_BACKOFF_BASE_S", ge=0, le=3600)


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
        """The keys (``<service>#<event id>``) among ``keys`` that are marked processed."""
        ...

    def mark_processed(self, keys: Collection[str], *, expires_at: int) -> None:
        """Mark every key processed until ``expires_at`` (epoch seconds)."""
        ...


class FailureStore(Protocol):
    """Keeps the last failure of each SQS message."""

    def record(self, failure: RecordFailure) -> None:
        """Store ``failure``, replacing an earlier one of the same message."""
        ...


class DynamoDbIdempotencyStore:
    """:class:`IdempotencyStore` on a DynamoDB table (key ``id``, TTL ``expiration``).

    One ``BatchGetItem`` reads the marks of up to 100 events and one ``BatchWriteItem`` writes
    up to 25, so a batch of records costs two requests, not two per record. Keys a batch
    request leaves unprocessed (throttling) are asked again after a short backoff.

    Parameters
    ----------
    table_name : str
        The table (``EVENT_IDEMPOTENCY_TABLE``).
    client : DynamoDBClient | None
        A client to use; by default the consumer's shared one, created on first use.
    """

    #: Attempts at the keys a batch request left unprocessed, and the first pause between them.
    UNPROCESSED_ATTEMPTS = 4
    UNPROCESSED_BACKOFF_S = 0.05

    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    def processed_among(self, keys: Collection[str]) -> set[str]:
        """Read the marks with consistent reads (a redelivery may follow a mark closely).

        Raises
        ------
        UnprocessedKeysError
            When DynamoDB still left keys unread after :attr:`UNPROCESSED_ATTEMPTS` attempts.
        """
        client = self._dynamodb()
        found: set[str] = set()
        unique = list(dict.fromkeys(keys))  # BatchGetItem refuses duplicate keys
        for start in range(0, len(unique), MAX_BATCH_GET_KEYS):
            chunk = unique[start : start + MAX_BATCH_GET_KEYS]
            request: dict[str, KeysAndAttributesTypeDef] = {
                self.table_name: {
                    "Keys": [{EVENT_TABLE_KEY: {"S": key}} for key in chunk],
                    "ConsistentRead": True,
                    "ProjectionExpression": "#k",
                    "ExpressionAttributeNames": {"#k": EVENT_TABLE_KEY},
                }
            }
            for answer in self._until_processed(
                lambda part: client.batch_get_item(RequestItems=part),
                request,
                leftover="UnprocessedKeys",
                what="unread",
            ):
                for item in answer.get("Responses", {}).get(self.table_name, []):
                    found.add(str(item[EVENT_TABLE_KEY]["S"]))
        return found

    def mark_processed(self, keys: Collection[str], *, expires_at: int) -> None:
        """Put every mark (a later mark of the same event replaces the earlier one).

        Raises
        ------
        UnprocessedKeysError
            When DynamoDB still left marks unwritten after :attr:`UNPROCESSED_ATTEMPTS` attempts.
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
            for _ in self._until_processed(
                lambda part: client.batch_write_item(RequestItems=part),
                request,
                leftover="UnprocessedItems",
                what="unwritten",
            ):
                pass

    def _until_processed[R: Mapping[str, Any]](
        self, send: Callable[[R], Any], request: R, *, leftover: str, what: str
    ) -> Iterator[Mapping[str, Any]]:
        """Send ``request``, then what DynamoDB left unprocessed (the answer's ``leftover``),
        with backoff; yield every answer.

        Written here: botocore retries throttled calls, not the part of a batch call that
        DynamoDB accepted but did not process.

        Raises
        ------
        UnprocessedKeysError
            When something is still left after :attr:`UNPROCESSED_ATTEMPTS` attempts.
        """
        for attempt in range(self.UNPROCESSED_ATTEMPTS):
            if attempt:
                time.sleep(self.UNPROCESSED_BACKOFF_S * 2 ** (attempt - 1))
            answer: Mapping[str, Any] = send(request)
            yield answer
            # The unprocessed part has the request's shape (typed as an output shape).
            request = cast(R, answer.get(leftover))
            if not request:
                return
        raise UnprocessedKeysError(
            f"DynamoDB left processed marks {what} in {self.table_name} "
            f"after {self.UNPROCESSED_ATTEMPTS} attempts"
        )

    def _dynamodb(self) -> DynamoDBClient:
        if self._client is None:
            self._client = default_dynamodb_client()
        return self._client


class DynamoDbFailureStore:
    """:class:`FailureStore` on a DynamoDB table (key ``id`` = SQS message id, TTL ``expiration``).

    Parameters
    ----------
    table_name : str
        The table (``EVENT_FAILURES_TABLE``).
    client : DynamoDBClient | None
        A client to use; by default the consumer's shared one, created on first use.
    """

    def __init__(self, table_name: str, *, client: DynamoDBClient | None = None) -> None:
        self.table_name = table_name
        self._client = client

    def record(self, failure: RecordFailure) -> None:
        """Put the failure, replacing the previous one of the message (the last error wins)."""
        self._dynamodb().put_item(TableName=self.table_name, Item=failure.to_item())

    def get(self, message_id: str) -> RecordFailure | None:
        """Return the last failure recorded for ``message_id``, if any."""
        answer = self._dynamodb().get_item(
            TableName=self.table_name, Key={EVENT_TABLE_KEY: {"S": message_id}}
        )
        item = answer.get("Item")
        return RecordFailure.from_item(item) if item is not None else None

    def _dynamodb(self) -> DynamoDBClient:
        if self._client is None:
            self._client = default_dynamodb_client()
        return self._client


class InMemoryIdempotencyStore:
    """:class:`IdempotencyStore` in a dict: for tests and benchmarks."""

    def __init__(self) -> None:
        self.marks: dict[str, int] = {}

    def processed_among(self, keys: Collection[str]) -> set[str]:
        """The marked keys among ``keys``."""
        return {key for key in keys if key in self.marks}

    def mark_processed(self, keys: Collection[str], *, expires_at: int) -> None:
        """Mark every key."""
        for key in keys:
            self.marks[key] = expires_at


class InMemoryFailureStore:
    """:class:`FailureStore` in a dict keyed by message id: for tests and benchmarks."""

    def __init__(self) -> None:
        self.failures: dict[str, RecordFailure] = {}

    def record(self, failure: RecordFailure) -> None:
        """Keep ``failure`` as the message's last."""
        self.failures[failure.message_id] = failure


_shared_dynamodb: DynamoDBClient | None = None


def default_dynamodb_client() -> DynamoDBClient:
    """The DynamoDB client the stores share in a warm container, created on first use."""
    global _shared_dynamodb  # one client per process, created lazily
    if _shared_dynamodb is None:
        # Created on the first record: boto3 costs ~0.3 s of cold start. The timeouts are well
        # inside the consumers' 10 s function timeout.
        _shared_dynamodb = aws.dynamodb_client()
    return _shared_dynamodb


def backoff_delay_s(attempts: int, base_s: float) -> int:
    """Visibility delay after the ``attempts``-th failed receive: ``base * 2^(attempts-1)``.

    Rounded up to whole seconds (what SQS takes) and capped at SQS's 12 hours.
    """
    exponent = min(max(attempts, 1) - 1, 30)
    delay: int = math.ceil(base_s * 2**exponent)
    return min(MAX_VISIBILITY_TIMEOUT_S, delay)


class _RecordFailed(Exception):  # noqa: N818 - internal signal, not an error type users see
    """A record could not be processed; carries what is known about it."""

    def __init__(
        self,
        reason: str,
        *,
        event_type: str | None = None,
        event_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_type = event_type
        self.event_id = event_id
        self.correlation_id = correlation_id


class _VisibilityBackoff:
    """Sets failed messages' visibility timeouts with ``ChangeMessageVisibilityBatch``."""

    def __init__(self, client: SQSClient | None) -> None:
        self._client = client
        self._queue_urls: dict[str, str] = {}

    def delay(self, queue_arn: str, entries: list[tuple[str, int]]) -> list[str]:
        """Hide each ``(receipt handle, seconds)``; return the errors (empty when all worked)."""
        client = self._sqs()
        url = self._queue_url(client, queue_arn)
        errors: list[str] = []
        for start in range(0, len(entries), 10):  # the API takes at most 10 entries
            chunk: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(start + n), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for n, (handle, seconds) in enumerate(entries[start : start + 10])
            ]
            answer = client.change_message_visibility_batch(QueueUrl=url, Entries=chunk)
            errors.extend(
                f"{failed.get('Code')}: {failed.get('Message', '')}"
                for failed in answer.get("Failed", [])
            )
        return errors

    def _queue_url(self, client: SQSClient, queue_arn: str) -> str:
        url = self._queue_urls.get(queue_arn)
        if url is None:
            # arn:aws:sqs:<region>:<account>:<name>. The URL is asked for, not built: its form
            # differs between AWS and the emulator's endpoint strategies.
            *_, account, name = queue_arn.split(":")
            url = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
            self._queue_urls[queue_arn] = url
        return url

    def _sqs(self) -> SQSClient:
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs", config=aws.fail_fast_config())
        return self._client


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
    common case.

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
    idempotency_table : str
        DynamoDB table of processed marks (``EVENT_IDEMPOTENCY_TABLE``).
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
        idempotency_table: str,
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
        self.idempotency_store: IdempotencyStore = idempotency_store or DynamoDbIdempotencyStore(
            idempotency_table, client=dynamodb_client
        )
        self.failure_store: FailureStore = failure_store or DynamoDbFailureStore(
            failures_table, client=dynamodb_client
        )
        self.logger = logger or get_logger(service)
        if retry_backoff_base_s is None:
            retry_backoff_base_s = load_settings(ConsumerSettings).retry_backoff_base_s
        if retry_backoff_base_s < 0:
            raise ValueError("retry_backoff_base_s must not be negative")
        self.retry_backoff_base_s = retry_backoff_base_s
        self._backoff = _VisibilityBackoff(sqs_client)
        self._processor = _new_processor(fifo)
        self._request_id: str | None = None
        self._marks = _BatchMarks(self.idempotency_store, frozenset(), None)

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
        records = list(event.get("Records") or [])
        self._request_id = getattr(context, "aws_request_id", None)
        self._marks = _BatchMarks.read(self.idempotency_store, self.service, records)
        processor = self._processor
        try:
            with processor(records, self._handle_record):
                processor.process()
            self._write_marks()
            failed = list(zip(processor.fail_messages, processor.exceptions, strict=True))
            if failed:
                self._after_failures(failed)
            return {"batchItemFailures": list(processor.response()["batchItemFailures"])}
        finally:
            self.logger.remove_keys(["event_id", "event_type", "message_id"])

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
        envelope: EventEnvelope | None = None
        try:
            envelope = parse_envelope(record.body)
            correlation_id = use_correlation_id(envelope.correlation_id)
            bind_invocation(self.logger, correlation_id, self._request_id)
            self.logger.append_keys(
                event_id=envelope.id, event_type=envelope.type, message_id=record.message_id
            )
            self._dispatch(envelope)
        except _RecordFailed:
            raise
        except EventError as exc:
            # A refusal, not a crash: the reason says it all, no stack trace.
            raise self._failed(str(exc), record, envelope) from None
        except Exception as exc:
            self.logger.exception("event handler failed")
            raise self._failed(f"{type(exc).__name__}: {exc}", record, envelope) from exc

    def _dispatch(self, envelope: EventEnvelope) -> None:
        handler = self.handlers.get((envelope.type, envelope.version))
        if handler is None:
            event_model(envelope.type, envelope.version)  # UnknownEventError names the known ones
            raise _RecordFailed(
                f"{self.service} has no handler for {envelope.type} v{envelope.version}",
                event_type=envelope.type,
                event_id=envelope.id,
                correlation_id=envelope.correlation_id,
            )
        data = event_data(envelope)
        key = f"{self.service}#{envelope.id}"
        if self._marks.is_processed(key):
            self.logger.info("duplicate event acknowledged without processing")
            return
        handler(envelope, data)
        self._marks.handled.append(key)
        self.logger.debug("event processed")

    def _failed(
        self, reason: str, record: SQSRecord, envelope: EventEnvelope | None
    ) -> _RecordFailed:
        if envelope is not None:
            return _RecordFailed(
                reason,
                event_type=envelope.type,
                event_id=envelope.id,
                correlation_id=envelope.correlation_id,
            )
        event_type, correlation_id = _attributes_of(record)
        return _RecordFailed(reason, event_type=event_type, correlation_id=correlation_id)

    def _after_failures(self, failed: Iterable[tuple[Any, Any]]) -> None:
        """Log, record and delay every failed record of the batch."""
        at = dt.datetime.now(dt.UTC)
        delays: dict[str, list[tuple[str, int]]] = {}
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
            self.logger.warning(
                "event record failed",
                extra={
                    "reason": failure.reason,
                    "attempts": failure.attempts,
                    "queue": failure.queue,
                    "retry_in_s": delay_s,
                },
            )
            try:
                self.failure_store.record(failure)
            except Exception:
                # The record is reported failed all the same; only `dlq show` loses its reason.
                self.logger.exception("could not record the failure")
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

    def _describe(self, record: SQSRecord, exc: Any, at: dt.datetime) -> tuple[RecordFailure, int]:
        attempts = _receive_count(record)
        delay_s = backoff_delay_s(attempts, self.retry_backoff_base_s)
        if isinstance(exc, _RecordFailed):
            reason, event_type = exc.reason, exc.event_type
            event_id, correlation_id = exc.event_id, exc.correlation_id
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
            reason=reason,
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
            f"{service}#{event_id}"
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
    version, so a table of handlers reads::

        handlers=dict([
            typed_handler(OrderPlaced, desk.on_order_placed, log_published(logger)),
            typed_handler(OrderCancelled, desk.on_order_cancelled, log_published(logger)),
        ])

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


def _attributes_of(record: SQSRecord) -> tuple[str | None, str | None]:
    """The ``type`` and ``correlation_id`` message attributes (the body may be unreadable)."""
    attributes = record.raw_event.get("messageAttributes") or {}

    def value(name: str) -> str | None:
        attribute = attributes.get(name)
        if isinstance(attribute, dict):
            text = attribute.get("stringValue")
            return text if isinstance(text, str) else None
        return None

    event_type = value("type")
    correlation_id = value("correlation_id")
    if event_type is not None and not is_valid_correlation_id(event_type):
        event_type = None  # goes into logs and a table: same safe alphabet as ids
    if correlation_id is not None and not is_valid_correlation_id(correlation_id):
        correlation_id = None
    return event_type, correlation_id
