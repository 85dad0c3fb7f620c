"""Benchmark: orders through the whole order saga, beside an order-shaped floor.

**The saga.** ``ORDERS`` orders (one pack of paper filters each, from one user) are posted to
``POST /orders`` from a pool of ``THREADS`` threads (each with an ``Idempotency-Key``, a 503 or
409 retried after its ``Retry-After``, as a client would); then the orders table is polled
(``BatchGetItem``, consistent, every ``POLL_INTERVAL_S``) until every order is confirmed. The
inventory's stock of paper filters is topped up by ``ORDERS + THREADS`` units first (the extra
ones for the warm-up orders); the orders take exactly those units again.

**The floor** (:mod:`tests.benchmarks.order_floor`), built on the same emulator and measured in
the same run: no-op functions wired with the hops an order makes (API Gateway → function →
HTTP through API Gateway → function, an RPC, a DynamoDB stream → SNS FIFO → three SQS FIFO
queues → functions, outcomes back through their topics and a queue, a mail through SES), with
the real templates' settings. Its orders are done when they are marked mailed; its state table
is polled the same way.

Both are measured the same way (:func:`measure`): a warm-up round first, ``THREADS`` orders
posted at once and waited for until done, so that the measured orders find the execution
environments their clients keep busy already started (a steady state: the cost of a burst of
cold starts is what ``lambdamesh load``'s cold phase measures); then ``ORDERS`` orders from
``THREADS`` threads, timed
from the first POST to the poll that saw the last order done. Printed for each: orders/s,
p50/p99 of the POST latency, p50/p90 of placed → done per order (the order's ``created_at`` to
the poll that first saw it done: the resolution is the poll interval), the CPU per order of
LocalStack and of its function processes (embedded emulator only; cold starts of new execution
environments included, processes that exited meanwhile not), and the AWS requests per order the
emulator served (its ``/_lambdamesh/requests`` counts: the functions' and its own, such as an
event source mapping's ``ReceiveMessage`` and ``Invoke``; the benchmark's own polling taken
out; API Gateway's requests are not AWS operations and are not counted) by service and by
operation, beside the target of 25. Then the saga as ratios to the floor: throughput (target
≥ 0.6) and POST p50 (target ≤ 1.5), each with whether it meets the target, and what an order
may cost the machine's CPU at the throughput target.

``LAMBDAMESH_BENCH_ORDERS`` changes ``ORDERS``.

Figures are printed, never asserted. Run with ``-s``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil
import pytest
import urllib3

from lambdamesh.chaos.observation import restock
from tests.benchmarks.figures import OrdersRun, comparison_lines, run_lines, system_requests
from tests.benchmarks.order_floor import DONE_ATTRIBUTE, OrderFloor, order_floor
from tests.conftest import RunningEmulator
from tests.e2e.conftest import DeployedSystem, deploy_system

ORDERS = int(os.environ.get("LAMBDAMESH_BENCH_ORDERS", "500"))
THREADS = 8
POLL_INTERVAL_S = 0.25
PRODUCT = "p-paper-filters"
SAGA_TIMEOUT_S = 900.0
"""Bound on waiting for every order (not a performance assertion)."""
MAX_POST_ATTEMPTS = 20
REQUEST_COUNTS_PATH = "/_lambdamesh/requests"
"""The embedded emulator's request counts (``lambdamesh_localstack.request_counts``)."""

_http = urllib3.PoolManager(maxsize=THREADS, retries=False)
_TIMEOUT = urllib3.Timeout(connect=2.0, read=60.0)


