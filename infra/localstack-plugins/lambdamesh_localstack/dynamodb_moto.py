"""DynamoDB and DynamoDB Streams for the embedded LocalStack, served by moto.

LocalStack's own DynamoDB provider downloads Java and DynamoDB Local on first
use, which fails offline. moto implements the DynamoDB API in-process
(conditions and transactions faithfully), so both services are plain moto
fall-throughs: ``PROVIDER_OVERRIDE_DYNAMODB=moto`` and
``PROVIDER_OVERRIDE_DYNAMODBSTREAMS=moto`` select them.

Two DynamoDB Streams operations are answered here instead of by moto, because
Lambda's event source mapping calls them in a tight loop:

``GetShardIterator`` / ``GetRecords``
    moto keeps every shard iterator it hands out in a dictionary for the life
    of the process (``GetRecords`` mints a new one per call, ~1.5 KB each), so
    a mapping polling an idle table grows the emulator without bound. Here an
    iterator is a self-contained token (stream, shard, position, issue time),
    nothing is stored, and it expires after 15 minutes as on AWS. moto also
    answers an unknown iterator or shard with an internal error (HTTP 500)
    instead of ``ValidationException`` / ``ResourceNotFoundException``.

Records are read from moto's table state, with moto's differences from AWS
removed: an empty ``OldImage`` on ``INSERT`` (and ``NewImage`` on ``REMOVE``),
``awsRegion`` always ``us-east-1``, and ``eventVersion`` ``1.0``.

Every operation of both services runs under one lock. moto's backend is not
thread-safe, and LocalStack serves requests on many threads: ``TransactWriteItems``
deep-copies the tables it touches as its rollback point, so a write to the same table
during the copy fails it ("dictionary changed size during iteration", HTTP 500), and a
rollback would restore the copy over writes made meanwhile. Measured with eight
concurrent clients placing orders. moto is pure Python under the GIL, so the lock
costs little throughput.

A write that changes nothing makes no stream record, and every record wakes the stream event
source mappings waiting for one (:mod:`lambdamesh_localstack.stream_wakeup`).

``TransactWriteItems`` rolls back item by item instead of through moto's copy of
every table it touches (:mod:`lambdamesh_localstack.moto_transactions`): the copy
made a transaction cost 90-100 ms of CPU on a table of a few hundred orders. A ``Query`` on a
table's key reads the asked partition instead of the whole table sorted
(:mod:`lambdamesh_localstack.moto_queries`).
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self, cast

from localstack.aws.api import CommonServiceException, RequestContext, ServiceRequest
from localstack.aws.api.core import ServiceRequestHandler, ServiceResponse
from localstack.aws.api.dynamodb import DynamodbApi
from localstack.aws.api.dynamodbstreams import (
    DynamodbstreamsApi,
    ExpiredIteratorException,
    GetRecordsOutput,
    GetShardIteratorOutput,
    PositiveIntegerObject,
    Record,
    ResourceNotFoundException,
    SequenceNumber,
    ShardId,
    ShardIterator,
    ShardIteratorType,
    StreamArn,
    TrimmedDataAccessException,
)
from localstack.aws.skeleton import DispatchTable
from localstack.services.moto import MotoFallbackDispatcher
from localstack.services.plugins import Service, aws_provider
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import StreamShard

from lambdamesh_localstack import moto_queries, moto_transactions, stream_wakeup
from lambdamesh_localstack.stream_records import binary_as_bytes

SHARD_ITERATOR_LIFETIME_SECONDS = 15 * 60
"""AWS: a shard iterator expires 15 minutes after it is returned to the requester."""

MAX_RECORDS_PER_CALL = 1000
"""AWS: GetRecords returns at most 1000 records (also its default ``Limit``)."""


MOTO_LOCK = threading.RLock()
"""Serialises every DynamoDB and DynamoDB Streams operation on moto's shared backend."""


