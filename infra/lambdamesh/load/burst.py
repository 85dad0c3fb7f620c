"""Clients placing orders all at once, each answer timed and kept as it came.

Each client is a thread with its own user; all start together (a barrier) and each places its
orders one after another, as a person clicking "buy" again as soon as the page answers. Every
order is one ``POST /orders`` with an ``Idempotency-Key`` of its own and is never retried: the
answer it got is what the run reports (a ``503`` is an error here, where the chaos run's
shoppers would retry it), so "no errors" means that no order was refused, not that every order
got through in the end.

Why not locust: these are the chaos run's HTTP pieces (:class:`lambdamesh.chaos.shoppers.Shop`:
sign-up, catalog, one JSON request through a shared urllib3 pool) driven by threads. Locust would
bring gevent, whose monkey-patching must precede every other import of the process (boto3's
included, which this command needs to deploy and to make functions cold), and its model (users
spawned at a rate, for a duration) fits "N clients place M orders each, then wait until every
order is decided" less well than a thread per client. Its statistics are what
:mod:`lambdamesh.load.stats` computes: throughput, percentiles, errors by status.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import urllib3

from lambdamesh.chaos.shoppers import Shop

TIMEOUT = "timeout"
"""The outcome of a request that got no answer in time (the pool's read timeout)."""
CONNECTION_ERROR = "connection error"
"""The outcome of a request whose connection failed (refused, reset, closed early)."""
START_TIMEOUT_S = 60.0
"""The longest the clients wait for one another at the start line."""

Lines = tuple[tuple[str, int], ...]
"""An order's lines: ``(product id, quantity)``."""


@dataclass(frozen=True)
class ClientPlan:
    """What one client orders: its user, and the lines of each of its orders, in turn."""

    user_id: str
    baskets: tuple[Lines, ...]


@dataclass(frozen=True)
class PostResult:
    """One ``POST /orders``.

    Attributes
    ----------
    key
        Its ``Idempotency-Key`` (also its correlation id).
    started
        When it was sent (epoch seconds).
    elapsed_s
        Until its answer, or until it failed.
    status
        The HTTP status; ``None`` when no answer came.
    order_id
        The order's id, when it was accepted.
    failure
        :data:`TIMEOUT` or :data:`CONNECTION_ERROR` when no answer came.
    """

    key: str
    started: float
    elapsed_s: float
    status: int | None
    order_id: str | None = None
    failure: str | None = None

    @property
    def accepted(self) -> bool:
        """Whether the order was accepted (``201`` with its id)."""
        return self.status == 201 and self.order_id is not None

    @property
    def outcome(self) -> str:
        """The status as text, or what happened instead of one.

        >>> PostResult("k", 0.0, 1.0, 503).outcome
        '503'
        >>> PostResult("k", 0.0, 1.0, None, failure=TIMEOUT).outcome
        'timeout'
        >>> PostResult("k", 0.0, 1.0, 201).outcome
        '201 without an order id'
        """
        if self.status is None:
            return self.failure or CONNECTION_ERROR
        if self.status == 201 and self.order_id is None:
            return "201 without an order id"
        return str(self.status)

    @property
    def answered(self) -> float:
        """When its answer came (epoch seconds)."""
        return self.started + self.elapsed_s


def post_order(
    shop: Shop,
    key: str,
    user_id: str,
    lines: Lines,
    *,
    clock: Callable[[], float] = time.time,
    timer: Callable[[], float] = time.perf_counter,
) -> PostResult:
    """Place one order, once; what came back and how long it took.

    Parameters
    ----------
    shop
        The APIs (``shop.request`` sends the request).
    key
        The order's ``Idempotency-Key`` and correlation id.
    user_id, lines
        Who orders what.
    clock, timer
        Wall clock and interval timer (tests pass their own).
    """
    body = {"user_id": user_id, "items": [{"product_id": p, "quantity": q} for p, q in lines]}
    headers = {"Idempotency-Key": key, "X-Correlation-Id": key}
    started, begun = clock(), timer()
    try:
        status, answer, _ = shop.request("POST", f"{shop.orders_url}/orders", body, headers)
    except urllib3.exceptions.ReadTimeoutError:
        return PostResult(key, started, timer() - begun, None, failure=TIMEOUT)
    except urllib3.exceptions.HTTPError:
        return PostResult(key, started, timer() - begun, None, failure=CONNECTION_ERROR)
    elapsed = timer() - begun
    order_id = answer.get("id") if status == 201 and isinstance(answer, dict) else None
    return PostResult(key, started, elapsed, status, str(order_id) if order_id else None)


def place_burst(shop: Shop, clients: Sequence[ClientPlan], phase: str) -> list[PostResult]:
    """Every client's orders, the clients all at once; every answer, in no particular order.

    Parameters
    ----------
    shop
        The APIs; its pool keeps a connection per client.
    clients
        One plan per client.
    phase
        Part of each order's key: ``<run id>-<phase>-<client>-<order>``.
    """
    start_line = threading.Barrier(len(clients))

    def client(index: int) -> list[PostResult]:
        plan = clients[index]
        start_line.wait(timeout=START_TIMEOUT_S)
        return [
            post_order(shop, f"{shop.run_id}-{phase}-{index}-{n}", plan.user_id, lines)
            for n, lines in enumerate(plan.baskets)
        ]

    with ThreadPoolExecutor(len(clients)) as pool:
        answers = list(pool.map(client, range(len(clients))))
    return [result for results in answers for result in results]
