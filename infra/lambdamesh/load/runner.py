"""A load run from start to finish.

1. Wait until the system is quiet, sign one user up per client, restock every product with
   enough units for both phases (so that orders are not cancelled for want of stock), and wait
   until that, too, has gone through.
2. Make every deployed function cold (:mod:`.coldstart`).
3. **Cold**: every client places its orders, all clients at once (:mod:`.burst`); then wait until
   the queues are quiet and every accepted order is decided, and read when each was decided.
4. **Warm**: the same again at once, on the execution environments the cold phase started.

Orders are read only once the queues have stayed empty for a few seconds (the chaos run's
:func:`~lambdamesh.chaos.observation.wait_until_quiet`), so that waiting does not add load to
what is measured; each decision's time is the time of its ``order.confirmed`` or
``order.cancelled`` event, read from ``GET /orders/{id}/events``.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from lambdamesh.chaos import observation
from lambdamesh.chaos.runner import QUIET_TIMEOUT_S, functions_of
from lambdamesh.chaos.shoppers import Product, Shop, basket
from lambdamesh.deploy import DeployReport, Target
from lambdamesh.deploy.stacks import existing_stack_outputs

from .burst import ClientPlan, Lines, PostResult, place_burst
from .coldstart import make_cold
from .report import LoadReport
from .stats import Decision, PhaseFigures, summarise

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

Say = Callable[[str], None]

PHASES = ("cold", "warm")
DECISION_EVENTS = frozenset({"order.confirmed", "order.cancelled"})
"""The events that decide an order."""
UNITS_PER_LINE = 2
"""The most units of one product an order asks for (:func:`~lambdamesh.chaos.shoppers.basket`)."""


@dataclass(frozen=True)
class LoadPlan:
    """The size of a run.

    Attributes
    ----------
    clients
        Clients placing orders at once.
    orders_per_client
        Orders each client places in each phase.
    decided_timeout_s
        The longest a phase waits for its orders to be decided.
    seed
        Seed of the baskets (``None``: random).
    """

    clients: int = 16
    orders_per_client: int = 10
    decided_timeout_s: float = QUIET_TIMEOUT_S
    seed: int | None = None

    @property
    def orders_per_phase(self) -> int:
        """Orders placed in each phase."""
        return self.clients * self.orders_per_client


def run_load(
    target: Target,
    report: DeployReport,
    plan: LoadPlan,
    *,
    prefix: str = "lambdamesh",
    say: Say = print,
) -> LoadReport:
    """Run ``plan`` against the system ``report`` describes; each phase's figures."""
    run_id = f"load-{uuid.uuid4().hex[:8]}"
    rng = random.Random(plan.seed)  # noqa: S311 - baskets, not secrets
    sqs, dynamodb = target.client("sqs"), target.client("dynamodb")
    stock_table = existing_stack_outputs(
        target.client("cloudformation"), report.service("inventory").stack
    )["StockTableName"]
    shop = Shop.of(report, run_id, plan.clients)
    say("==> waiting for the system to be quiet")
    observation.wait_until_quiet(sqs, prefix, timeout_s=QUIET_TIMEOUT_S, progress=say)
    say(f"==> signing up {plan.clients} users, restocking every product")
    users = shop.sign_up(plan.clients)
    products = shop.products()
    units = UNITS_PER_LINE * plan.orders_per_phase * len(PHASES)
    observation.restock(dynamodb, stock_table, [product.id for product in products], units)
    observation.wait_until_quiet(sqs, prefix, timeout_s=QUIET_TIMEOUT_S, progress=say)
    functions = functions_of(report)
    say(f"==> making every function cold ({len(functions)} functions)")
    generation = make_cold(target.client("lambda"), functions, say)
    load = LoadReport(run_id, plan.clients, plan.orders_per_client, len(functions), generation)
    for phase in PHASES:
        clients = [
            ClientPlan(user, _baskets(rng, products, plan.orders_per_client)) for user in users
        ]
        say(f"==> {phase}: {plan.orders_per_phase} orders, {plan.clients} clients at once")
        load.phases.append(_phase(phase, shop, clients, sqs, prefix, plan, say))
    return load


