"""Benchmark: the event store and the DynamoDB stream hop on the embedded LocalStack.

Prints (run with ``-s``), each beside a floor measured in the same run:

* appending one event to a stream (a ``TransactWriteItems`` of the event's put and the check of
  the version read), p50/p99, against a bare conditional ``PutItem`` on the same table;
* rebuilding an Order aggregate from 1 000 events (consistent queries, envelopes parsed and
  validated, folded), against the same queries alone;
* LocalStack's CPU with ten idle DynamoDB stream mappings;
* the idle hop from a write to the function its DynamoDB stream invokes, p50/p90, against the idle
  hop from ``SendMessage`` to the function an SQS queue invokes (AWS's stream hop is ≈ 200 ms p50;
  target on the embedded runtime: p50 ≤ 100 ms, as the SQS hop).

Figures are printed, never asserted. ``LAMBDAMESH_BENCH_APPENDS`` (default 300),
``LAMBDAMESH_BENCH_HOP_SAMPLES`` (default 20) and ``LAMBDAMESH_BENCH_HOP_SPACING_S`` (default 1)
shorten the runs.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lambdamesh_toolkit.contracts.events import OrderPlaced, OrderVoided
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.store import EventStore, table_definition
from tests.benchmarks.test_event_source_speed import (
    NOOP,
    cpu_seconds,
    localstack_process,
    percentile,
    wait_enabled,
)
from tests.e2e.lambda_support import create_function, unique_name
from tests.support.sqs import queue_arn
from tests.unit.services.service_loader import load_service

APPENDS = int(os.environ.get("LAMBDAMESH_BENCH_APPENDS", "300"))
HOP_SAMPLES = int(os.environ.get("LAMBDAMESH_BENCH_HOP_SAMPLES", "20"))
HOP_SPACING_S = float(os.environ.get("LAMBDAMESH_BENCH_HOP_SPACING_S", "1"))
REBUILD_EVENTS = 1000
STREAMS = 30

STAMPER = """
    import json
    import os
    import time

    import boto3

    sqs = boto3.client("sqs")

    def handler(event, context):
        started = time.time()
        for record in event["Records"]:
            if "dynamodb" in record:
                image = record["dynamodb"].get("NewImage", {})
                if "written" not in image:
                    continue
                written = float(image["written"]["N"])
            else:
                written = json.loads(record["body"])["written"]
            sqs.send_message(
                QueueUrl=os.environ["STAMPS_URL"],
                MessageBody=json.dumps({"written": written, "started": started}),
            )
        return {}
