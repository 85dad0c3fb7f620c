"""Benchmark: orders per second through the whole order saga, beside a bare messaging floor.

**The saga.** ``ORDERS`` orders (one pack of paper filters each, from one user) are posted to
``POST /orders`` from a pool of ``THREADS`` threads (each with an ``Idempotency-Key``, a 503 or
409 retried after its ``Retry-After``, as a client would); then the orders table is polled
(``BatchGetItem``, consistent, every ``POLL_INTERVAL_S``) until every order is confirmed.
Printed: wall time from the first POST to the last order seen confirmed, orders/s, p50/p90 of
the POST latency, and p50/p90 of placed → confirmed per order (the order's ``created_at`` to
the poll that first saw it confirmed: the resolution is the poll interval). The inventory's
stock of paper filters is topped up by ``ORDERS + 1`` units first (the extra one for the warm-up
order); the orders take exactly those units again.

**The floor**, measured in the same run on the same emulator: a standard SNS topic, a standard
SQS queue subscribed to it (raw delivery) and a no-op function reading it through an event
source mapping (batch size 10, no batching window), all made here and removed afterwards.
An order makes ``HOPS_PER_ORDER`` SNS → SQS → Lambda deliveries on its way to confirmed:
``order.placed`` → payments, ``order.placed`` → inventory, ``payment.processed`` → orders,
``inventory.reserved`` → orders, ``order.confirmed`` → notifications. The floor publishes
``ORDERS * HOPS_PER_ORDER`` messages (one ``Publish`` each, from ``THREADS`` threads) and times
them until the queue is empty; its throughput in orders/s is ``ORDERS / floor wall time``, i.e.
messages/s divided by the hops per order. It has none of the saga's work (API Gateway, the
HTTP/RPC calls of ``POST /orders``, DynamoDB, SES, publishing from the functions) and runs all
its hops at once rather than one after the other, so it is an upper bound the saga is held
against: target saga ≥ ``TARGET_RATIO`` times the floor.

**CPU per order**: LocalStack's and its function processes' CPU time from the first POST to
the last order seen confirmed, divided by ``ORDERS`` (cold starts of new execution environments
included; processes that exited meanwhile not), beside what the target allows an order to cost
the machine: ``cores / (TARGET_RATIO * floor orders/s)``. Printed only for the embedded emulator.
**Requests per order**: the AWS requests the embedded emulator served from the first POST to
the last order seen confirmed (its ``/_lambdamesh/requests`` counts: the functions' and its
own, such as an event source mapping's ``ReceiveMessage`` and ``Invoke``; the benchmark's own
polling taken out; API Gateway's requests are not AWS operations and are not counted), divided
by ``ORDERS``, by service and by operation, beside the target of 25.

``LAMBDAMESH_BENCH_ORDERS`` changes ``ORDERS``.

Figures are printed, never asserted. Run with ``-s``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil
import pytest
import urllib3

from lambdamesh.chaos.observation import restock
from tests.conftest import RunningEmulator
from tests.e2e.conftest import DeployedSystem, deploy_system
from tests.e2e.lambda_support import create_function, unique_name, wait_until
from tests.support.sqs import subscribe_raw

ORDERS = int(os.environ.get("LAMBDAMESH_BENCH_ORDERS", "500"))
THREADS = 8
HOPS_PER_ORDER = 5
TARGET_RATIO = 0.6
POLL_INTERVAL_S = 0.25
PRODUCT = "p-paper-filters"
SAGA_TIMEOUT_S = 900.0
"""Bound on waiting for every order (not a performance assertion)."""

NOOP = """
    def handler(event, context):
        return {"batchItemFailures": []}
"""

_http = urllib3.PoolManager(maxsize=THREADS, retries=False)
_TIMEOUT = urllib3.Timeout(connect=2.0, read=60.0)


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(samples)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(len(ordered), rank) - 1]


@pytest.fixture(scope="module")
def system(emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> DeployedSystem:
    """Every service deployed (reused as is when the stacks are current)."""
    return deploy_system(emulator, tmp_path_factory.mktemp("bench-saga-deploy"))


@dataclass(frozen=True)
class Placed:
    """One posted order: its id, when it was created, the POST's latency, 503s it met."""

    order_id: str
    created_at: float
    post_s: float
    unavailable: int


MAX_POST_ATTEMPTS = 20