def _baskets(rng: random.Random, products: Sequence[Product], count: int) -> tuple[Lines, ...]:
    """``count`` baskets of the chaos run's kind: one to three lines of one or two units."""
    return tuple(tuple(basket(rng, products, [], 0.0)) for _ in range(count))


def _phase(
    name: str,
    shop: Shop,
    clients: Sequence[ClientPlan],
    sqs: SQSClient,
    prefix: str,
    plan: LoadPlan,
    say: Say,
) -> PhaseFigures:
    results = place_burst(shop, clients, name)
    placed = placed_orders(results)
    say(f"   {len(placed)}/{len(results)} accepted; waiting until every order is decided")
    decisions, seen_at = wait_until_decided(shop, sqs, prefix, placed, plan.decided_timeout_s, say)
    return summarise(name, results, decisions, seen_decided_at=seen_at)


def wait_until_decided(
    shop: Shop,
    sqs: SQSClient,
    prefix: str,
    order_ids: Sequence[str],
    timeout_s: float,
    say: Say,
) -> tuple[dict[str, Decision], float | None]:
    """Wait until the queues are quiet and every order is decided (or ``timeout_s`` passed).

    Returns
    -------
    tuple[dict[str, Decision], float | None]
        Each order's decision, with its time when its events tell it; and when every order was
        seen decided (``None`` if some never was).
    """
    statuses: dict[str, str] = {}
    seen_at: list[float] = []

    def read_undecided() -> None:
        undecided = [o for o in order_ids if not Decision(statuses.get(o, "")).terminal]
        statuses.update(observation.order_statuses(shop, undecided))

    def all_decided() -> bool:
        read_undecided()
        if all(Decision(status).terminal for status in statuses.values()):
            seen_at.append(time.time())
        return bool(seen_at)

    observation.wait_until_quiet(sqs, prefix, timeout_s=timeout_s, done=all_decided, progress=say)
    if not seen_at:
        # Timed out, perhaps before the queues were ever quiet: read where the orders stand.
        read_undecided()
    decided = [order_id for order_id, status in statuses.items() if Decision(status).terminal]
    times = decision_times(shop, decided)
    return {
        order_id: Decision(status, times.get(order_id)) for order_id, status in statuses.items()
    }, (seen_at[0] if seen_at else None)


def decision_times(shop: Shop, order_ids: Sequence[str]) -> dict[str, float]:
    """Order id → when it was decided (epoch seconds), from its events; unknown ones left out."""

    def decided_at(order_id: str) -> tuple[str, float | None]:
        status, body, _ = shop.request("GET", f"{shop.orders_url}/orders/{order_id}/events")
        events = body.get("events", []) if status == 200 and isinstance(body, dict) else []
        return order_id, decision_time(events)

    with ThreadPoolExecutor(shop.clients) as pool:
        found = dict(pool.map(decided_at, order_ids))
    return {order_id: moment for order_id, moment in found.items() if moment is not None}


def decision_time(events: Iterable[Mapping[str, Any]]) -> float | None:
    """When the events' decision was made (epoch seconds); ``None`` without one.

    >>> decision_time([
    ...     {"type": "order.placed", "time": "2026-12-03T10:00:00+00:00"},
    ...     {"type": "order.confirmed", "time": "2026-12-03T10:00:02.500000+00:00"},
    ... ])
    1796292002.5
    >>> decision_time([{"type": "order.placed", "time": "2026-12-03T10:00:00+00:00"}]) is None
    True
    """
    moments = [
        datetime.fromisoformat(str(event["time"])).timestamp()
        for event in events
        if event.get("type") in DECISION_EVENTS and event.get("time")
    ]
    return max(moments, default=None)


def placed_orders(results: Sequence[PostResult]) -> list[str]:
    """The ids of the orders ``results`` placed."""
    return [result.order_id for result in results if result.accepted and result.order_id]
