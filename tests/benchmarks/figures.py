"""The figures a benchmark prints, computed and worded without any I/O.

A run of orders through a system (:class:`OrdersRun`) is worded by :func:`run_lines`; two runs,
the real system's and its floor's, are compared by :func:`comparison_lines`; the emulator's
request counts become requests per order with :func:`system_requests` and
:func:`requests_lines`. Nothing here asserts: figures are printed, never a pass or fail.

>>> percentile([30.0, 10.0, 20.0, 40.0], 0.5)
20.0
>>> verdict(True), verdict(False)
('meets', 'misses')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TARGET_THROUGHPUT_RATIO = 0.6
"""Saga throughput is to be at least this share of the order-shaped floor's."""
TARGET_POST_P50_RATIO = 1.5
"""``POST /orders`` p50 is to be at most this multiple of the floor's."""
TARGET_REQUESTS_PER_ORDER = 25
"""AWS requests an order's functions are to make at most. The event sources' own requests (a
mapping's ``ReceiveMessage``, ``DeleteMessageBatch`` and ``Invoke``, SNS delivering to SQS, a
stream's ``GetRecords``) are the hops' cost, which the order-shaped floor pays alike: they are
printed beside it, not held to this target."""


def percentile(samples: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ``samples`` (``fraction`` in ``(0, 1]``).

    >>> percentile(list(range(1, 101)), 0.99)
    99
    >>> percentile([5.0], 0.5)
    5.0
    """
    ordered = sorted(samples)
    # The smallest rank that covers the fraction: ceil(fraction * n), kept from rounding up
    # a product that floating point made a hair larger than a whole number.
    rank = max(1, math.ceil(fraction * len(ordered) - 1e-9))
    return ordered[min(len(ordered), rank) - 1]


def verdict(met: bool) -> str:
    """``meets`` or ``misses``, as every target line says it."""
    return "meets" if met else "misses"


@dataclass(frozen=True)
class RequestRow:
    """AWS requests counted by the emulator for one operation, from one origin.

    Attributes
    ----------
    service, operation
        ``dynamodb``, ``BatchGetItem``.
    internal
        Whether the emulator sent it to itself (an event source mapping's ``ReceiveMessage``,
        SNS delivering to SQS) rather than a function.
    count
        How many.
    """

    service: str
    operation: str
    internal: bool
    count: int


def system_requests(
    counts: Sequence[Mapping[str, Any]], own: Mapping[tuple[str, str], int]
) -> list[RequestRow]:
    """The emulator's counts (``/_lambdamesh/requests``) without the benchmark's own requests.

    Parameters
    ----------
    counts
        ``{"service", "operation", "internal", "count"}`` rows as the emulator serves them.
    own
        ``(service, operation)`` → how many of those the benchmark itself sent (they arrive
        as external requests); taken out of the external rows.

    >>> rows = system_requests(
    ...     [{"service": "dynamodb", "operation": "BatchGetItem", "internal": False, "count": 7},
    ...      {"service": "sqs", "operation": "ReceiveMessage", "internal": True, "count": 3}],
    ...     own={("dynamodb", "BatchGetItem"): 7},
    ... )
    >>> [(row.service, row.operation, row.count) for row in rows]
    [('sqs', 'ReceiveMessage', 3)]
    """
    rows = []
    for row in counts:
        count = int(row["count"])
        if not row["internal"]:
            count -= own.get((row["service"], row["operation"]), 0)
        if count > 0:
            rows.append(RequestRow(row["service"], row["operation"], bool(row["internal"]), count))
    return rows


def requests_per_order(rows: Sequence[RequestRow], orders: int) -> float:
    """Every request of ``rows`` divided by ``orders``."""
    return sum(row.count for row in rows) / orders


def requests_lines(rows: Sequence[RequestRow], orders: int) -> list[str]:
    """Requests per order, by service and origin, and the busiest operations.

    >>> rows = [RequestRow("dynamodb", "PutItem", False, 40),
    ...         RequestRow("sqs", "ReceiveMessage", True, 60)]
    >>> print("\\n".join(requests_lines(rows, 10)))
      requests per order     10.0   (API Gateway's own not counted)
        by the functions      4.0   (meets the target of 25)
        by the event sources  6.0   (the hops' own)
        sqs                6.0   by the emulator
        dynamodb           4.0   by the functions
        busiest operations:
          sqs.ReceiveMessage                   6.0   (emulator)
          dynamodb.PutItem                     4.0   (functions)
    """
    total = requests_per_order(rows, orders)
    functions = requests_per_order([row for row in rows if not row.internal], orders)
    lines = [
        f"  requests per order    {total:5.1f}   (API Gateway's own not counted)",
        f"    by the functions    {functions:5.1f}   "
        f"({verdict(functions <= TARGET_REQUESTS_PER_ORDER)} the target of "
        f"{TARGET_REQUESTS_PER_ORDER})",
        f"    by the event sources {total - functions:4.1f}   (the hops' own)",
    ]
    by_service: dict[tuple[str, bool], int] = {}
    for row in rows:
        key = (row.service, row.internal)
        by_service[key] = by_service.get(key, 0) + row.count
    for (service, internal), count in sorted(by_service.items(), key=lambda item: -item[1]):
        origin = "by the emulator" if internal else "by the functions"
        lines.append(f"    {service:<16} {count / orders:5.1f}   {origin}")
    lines.append("    busiest operations:")
    for row in sorted(rows, key=lambda row: -row.count)[:12]:
        origin = "emulator" if row.internal else "functions"
        name = f"{row.service}.{row.operation}"
        lines.append(f"      {name:<34} {row.count / orders:5.1f}   ({origin})")
    return lines


@dataclass(frozen=True)
class OrdersRun:
    """What one system did with the benchmark's orders.

    Attributes
    ----------
    orders
        Orders posted (the warm-up order not among them).
    threads
        Client threads that posted them.
    terminal
        What an order's end is (``confirmed``, ``mailed``).
    posting_s
        From the first POST until the last one answered.
    wall_s
        From the first POST until the last order was seen at its end.
    post_ms
        Each order's POST latency, as its client saw it (retries included).
    to_terminal_s
        Each order's time from its ``created_at`` to the poll that first saw it at its end.
    retried_answers, retried_orders
        503 and 409 answers retried, and how many orders met one.
    cpu_ms
        LocalStack's and its function processes' CPU per order; ``None`` when the emulator is
        not a local process.
    requests
        The emulator's requests in the run, the benchmark's own taken out; ``None`` when the
        emulator does not count them.
    """

    orders: int
    threads: int
    terminal: str
    posting_s: float
    wall_s: float
    post_ms: tuple[float, ...]
    to_terminal_s: tuple[float, ...]
    retried_answers: int = 0
    retried_orders: int = 0
    cpu_ms: tuple[float, float] | None = None
    requests: tuple[RequestRow, ...] | None = None

    @property
    def rate(self) -> float:
        """Orders per second."""
        return self.orders / self.wall_s

    @property
    def post_p50_ms(self) -> float:
        """The median POST latency."""
        return percentile(self.post_ms, 0.5)

    @property
    def cpu_per_order_s(self) -> float | None:
        """The machine's CPU seconds per order (LocalStack and function processes)."""
        return None if self.cpu_ms is None else sum(self.cpu_ms) / 1000


def run_lines(label: str, run: OrdersRun, poll_interval_s: float) -> list[str]:
    """The figures of one run, headed by ``label``.

    >>> run = OrdersRun(4, 2, "mailed", 0.5, 2.0, (10.0, 20.0, 30.0, 40.0), (1.0, 1.0, 2.0, 3.0))
    >>> print("\\n".join(run_lines("floor", run, 0.25)))
    floor: 4 orders, POST from 2 threads, then polled until mailed
      posting took               0.5 s
      wall time                  2.0 s   (2.0 orders/s)
      POST latency          p50      20 ms   p99      40 ms
      placed -> mailed      p50    1.00 s    p90    3.00 s   (poll resolution 0.25 s)
    """
    lines = [
        f"{label}: {run.orders} orders, POST from {run.threads} threads,"
        f" then polled until {run.terminal}",
        f"  posting took          {run.posting_s:8.1f} s",
    ]
    if run.retried_answers:
        lines.append(
            f"  503/409 answers       {run.retried_answers} (on {run.retried_orders} orders,"
            " retried after Retry-After under the same key)"
        )
    lines += [
        f"  wall time             {run.wall_s:8.1f} s   ({run.rate:.1f} orders/s)",
        f"  POST latency          p50 {run.post_p50_ms:7.0f} ms"
        f"   p99 {percentile(run.post_ms, 0.99):7.0f} ms",
        f"  {'placed -> ' + run.terminal:<21} p50 {percentile(run.to_terminal_s, 0.5):7.2f} s"
        f"    p90 {percentile(run.to_terminal_s, 0.9):7.2f} s"
        f"   (poll resolution {poll_interval_s} s)",
    ]
    if run.cpu_ms is not None:
        emulator_ms, functions_ms = run.cpu_ms
        lines.append(
            f"  CPU per order         LocalStack {emulator_ms:5.0f} ms"
            f"   function processes {functions_ms:5.0f} ms"
            f"   (from the first POST to the last order seen {run.terminal})"
        )
    if run.requests is not None:
        lines += requests_lines(run.requests, run.orders)
    return lines


def comparison_lines(saga: OrdersRun, floor: OrdersRun, cores: int) -> list[str]:
    """The saga's throughput and POST p50 as ratios to the floor's, each against its target.

    ``cores`` sizes the CPU budget an order has at the throughput target.

    >>> saga = OrdersRun(10, 8, "confirmed", 1.0, 5.0, (300.0,), (1.0,), cpu_ms=(150.0, 90.0))
    >>> floor = OrdersRun(10, 8, "mailed", 1.0, 2.0, (100.0,), (1.0,))
    >>> print("\\n".join(comparison_lines(saga, floor, cores=2)))
    saga / floor throughput   0.40   (misses the target of >= 0.6)
    POST p50 saga / floor     3.00   (misses the target of <= 1.5)
      at the target an order may cost this 2-core machine at most 667 ms of CPU; it cost 240 ms
    """
    throughput = saga.rate / floor.rate
    post = saga.post_p50_ms / floor.post_p50_ms
    lines = [
        f"saga / floor throughput {throughput:6.2f}   "
        f"({verdict(throughput >= TARGET_THROUGHPUT_RATIO)} the target of "
        f">= {TARGET_THROUGHPUT_RATIO})",
        f"POST p50 saga / floor   {post:6.2f}   "
        f"({verdict(post <= TARGET_POST_P50_RATIO)} the target of <= {TARGET_POST_P50_RATIO})",
    ]
    cost_s = saga.cpu_per_order_s
    if cost_s is not None:
        # What the target allows an order to cost, if every core of the machine did nothing else.
        budget_ms = cores / (TARGET_THROUGHPUT_RATIO * floor.rate) * 1000
        lines.append(
            f"  at the target an order may cost this {cores}-core machine at most"
            f" {budget_ms:.0f} ms of CPU; it cost {cost_s * 1000:.0f} ms"
        )
    return lines