"""


@pytest.fixture(scope="module")
def dynamodb(emulator: Any) -> Any:
    return emulator.client("dynamodb")


@pytest.fixture
def store(dynamodb: Any) -> Iterator[EventStore]:
    name = unique_name("bench-events")
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **table_definition())
    dynamodb.get_waiter("table_exists").wait(TableName=name)
    yield EventStore(name, client=dynamodb)
    dynamodb.delete_table(TableName=name)


def _voided(order_id: str, index: int) -> Any:
    return new_event(
        OrderVoided.event_type,
        OrderVoided(order_id=order_id, reason=f"benchmark event {index}"),
        source="bench",
    )


def test_append_beside_a_bare_conditional_put(store: EventStore, dynamodb: Any) -> None:
    appends: list[float] = []
    versions = dict.fromkeys(range(STREAMS), 0)
    for index in range(APPENDS):
        stream = index % STREAMS
        event = _voided(f"o-{stream}", index)
        started = time.perf_counter()
        versions[stream] = store.append(
            f"order-o-{stream}", [event], expected_version=versions[stream]
        )
        appends.append((time.perf_counter() - started) * 1000)
    puts: list[float] = []
    for index in range(APPENDS):
        item = {
            "stream_id": {"S": f"floor-{index % STREAMS}"},
            "version": {"N": str(index)},
            "event": {"S": _voided("floor", index).model_dump_json()},
        }
        started = time.perf_counter()
        dynamodb.put_item(
            TableName=store.table_name,
            Item=item,
            ConditionExpression="attribute_not_exists(stream_id)",
        )
        puts.append((time.perf_counter() - started) * 1000)
    append_p50, put_p50 = percentile(appends, 0.5), percentile(puts, 0.5)
    print(
        f"\nappend of one event ({APPENDS}, {STREAMS} streams): p50 {append_p50:.1f} ms, "
        f"p99 {percentile(appends, 0.99):.1f} ms; bare conditional PutItem: p50 {put_p50:.1f} ms, "
        f"p99 {percentile(puts, 0.99):.1f} ms; ratio p50 x{append_p50 / put_p50:.2f}"
    )


def test_rebuilding_an_order_of_a_thousand_events(store: EventStore, dynamodb: Any) -> None:
    order = load_service("orders").module("chalicelib.order")
    placed = new_event(
        OrderPlaced.event_type,
        OrderPlaced(
            order_id="o-long",
            user_id="u-1",
            lines=[
                OrderLine(
                    product_id="p-1",
                    name="Kettle",
                    quantity=1,
                    unit_price_cents=100,
                    line_total_cents=100,
                )
            ],
            total_cents=100,
            currency="EUR",
        ),
        source="bench",
    )
    events = [placed] + [_voided("o-long", index) for index in range(REBUILD_EVENTS - 1)]
    version = 0
    for start in range(0, len(events), 99):
        chunk = events[start : start + 99]
        version = store.append("order-o-long", chunk, expected_version=version)

    def query_only() -> int:
        request: dict[str, Any] = {
            "TableName": store.table_name,
            "KeyConditionExpression": "stream_id = :stream",
            "ExpressionAttributeValues": {":stream": {"S": "order-o-long"}},
            "ConsistentRead": True,
        }
        count = 0
        while True:
            answer = dynamodb.query(**request)
            count += len(answer["Items"])
            if "LastEvaluatedKey" not in answer:
                return count
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    rebuilds, floors = [], []
    for _ in range(5):
        started = time.perf_counter()
        aggregate = order.rebuild("o-long", store.read("order-o-long"))
        rebuilds.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        assert query_only() == REBUILD_EVENTS
        floors.append((time.perf_counter() - started) * 1000)
    assert aggregate.version == REBUILD_EVENTS
    rebuild_p50, floor_p50 = percentile(rebuilds, 0.5), percentile(floors, 0.5)
    print(
        f"\nrebuild of an order from {REBUILD_EVENTS} events: p50 {rebuild_p50:.0f} ms "
        f"(read, parse, validate, fold); the queries alone: p50 {floor_p50:.0f} ms; "
        f"ratio x{rebuild_p50 / floor_p50:.2f}"
    )


def _streamed_table(dynamodb: Any, prefix: str) -> tuple[str, str]:
    """A new table (key ``pk``) with a ``NEW_IMAGE`` stream: its name and its stream's ARN."""
    table = unique_name(prefix)
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    dynamodb.get_waiter("table_exists").wait(TableName=table)
    return table, str(dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"])


def test_stream_hop_beside_the_sqs_hop(emulator: Any, dynamodb: Any) -> None:
    lambda_client, sqs = emulator.client("lambda"), emulator.client("sqs")
    stamps_url = sqs.create_queue(QueueName=unique_name("stream-hop-stamps"))["QueueUrl"]
    function_name = create_function(lambda_client, STAMPER, environment={"STAMPS_URL": stamps_url})
    table, stream_arn = _streamed_table(dynamodb, "stream-hop")
    queue_url = sqs.create_queue(QueueName=unique_name("sqs-hop"))["QueueUrl"]
    for source in (stream_arn, queue_arn(sqs, queue_url)):
        extra = {"StartingPosition": "LATEST"} if source == stream_arn else {}
        uuid = lambda_client.create_event_source_mapping(
            FunctionName=function_name, EventSourceArn=source, BatchSize=10, **extra
        )["UUID"]
        wait_enabled(lambda_client, uuid)

    def stamp() -> float:
        answer = sqs.receive_message(QueueUrl=stamps_url, WaitTimeSeconds=20)
        message = answer["Messages"][0]
        sqs.delete_message(QueueUrl=stamps_url, ReceiptHandle=message["ReceiptHandle"])
        body = json.loads(message["Body"])
        return float(body["started"] - body["written"]) * 1000

    def stream_hop(index: int) -> float:
        dynamodb.put_item(
            TableName=table,
            Item={"pk": {"S": f"k-{index}"}, "written": {"N": repr(time.time())}},
        )
        return stamp()

    def sqs_hop(index: int) -> float:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"written": time.time()}))
        return stamp()

    stream_hop(-1)  # cold starts and a mapping's first poll are not idle hops
    sqs_hop(-1)
    stream_samples, sqs_samples = [], []
    for index in range(HOP_SAMPLES):
        time.sleep(HOP_SPACING_S)
        stream_samples.append(stream_hop(index))
        time.sleep(HOP_SPACING_S)
        sqs_samples.append(sqs_hop(index))
    stream_p50, sqs_p50 = percentile(stream_samples, 0.5), percentile(sqs_samples, 0.5)
    print(
        f"\nidle hop write -> function start over {HOP_SAMPLES} writes {HOP_SPACING_S:g} s apart: "
        f"DynamoDB stream p50 {stream_p50:.0f} ms, p90 {percentile(stream_samples, 0.9):.0f} ms; "
        f"SQS p50 {sqs_p50:.0f} ms, p90 {percentile(sqs_samples, 0.9):.0f} ms; "
        f"ratio p50 x{stream_p50 / sqs_p50:.1f} (target: stream p50 <= 100 ms; AWS's ~200 ms)"
    )


IDLE_STREAM_MAPPINGS = 10
IDLE_SECONDS = 10.0


def test_idle_cpu_of_localstack_with_ten_stream_mappings(emulator: Any, dynamodb: Any) -> None:
    lambda_client = emulator.client("lambda")
    function_name = create_function(lambda_client, NOOP)
    for _ in range(IDLE_STREAM_MAPPINGS):
        _, stream_arn = _streamed_table(dynamodb, "idle-stream")
        uuid = lambda_client.create_event_source_mapping(
            FunctionName=function_name, EventSourceArn=stream_arn, StartingPosition="LATEST"
        )["UUID"]
        wait_enabled(lambda_client, uuid)
    process = localstack_process(emulator)
    time.sleep(2.0)  # the mappings' first polls
    before = cpu_seconds(process)
    time.sleep(IDLE_SECONDS)
    share = (cpu_seconds(process) - before) / IDLE_SECONDS * 100
    print(
        f"\nidle LocalStack CPU with {IDLE_STREAM_MAPPINGS} DynamoDB stream mappings: "
        f"{share:.1f} % of one core (pollers wait for a write instead of polling every 10 ms)"
    )