def post_order(url: str, user_id: str) -> Placed:
    """Place one order as a well-behaved client does under load.

    A ``503`` (a dependency timed out or the breaker is open while the emulator is
    saturated) is retried after its ``Retry-After`` under the same ``Idempotency-Key``, so a
    retry never places a second order. The latency is the client's: first try to answer.
    """
    body = json.dumps(
        {"user_id": user_id, "items": [{"product_id": PRODUCT, "quantity": 1}]}
    ).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())}
    started = time.perf_counter()
    for attempt in range(MAX_POST_ATTEMPTS):
        response = _http.request("POST", url, body=body, headers=headers, timeout=_TIMEOUT)
        if response.status in (200, 201):
            elapsed = time.perf_counter() - started
            order = json.loads(response.data)
            created = datetime.fromisoformat(order["created_at"]).timestamp()
            return Placed(order["id"], created, elapsed, attempt)
        assert response.status in (409, 503), response.data
        time.sleep(float(response.headers.get("Retry-After", "1")))
    raise AssertionError(f"no order placed after {MAX_POST_ATTEMPTS} attempts")


def confirmed_at(dynamodb: Any, table: str, order_ids: list[str]) -> dict[str, float]:
    """Poll until every order is confirmed; when each was first seen so (epoch seconds)."""
    seen: dict[str, float] = {}
    pending = list(order_ids)
    deadline = time.monotonic() + SAGA_TIMEOUT_S
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} orders still not confirmed"
        for start in range(0, len(pending), 100):
            keys = [{"id": {"S": order_id}} for order_id in pending[start : start + 100]]
            request: dict[str, Any] = {
                table: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "id, #status",
                    "ExpressionAttributeNames": {"#status": "status"},
                }
            }
            while request:
                answer = dynamodb.batch_get_item(RequestItems=request)
                now = time.time()
                for item in answer["Responses"].get(table, []):
                    status = item["status"]["S"]
                    assert status != "cancelled", f"order {item['id']['S']} was cancelled"
                    if status == "confirmed":
                        seen[item["id"]["S"]] = now
                request = answer.get("UnprocessedKeys") or {}
        pending = [order_id for order_id in pending if order_id not in seen]
        if pending:
            time.sleep(POLL_INTERVAL_S)
    return seen


def new_user_id(system: DeployedSystem) -> str:
    response = _http.request(
        "POST",
        system["users"].url("users"),
        body=json.dumps({"email": f"bench-{uuid.uuid4().hex[:8]}@example.org", "name": "Bench"}),
        headers={"Content-Type": "application/json"},
        timeout=_TIMEOUT,
    )
    assert response.status == 201, response.data
    user_id: str = json.loads(response.data)["id"]
    return user_id


@dataclass(frozen=True)
class CpuSplit:
    """CPU seconds of LocalStack's process and of its children (the function processes)."""

    emulator_s: float
    functions_s: float

    @classmethod
    def read(cls, emulator: RunningEmulator) -> CpuSplit:
        """Now; zero when the emulator is not a local process (``LAMBDAMESH_ENDPOINT``)."""
        if emulator.pid is None:
            return cls(0.0, 0.0)
        runtime = psutil.Process(emulator.pid)
        functions = 0.0
        for child in runtime.children(recursive=True):
            try:
                times = child.cpu_times()
            except psutil.NoSuchProcess:
                continue
            functions += times.user + times.system
        own = runtime.cpu_times()
        return cls(own.user + own.system, functions)


