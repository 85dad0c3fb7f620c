"""Benchmark: the in-process cost of the event consumer per SQS record, beside its floor.

10 000 records of ``order.placed`` in batches of 10 (the consumers' batch size) go through
:class:`EventConsumer` with a no-op handler and in-memory idempotency/failure stores injected
through its constructor, so only the toolkit's own work is timed: Powertools' batch processor,
envelope and data validation, correlation id and log keys, the idempotency check and mark. The
floor is the same records' bodies parsed with ``json.loads`` only. Target: ≤ 200 µs per record.

For reference, the same path with the stores on moto's DynamoDB (in-process, so it counts moto's
own work as well as botocore's request building and parsing) is timed on fewer records.

Figures are printed, never asserted: these machines are noisy. Run with ``-s``.
"""

from __future__ import annotations

import io
import json
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh_toolkit.contracts.events import EventEnvelope, OrderPlaced
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.events.bookkeeping import EVENT_TABLE_KEY
from lambdamesh_toolkit.events.consuming import EventConsumer
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.logging import get_logger
from tests.support.event_bookkeeping import InMemoryFailureStore, InMemoryIdempotencyStore
from tests.support.fake_aws import use_fake_aws

RECORDS = 10_000
MOTO_RECORDS = 1_000
BATCH_SIZE = 10
RUNS = 3
TARGET_US = 200.0
QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:lambdamesh-payments-orders.fifo"


def sqs_record(envelope: EventEnvelope, group_id: str) -> dict[str, Any]:
    """One record as Lambda's SQS event source mapping delivers a raw SNS message."""
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": uuid.uuid4().hex * 4,
        "body": envelope.model_dump_json(),
        "attributes": {
            "ApproximateReceiveCount": "1",
            "SentTimestamp": str(int(time.time() * 1000)),
            "MessageGroupId": group_id,
            "MessageDeduplicationId": envelope.id,
        },
        "messageAttributes": {
            "type": {"stringValue": envelope.type, "dataType": "String"},
            "version": {"stringValue": str(envelope.version), "dataType": "String"},
            "correlation_id": {"stringValue": envelope.correlation_id, "dataType": "String"},
        },
        "md5OfBody": "0" * 32,
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }


def batches(count: int) -> list[dict[str, Any]]:
    """``count`` distinct order.placed records (distinct event ids), in Lambda events of 10."""
    line = OrderLine(
        product_id="p-1", name="Teapot", quantity=2, unit_price_cents=1250, line_total_cents=2500
    )
    records = []
    for n in range(count):
        data = OrderPlaced(
            order_id=f"o-{n}", user_id="u-1", lines=[line], total_cents=2500, currency="EUR"
        )
        records.append(sqs_record(new_event("order.placed", data, source="orders"), f"o-{n}"))
    return [
        {"Records": records[start : start + BATCH_SIZE]} for start in range(0, count, BATCH_SIZE)
    ]


def no_op(envelope: EventEnvelope, data: OrderPlaced) -> None:
    return None


def consumer(fifo: bool, **stores: Any) -> EventConsumer:
    return EventConsumer(
        "payments",
        idempotency_table="lambdamesh-event-idempotency",
        failures_table="lambdamesh-event-failures",
        handlers={("order.placed", 1): no_op},
        fifo=fifo,
        logger=get_logger(f"bench-{uuid.uuid4().hex[:8]}", stream=io.StringIO()),
        retry_backoff_base_s=1,
        **stores,
    )


def per_record_us(events: list[dict[str, Any]], run: Callable[[dict[str, Any]], object]) -> float:
    count = sum(len(event["Records"]) for event in events)
    started = time.perf_counter()
    for event in events:
        run(event)
    return (time.perf_counter() - started) / count * 1e6


def json_floor(event: dict[str, Any]) -> None:
    for record in event["Records"]:
        json.loads(record["body"])


@pytest.fixture
def moto_tables(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        for table in ("lambdamesh-event-idempotency", "lambdamesh-event-failures"):
            client.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": EVENT_TABLE_KEY, "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": EVENT_TABLE_KEY, "AttributeType": "S"}],
                BillingMode="PAY_PER_REQUEST",
            )
        yield client


def test_consumer_overhead_per_record(moto_tables: Any) -> None:
    # GIVEN 10 000 distinct records in batches of 10, no-op handlers, in-memory stores
    # WHEN they are processed (standard and FIFO processors), each run on fresh stores
    figures: dict[str, list[float]] = {"json.loads floor": [], "standard": [], "fifo": []}
    for _ in range(RUNS):
        events = batches(RECORDS)
        figures["json.loads floor"].append(per_record_us(events, json_floor))
        for name, fifo in (("standard", False), ("fifo", True)):
            subject = consumer(
                fifo,
                idempotency_store=InMemoryIdempotencyStore(),
                failure_store=InMemoryFailureStore(),
            )
            figures[name].append(per_record_us(events, subject.process))

    # AND fewer records with the stores on moto's DynamoDB, for reference
    moto_events = batches(MOTO_RECORDS)
    on_moto = consumer(False, dynamodb_client=moto_tables)
    moto_us = per_record_us(moto_events, on_moto.process)

    # THEN the figures are printed (never asserted)
    print(f"\nconsumer overhead per record, median of {RUNS} runs of {RECORDS} records:")
    for name, samples in figures.items():
        print(f"  {name:<18} {statistics.median(samples):8.1f} µs")
    ours = max(statistics.median(figures["standard"]), statistics.median(figures["fifo"]))
    floor = statistics.median(figures["json.loads floor"])
    verdict = "within" if ours <= TARGET_US else "OVER"
    print(f"  {'consumer (slower)':<18} {ours:8.1f} µs: {verdict} the {TARGET_US:.0f} µs target")
    print(f"  {'consumer - floor':<18} {ours - floor:8.1f} µs")
    print(f"  with moto DynamoDB   {moto_us:8.1f} µs ({MOTO_RECORDS} records, reference only)")