def serialised_moto_dispatcher(provider: object) -> DispatchTable:
    """LocalStack's moto fall-through dispatch table, each operation run under `MOTO_LOCK`."""
    table = MotoFallbackDispatcher(provider)
    return {operation: _under_lock(handler) for operation, handler in table.items()}


def _under_lock(handler: ServiceRequestHandler) -> ServiceRequestHandler:
    @functools.wraps(handler)
    def call(context: RequestContext, request: ServiceRequest) -> ServiceResponse:
        with MOTO_LOCK:
            return handler(context, request)

    return call


class ValidationException(CommonServiceException):
    """DynamoDB's ``ValidationException`` (a common error, not in the Streams model)."""

    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message, status_code=400, sender_fault=True)


class DynamoDBMotoProvider(DynamodbApi):
    """DynamoDB, every operation served by moto (through ``MotoFallbackDispatcher``)."""


class DynamoDBStreamsMotoProvider(DynamodbstreamsApi):
    """DynamoDB Streams: iterators and records here, the rest served by moto."""

    def get_shard_iterator(
        self,
        context: RequestContext,
        stream_arn: StreamArn,
        shard_id: ShardId,
        shard_iterator_type: ShardIteratorType,
        sequence_number: SequenceNumber | None = None,
        **kwargs: Any,
    ) -> GetShardIteratorOutput:
        """Return a stateless iterator positioned as ``shard_iterator_type`` asks."""
        shard = _stream_shard(stream_arn, shard_id)
        first = shard.starting_sequence_number
        end = first + len(shard.items)  # the sequence number the next write will get
        match shard_iterator_type:
            case "TRIM_HORIZON":
                position = first
            case "LATEST":
                position = end
            case "AT_SEQUENCE_NUMBER":
                position = _parse_sequence_number(sequence_number)
            case "AFTER_SEQUENCE_NUMBER":
                position = _parse_sequence_number(sequence_number) + 1
            case _:
                raise ValidationException(f"Invalid ShardIteratorType: {shard_iterator_type}")
        if not first <= position <= end:
            raise ValidationException(
                f"Invalid SequenceNumber {sequence_number} for shard {shard_id}: "
                f"the shard holds {first} to {end - 1}"
            )
        token = IteratorToken(stream_arn, shard_id, position, time.time())
        return GetShardIteratorOutput(ShardIterator=token.encode())

    def get_records(
        self,
        context: RequestContext,
        shard_iterator: ShardIterator,
        limit: PositiveIntegerObject | None = None,
        **kwargs: Any,
    ) -> GetRecordsOutput:
        """Return up to ``limit`` records from the iterator's position, and the next iterator."""
        if limit is not None and not 1 <= limit <= MAX_RECORDS_PER_CALL:
            raise ValidationException(
                f"Limit must be between 1 and {MAX_RECORDS_PER_CALL}, got {limit}"
            )
        token = IteratorToken.decode(shard_iterator)
        if time.time() - token.issued_at > SHARD_ITERATOR_LIFETIME_SECONDS:
            raise ExpiredIteratorException(
                "Iterator expired. The iterator was created over 15 minutes ago."
            )
        shard = _stream_shard(token.stream_arn, token.shard_id)
        start = token.position - shard.starting_sequence_number
        if start < 0:
            raise TrimmedDataAccessException(
                f"Sequence number {token.position} is before the shard's first record"
            )
        raw = shard.items[start : start + (limit or MAX_RECORDS_PER_CALL)]
        region = token.stream_arn.split(":")[3]
        records = [_aws_record(item.to_json(), region) for item in raw]
        following = IteratorToken(
            token.stream_arn, token.shard_id, token.position + len(records), time.time()
        )
        return GetRecordsOutput(Records=records, NextShardIterator=following.encode())