def run_saga(emulator: RunningEmulator, system: DeployedSystem) -> tuple[float, float]:
    """Post ``ORDERS`` orders, wait for them all to be confirmed; print figures.

    Returns orders/s and the machine's CPU seconds per order (LocalStack and function
    processes; function processes that exited during the run are not counted).
    """
    dynamodb = emulator.client("dynamodb")
    orders_table = system["orders"].outputs["OrdersTableName"]
    restock(dynamodb, system["inventory"].outputs["StockTableName"], [PRODUCT], ORDERS + 1)
    user_id = new_user_id(system)
    url = system["orders"].url("orders")
    # One order through the whole saga first, so that every consumer has a warm container.
    warm = post_order(url, user_id)
    confirmed_at(dynamodb, orders_table, [warm.order_id])

    own_polls = _count_calls(dynamodb, "BatchGetItem")
    _reset_request_counts(emulator)
    cpu_before = CpuSplit.read(emulator)
    started = time.time()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        placed = list(pool.map(lambda _: post_order(url, user_id), range(ORDERS)))
    posted = time.time()
    seen = confirmed_at(dynamodb, orders_table, [order.order_id for order in placed])
    cpu_after = CpuSplit.read(emulator)
    requests = _request_counts(emulator)
    wall = max(seen.values()) - started
    rate = ORDERS / wall
    post_ms = [order.post_s * 1000 for order in placed]
    to_confirmed = [seen[order.order_id] - order.created_at for order in placed]
    print(f"\nsaga: {ORDERS} orders, POST from {THREADS} threads, then polled until confirmed")
    retried = sum(1 for order in placed if order.unavailable)
    print(f"  posting took          {posted - started:8.1f} s")
    print(
        f"  503/409 answers       {sum(order.unavailable for order in placed)}"
        f" (on {retried} orders, retried after Retry-After under the same key)"
    )
    print(f"  wall time             {wall:8.1f} s   ({rate:.1f} orders/s)")
    print(
        f"  POST latency          p50 {percentile(post_ms, 0.5):7.0f} ms"
        f"   p90 {percentile(post_ms, 0.9):7.0f} ms"
    )
    print(
        f"  placed -> confirmed   p50 {percentile(to_confirmed, 0.5):7.2f} s"
        f"    p90 {percentile(to_confirmed, 0.9):7.2f} s"
        f"   (poll resolution {POLL_INTERVAL_S} s)"
    )
    emulator_ms = (cpu_after.emulator_s - cpu_before.emulator_s) / ORDERS * 1000
    functions_ms = (cpu_after.functions_s - cpu_before.functions_s) / ORDERS * 1000
    if emulator.pid is not None:
        print(
            f"  CPU per order         LocalStack {emulator_ms:5.0f} ms"
            f"   function processes {functions_ms:5.0f} ms"
            "   (from the first POST to the last order seen confirmed)"
        )
    if requests is not None:
        _print_requests_per_order(requests, own_batch_gets=len(own_polls))
    return rate, (emulator_ms + functions_ms) / 1000


REQUEST_COUNTS_PATH = "/_lambdamesh/requests"
"""The embedded emulator's request counts (``lambdamesh_localstack.request_counts``)."""
TARGET_REQUESTS_PER_ORDER = 25


def _count_calls(client: Any, operation: str) -> list[float]:
    """A list that grows by one for every ``operation`` this client sends (the benchmark's own
    requests, left out of the system's)."""
    calls: list[float] = []
    client.meta.events.register(
        f"before-call.{client.meta.service_model.service_name}.{operation}",
        lambda **_: calls.append(time.time()),
    )
    return calls


def _reset_request_counts(emulator: RunningEmulator) -> None:
    _http.request("DELETE", f"{emulator.endpoint_url}{REQUEST_COUNTS_PATH}")


def _request_counts(emulator: RunningEmulator) -> list[dict[str, Any]] | None:
    """The emulator's counts, or ``None`` when it does not count (not the embedded one)."""
    answer = _http.request("GET", f"{emulator.endpoint_url}{REQUEST_COUNTS_PATH}")
    if answer.status != 200:
        return None
    counts: list[dict[str, Any]] = json.loads(answer.data)["requests"]
    return counts


def _print_requests_per_order(counts: list[dict[str, Any]], *, own_batch_gets: int) -> None:
    """Requests per order, by service and by operation, from the functions and from the
    emulator itself (the benchmark's own polling taken out)."""
    rows = []
    for row in counts:
        count = row["count"]
        if (row["service"], row["operation"], row["internal"]) == (
            "dynamodb",
            "BatchGetItem",
            False,
        ):
            count -= own_batch_gets
        if count > 0:
            rows.append({**row, "count": count})
    total = sum(row["count"] for row in rows) / ORDERS
    verdict = "meets" if total <= TARGET_REQUESTS_PER_ORDER else "misses"
    print(
        f"  requests per order    {total:5.1f}   ({verdict} the target of "
        f"{TARGET_REQUESTS_PER_ORDER}; API Gateway's own not counted)"
    )
    by_service: dict[tuple[str, bool], int] = {}
    for row in rows:
        key = (row["service"], row["internal"])
        by_service[key] = by_service.get(key, 0) + row["count"]
    for (service, internal), count in sorted(by_service.items(), key=lambda item: -item[1]):
        origin = "by the emulator" if internal else "by the functions"
        print(f"    {service:<16} {count / ORDERS:5.1f}   {origin}")
    print("    busiest operations:")
    for row in sorted(rows, key=lambda row: -row["count"])[:12]:
        origin = "emulator" if row["internal"] else "functions"
        name = f"{row['service']}.{row['operation']}"
        print(f"      {name:<34} {row['count'] / ORDERS:5.1f}   ({origin})")


