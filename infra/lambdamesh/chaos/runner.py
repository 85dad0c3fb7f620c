"""A chaos run from start to finish.

1. Wait until the system is quiet, sign the run's users up, restock the shelves (all but the
   scarcest product, which a share of the orders asks for so that inventory refuses some), and
   read the stock.
2. Switch the faults on (:mod:`.switches`), publish the poison events and place the orders with
   several clients at once, each retrying ``503`` under its ``Idempotency-Key``; keep the faults
   on while the saga works through what was placed.
3. Switch the faults off, let every queue drain, redrive every dead-letter queue (as
   ``lambdamesh dlq redrive`` does) and let the queues drain again.
4. Read what the run left (:mod:`.observation`) and check every invariant (:mod:`.invariants`).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lambdamesh.deploy import DeployReport, Target
from lambdamesh.deploy.stacks import existing_stack_outputs
from lambdamesh.dlq.queues import list_dead_letter_queues
from lambdamesh.dlq.redrive import redrive
from lambdamesh_toolkit.faults import FAULT_LOG_MESSAGE

from . import observation
from .invariants import Check, Observation, check_all
from .plan import ChaosPlan
from .poison import publish_poison
from .shoppers import Placement, Shop, basket, place_orders
from .switches import FaultSwitches, discover_functions

if TYPE_CHECKING:
    from mypy_boto3_logs.client import CloudWatchLogsClient

Say = Callable[[str], None]

QUIET_TIMEOUT_S = 600.0
"""The longest the run waits for the queues to drain at each step."""


@dataclass
class ChaosReport:
    """What a run did and found.

    Attributes
    ----------
    run_id
        Prefix of the run's correlation ids, keys and addresses.
    plan
        The plan it followed.
    checks
        Every invariant's verdict.
    placement
        The orders placed and refused, and the ``503`` retried.
    faults
        Fault name → times injected, as the functions logged them.
    redriven
        Dead letters moved back by the redrive.
    timings
        Step → seconds.
    """

    run_id: str
    plan: ChaosPlan
    checks: list[Check] = field(default_factory=list)
    placement: Placement = field(default_factory=Placement)
    faults: Counter[str] = field(default_factory=Counter)
    poison: int = 0
    redriven: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        """Whether every invariant held."""
        return bool(self.checks) and all(check.holds for check in self.checks)


def run_chaos(
    target: Target,
    report: DeployReport,
    plan: ChaosPlan,
    *,
    prefix: str = "lambdamesh",
    say: Say = print,
    seed: int | None = None,
) -> ChaosReport:
    """Run ``plan`` against the system ``report`` describes; the verdicts and figures."""
    run_id = f"chaos-{uuid.uuid4().hex[:8]}"
    chaos = ChaosReport(run_id, plan)
    rng = random.Random(seed)  # noqa: S311 - baskets, not secrets
    sqs, sns = target.client("sqs"), target.client("sns")
    dynamodb, cfn = target.client("dynamodb"), target.client("cloudformation")
    messaging = existing_stack_outputs(cfn, f"{prefix}-messaging")
    inventory = existing_stack_outputs(cfn, report.service("inventory").stack)
    payments = existing_stack_outputs(cfn, report.service("payments").stack)
    payments_table = payments["PaymentsTableName"]
    stock_table, reservations_table = (
        inventory["StockTableName"],
        inventory["ReservationsTableName"],
    )
    shop = Shop.of(report, run_id, plan.clients)
    lambda_client = target.client("lambda")
    functions = discover_functions(
        lambda_client, [(s.service, s.functions) for s in report.services]
    )
    switches = FaultSwitches(lambda_client, functions, say)
    ledger = observation.PaymentsLedger(
        sqs, sns, messaging["PaymentsTopicArn"], f"{prefix}-chaos-ledger-{run_id[-8:]}"
    )
    started = time.monotonic()
    step = _stepper(chaos, say)

    step("waiting for the system to be quiet")
    observation.wait_until_quiet(sqs, prefix, timeout_s=QUIET_TIMEOUT_S, progress=say)
    step(f"signing up {plan.users} users, restocking")
    users = shop.sign_up(plan.users)
    products = shop.products()
    shelves = observation.shelves(dynamodb, stock_table)
    scarce = [min(shelves, key=lambda p: shelves[p])] if shelves else []
    observation.restock(
        dynamodb, stock_table, [p.id for p in products if p.id not in scarce], 2 * plan.orders
    )
    baskets = [basket(rng, products, scarce, plan.scarce_share) for _ in range(plan.orders)]
    observation.wait_until_quiet(sqs, prefix, timeout_s=QUIET_TIMEOUT_S, progress=say)
    stock_before = observation.shelves(dynamodb, stock_table)
    _, held_before = observation.reservations(dynamodb, reservations_table)
    ledger.open()
    faults_from = int(time.time() * 1000)
    try:
        step("switching the faults on")
        switches.switch_on(plan, outage=True)
        poison = publish_poison(sns, messaging, plan.poison, run_id)
        chaos.poison = len(poison)
        step(f"placing {plan.orders} orders with {plan.clients} clients")
        chaos.placement = place_orders(shop, users, baskets, say)
        placed_ids = {order.id for order in chaos.placement.placed}
        step(f"the saga at work, faults still on (at most {plan.faulty_settle_s:.0f} s)")
        observation.wait_until_quiet(sqs, prefix, timeout_s=plan.faulty_settle_s, progress=say)
        step("switching the faults off")
        switches.switch_off()
        observation.wait_until_quiet(sqs, prefix, timeout_s=QUIET_TIMEOUT_S, progress=say)
        step("redriving every dead-letter queue")
        for queue in list_dead_letter_queues(sqs, prefix):
            # A dead-letter queue no queue redrives into (a stream publisher's) has nowhere to
            # send its letters back to: they stay, and the invariants see them.
            if queue.messages and queue.sources:
                chaos.redriven += redrive(sqs, queue, progress=say).moved
        observation.wait_until_quiet(
            sqs,
            prefix,
            timeout_s=QUIET_TIMEOUT_S,
            done=lambda: _all_decided(shop, placed_ids),
            progress=say,
        )
        step("checking the invariants")
        statuses = observation.order_statuses(shop, placed_ids)
        reservation_statuses, held_after = observation.reservations(dynamodb, reservations_table)
        letters = observation.dead_letters(
            sqs, dynamodb, prefix, messaging.get("EventFailuresTable")
        )
        seen = Observation(
            placed=chaos.placement.placed,
            refused=chaos.placement.refused,
            statuses=statuses,
            payments=observation.payments(dynamodb, payments_table),
            ledger=ledger.drain(placed_ids),
            reservations=reservation_statuses,
            stock_before=stock_before,
            stock_after=observation.shelves(dynamodb, stock_table),
            held_before=held_before,
            held_after=held_after,
            mails=observation.mails_to(
                shop.http,
                target.endpoint_url or "",
                {f"{run_id}-{n}@example.com" for n in range(plan.users)},
            ),
            poison=poison,
            dead_letters=[
                letter
                for letter in letters
                if run_id in letter.body or (letter.correlation_id or "").startswith(run_id)
            ],
            in_flight=observation.in_flight(sqs, prefix),
        )
        chaos.checks = check_all(seen)
        chaos.faults = injected_faults(target.client("logs"), functions_of(report), faults_from)
    finally:
        switches.switch_off()
        ledger.close()
        step(None)
    chaos.timings["total"] = time.monotonic() - started
    return chaos


def _all_decided(shop: Shop, order_ids: set[str]) -> bool:
    statuses = observation.order_statuses(shop, order_ids)
    return all(status in ("confirmed", "cancelled") for status in statuses.values())


def _stepper(chaos: ChaosReport, say: Say) -> Callable[[str | None], None]:
    """Announce each step and time the one before."""
    current: list[tuple[str, float]] = []

    def step(title: str | None) -> None:
        now = time.monotonic()
        if current:
            name, since = current.pop()
            chaos.timings[name] = now - since
        if title is not None:
            say(f"==> {title}")
            current.append((title, now))

    return step


def functions_of(report: DeployReport) -> list[str]:
    """Every function name of the deployed system."""
    return [name for service in report.services for name in service.functions.values()]


def injected_faults(
    logs: CloudWatchLogsClient, functions: list[str], since_ms: int
) -> Counter[str]:
    """Fault name → how many times the functions logged injecting it since ``since_ms``."""
    counts: Counter[str] = Counter()
    for name in functions:
        try:
            pages = logs.get_paginator("filter_log_events").paginate(
                logGroupName=f"/aws/lambda/{name}",
                startTime=since_ms,
                filterPattern=f'"{FAULT_LOG_MESSAGE}"',
            )
            for page in pages:
                for event in page.get("events", []):
                    fault = _fault_of(event.get("message", ""))
                    if fault:
                        counts[fault] += 1
        except logs.exceptions.ResourceNotFoundException:
            continue
    return counts


def _fault_of(line: str) -> str | None:
    """The fault a log line reports injecting, if it is such a line.

    >>> _fault_of('{"level": "WARNING", "message": "fault injected", "fault": "crash"}')
    'crash'
    >>> _fault_of("START RequestId: 1") is None
    True
    """
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if isinstance(record, dict) and record.get("message") == FAULT_LOG_MESSAGE:
        return str(record.get("fault"))
    return None