@dataclass(frozen=True, slots=True)
class IteratorToken:
    """Everything a shard iterator stands for, carried in the iterator itself.

    Attributes
    ----------
    stream_arn
        The stream, ``arn:aws:dynamodb:<region>:<account>:table/<name>/stream/<label>``.
    shard_id
        The shard within the stream.
    position
        Sequence number of the next record to return.
    issued_at
        Epoch seconds when the iterator was handed out (for the 15-minute expiry).
    """

    stream_arn: str
    shard_id: str
    position: int
    issued_at: float

    def encode(self) -> str:
        """Serialise to the opaque string clients pass back (well under the 2048-char limit)."""
        body = json.dumps([self.stream_arn, self.shard_id, self.position, self.issued_at])
        return base64.urlsafe_b64encode(body.encode()).decode("ascii")

    @classmethod
    def decode(cls, value: str) -> Self:
        """Parse an iterator from :meth:`encode`.

        Raises
        ------
        ValidationException
            If ``value`` was not produced by :meth:`encode`.
        """
        try:
            arn, shard_id, position, issued_at = json.loads(base64.urlsafe_b64decode(value))
            return cls(str(arn), str(shard_id), int(position), float(issued_at))
        except (binascii.Error, UnicodeDecodeError, ValueError, TypeError) as error:
            raise ValidationException("Invalid ShardIterator") from error


def _stream_shard(stream_arn: str, shard_id: str) -> StreamShard:
    """Find moto's shard for a stream ARN, failing the way DynamoDB Streams does."""
    not_found = ResourceNotFoundException(
        f"Requested resource not found: Stream: {stream_arn} or shard {shard_id} not found"
    )
    try:
        _arn, _partition, _service, region, account, resource = stream_arn.split(":", 5)
        _table, table_name, _stream, label = resource.split("/", 3)
    except ValueError as error:
        raise ValidationException(f"Invalid StreamArn: {stream_arn}") from error
    table = dynamodb_backends[account][region].tables.get(table_name)
    if table is None or table.stream_shard is None or table.latest_stream_label != label:
        raise not_found
    if table.stream_shard.id != shard_id:
        raise not_found
    return table.stream_shard


def _parse_sequence_number(sequence_number: str | None) -> int:
    if sequence_number is None or not sequence_number.isdigit():
        raise ValidationException(f"Invalid SequenceNumber: {sequence_number}")
    return int(sequence_number)


def _aws_record(moto_record: dict[str, Any], region: str) -> Record:
    """Copy a moto stream record into the shape AWS returns."""
    record = copy.deepcopy(moto_record)
    image = record["dynamodb"]
    # AWS has no OldImage on INSERT and no NewImage on REMOVE; moto writes empty ones,
    # which consumers testing `"OldImage" in record` would misread.
    if record["eventName"] == "INSERT":
        image.pop("OldImage", None)
    elif record["eventName"] == "REMOVE":
        image.pop("NewImage", None)
    for name in ("Keys", "NewImage", "OldImage"):
        if name in image:
            image[name] = {key: binary_as_bytes(value) for key, value in image[name].items()}
    created = image.get("ApproximateCreationDateTime")
    if isinstance(created, str):
        # moto stores naive UTC ISO text; the wire format is epoch seconds.
        image["ApproximateCreationDateTime"] = datetime.fromisoformat(created).replace(tzinfo=UTC)
    record["awsRegion"] = region
    record["eventVersion"] = "1.1"
    return cast(Record, record)


@aws_provider(api="dynamodb", name="moto")  # type: ignore[untyped-decorator]
def dynamodb_moto() -> Service:
    """Plugin ``localstack.aws.provider:dynamodb:moto``."""
    moto_transactions.install()
    moto_queries.install()
    stream_wakeup.install_stream_notifications()
    return Service.for_provider(
        DynamoDBMotoProvider(), dispatch_table_factory=serialised_moto_dispatcher
    )


@aws_provider(api="dynamodbstreams", name="moto")  # type: ignore[untyped-decorator]
def dynamodbstreams_moto() -> Service:
    """Plugin ``localstack.aws.provider:dynamodbstreams:moto``."""
    return Service.for_provider(
        DynamoDBStreamsMotoProvider(), dispatch_table_factory=serialised_moto_dispatcher
    )