@dataclass(frozen=True)
class Pipeline:
    """The floor's topic, queue and mapped no-op function."""

    topic_arn: str
    queue_url: str


@pytest.fixture(scope="module")
def pipeline(emulator: RunningEmulator) -> Iterator[Pipeline]:
    """A bare SNS → SQS → no-op Lambda pipeline (batch size 10), removed afterwards."""
    sns, sqs, lambda_client = (emulator.client(name) for name in ("sns", "sqs", "lambda"))
    name = unique_name("bench-saga-floor")
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    queue_arn = subscribe_raw(sns, sqs, topic_arn, queue_url)
    function_name = create_function(lambda_client, NOOP, name=name)
    mapping = lambda_client.create_event_source_mapping(
        FunctionName=function_name,
        EventSourceArn=queue_arn,
        BatchSize=10,
        MaximumBatchingWindowInSeconds=0,
    )["UUID"]
    try:
        wait_until(
            lambda: (
                lambda_client.get_event_source_mapping(UUID=mapping)["State"] == "Enabled" or None
            )
        )
        yield Pipeline(topic_arn, queue_url)
    finally:
        lambda_client.delete_event_source_mapping(UUID=mapping)
        lambda_client.delete_function(FunctionName=function_name)
        sqs.delete_queue(QueueUrl=queue_url)
        sns.delete_topic(TopicArn=topic_arn)


def drain(sqs: Any, pipeline: Pipeline) -> float:
    """Wait until the queue holds no message, visible or in flight; the time it was seen so.

    Called once every ``Publish`` has returned: SNS has put them all in the queue by then.
    """
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]

    def queue_empty() -> float | None:
        attributes = sqs.get_queue_attributes(QueueUrl=pipeline.queue_url, AttributeNames=names)
        if any(int(attributes["Attributes"][name]) for name in names):
            return None
        return time.time()

    return wait_until(queue_empty, timeout_s=SAGA_TIMEOUT_S, interval_s=0.05)


def run_floor(emulator: RunningEmulator, pipeline: Pipeline) -> float:
    """Push ``ORDERS * HOPS_PER_ORDER`` messages through the floor; print; orders/s."""
    sns, sqs = emulator.client("sns"), emulator.client("sqs")

    def publish(index: int) -> None:
        sns.publish(TopicArn=pipeline.topic_arn, Message=json.dumps({"n": index}))

    # Warm: one batch through, so the function's container is up.
    for index in range(10):
        publish(index)
    drain(sqs, pipeline)
    messages = ORDERS * HOPS_PER_ORDER
    started = time.time()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        list(pool.map(publish, range(messages)))
    published = time.time()
    finished = drain(sqs, pipeline)
    wall = finished - started
    rate = ORDERS / wall
    print(
        f"floor: {messages} messages ({ORDERS} orders x {HOPS_PER_ORDER} hops) through"
        " SNS -> SQS -> no-op Lambda (batch 10)"
    )
    print(f"  publishing took       {published - started:8.1f} s")
    print(
        f"  wall time             {wall:8.1f} s   ({messages / wall:.0f} messages/s,"
        f" {rate:.1f} orders/s)"
    )
    return rate


def test_saga_orders_per_second_beside_the_bare_messaging_floor(
    emulator: RunningEmulator, system: DeployedSystem, pipeline: Pipeline
) -> None:
    # GIVEN every service deployed and a bare SNS -> SQS -> no-op Lambda pipeline
    # WHEN 500 orders go through the saga, and 500 orders' worth of hops through the floor
    saga_rate, cpu_per_order_s = run_saga(emulator, system)
    floor_rate = run_floor(emulator, pipeline)
    # THEN the figures are printed (never asserted: the machine is noisy)
    ratio = saga_rate / floor_rate
    verdict = "meets" if ratio >= TARGET_RATIO else "misses"
    print(f"saga / floor: {ratio:.2f} ({verdict} the target of {TARGET_RATIO})")
    if cpu_per_order_s:
        # What the target allows an order to cost, if every core of the machine did nothing else.
        cores = os.cpu_count() or 1
        budget_ms = cores / (TARGET_RATIO * floor_rate) * 1000
        print(
            f"  at the target an order may cost this {cores}-core machine at most"
            f" {budget_ms:.0f} ms of CPU; it cost {cpu_per_order_s * 1000:.0f} ms"
        )