@pytest.fixture(scope="module")
def system(emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> DeployedSystem:
    """Every service deployed (reused as is when the stacks are current)."""
    return deploy_system(emulator, tmp_path_factory.mktemp("bench-saga-deploy"))


@pytest.fixture(scope="module")
def floor(emulator: RunningEmulator) -> Iterator[OrderFloor]:
    """The order-shaped floor, removed afterwards."""
    with order_floor(emulator) as built:
        yield built


@dataclass(frozen=True)
class Placed:
    """One posted order: its id, when it was created, the POST's latency, 503s it met."""

    order_id: str
    created_at: float
    post_s: float
    unavailable: int


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


@dataclass(frozen=True)
class Done:
    """Where an order's end shows: an attribute of its item (keyed ``id``) in a table.

    Attributes
    ----------
    table
        The table polled.
    attribute
        The attribute read (a string).
    reached
        Given the attribute's value, whether the order is done; it may fail the benchmark
        (an order cancelled).
    label
        What done means, for the printout (``confirmed``, ``mailed``).
    """

    table: str
    attribute: str
    reached: Callable[[str], bool]
    label: str


def _confirmed(status: str) -> bool:
    assert status != "cancelled", "an order was cancelled"
    return status == "confirmed"


def seen_done(dynamodb: Any, done: Done, order_ids: list[str]) -> dict[str, float]:
    """Poll until every order is done; when each was first seen so (epoch seconds)."""
    seen: dict[str, float] = {}
    pending = list(order_ids)
    deadline = time.monotonic() + SAGA_TIMEOUT_S
    while pending:
        assert time.monotonic() < deadline, f"{len(pending)} orders still not {done.label}"
        for start in range(0, len(pending), 100):
            keys = [{"id": {"S": order_id}} for order_id in pending[start : start + 100]]
            request: dict[str, Any] = {
                done.table: {
                    "Keys": keys,
                    "ConsistentRead": True,
                    "ProjectionExpression": "#id, #done",
                    "ExpressionAttributeNames": {"#id": "id", "#done": done.attribute},
                }
            }
            while request:
                answer = dynamodb.batch_get_item(RequestItems=request)
                now = time.time()
                for item in answer["Responses"].get(done.table, []):
                    value = item.get(done.attribute, {}).get("S")
                    if value is not None and done.reached(value):
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


def measure(emulator: RunningEmulator, url: str, user_id: str, done: Done) -> OrdersRun:
    """A warm-up round of ``THREADS`` orders at once, then ``ORDERS`` orders from ``THREADS``
    threads until all are done.

    The CPU and the request counts cover the measured orders, from the first POST to the poll
    that saw the last one done; the benchmark's own ``BatchGetItem`` polls are taken out.
    """
    dynamodb = emulator.client("dynamodb")
    own_polls = _count_calls(dynamodb, "BatchGetItem")
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        warm = list(pool.map(lambda _: post_order(url, user_id), range(THREADS)))
    seen_done(dynamodb, done, [order.order_id for order in warm])

    polls_before = len(own_polls)
    _reset_request_counts(emulator)
    cpu_before = CpuSplit.read(emulator)
    started = time.time()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        placed = list(pool.map(lambda _: post_order(url, user_id), range(ORDERS)))
    posted = time.time()
    seen = seen_done(dynamodb, done, [order.order_id for order in placed])
    cpu_after = CpuSplit.read(emulator)
    counts = _request_counts(emulator)
    own = {("dynamodb", "BatchGetItem"): len(own_polls) - polls_before}
    return OrdersRun(
        orders=ORDERS,
        threads=THREADS,
        terminal=done.label,
        posting_s=posted - started,
        wall_s=max(seen.values()) - started,
        post_ms=tuple(order.post_s * 1000 for order in placed),
        to_terminal_s=tuple(seen[order.order_id] - order.created_at for order in placed),
        retried_answers=sum(order.unavailable for order in placed),
        retried_orders=sum(1 for order in placed if order.unavailable),
        cpu_ms=None
        if emulator.pid is None
        else (
            (cpu_after.emulator_s - cpu_before.emulator_s) / ORDERS * 1000,
            (cpu_after.functions_s - cpu_before.functions_s) / ORDERS * 1000,
        ),
        requests=None if counts is None else tuple(system_requests(counts, own)),
    )


def run_saga(emulator: RunningEmulator, system: DeployedSystem) -> OrdersRun:
    """The deployed system's orders, each done when the orders table says it is confirmed."""
    dynamodb = emulator.client("dynamodb")
    restock(dynamodb, system["inventory"].outputs["StockTableName"], [PRODUCT], ORDERS + THREADS)
    confirmed = Done(system["orders"].outputs["OrdersTableName"], "status", _confirmed, "confirmed")
    return measure(emulator, system["orders"].url("orders"), new_user_id(system), confirmed)


def run_floor(emulator: RunningEmulator, floor: OrderFloor) -> OrdersRun:
    """The floor's orders, each done when its mail is sent."""
    mailed = Done(floor.state_table, DONE_ATTRIBUTE, lambda _: True, DONE_ATTRIBUTE)
    return measure(emulator, floor.orders_url, "floor-user", mailed)


@pytest.mark.timeout(1800)
def test_saga_beside_the_order_shaped_floor(
    emulator: RunningEmulator, system: DeployedSystem, floor: OrderFloor
) -> None:
    # GIVEN every service deployed, and the order-shaped floor beside it on the same emulator
    # WHEN the same number of orders goes through the saga, then through the floor
    saga = run_saga(emulator, system)
    print()
    print("\n".join(run_lines("saga", saga, POLL_INTERVAL_S)))
    floor_run = run_floor(emulator, floor)
    print("\n".join(run_lines("order-shaped floor", floor_run, POLL_INTERVAL_S)))
    # THEN the figures and the ratios are printed (never asserted: the machine is noisy)
    print("\n".join(comparison_lines(saga, floor_run, cores=os.cpu_count() or 1)))
