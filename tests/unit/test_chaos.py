"""``lambdamesh chaos``, its pure parts: the invariants, the fault switches, the shoppers, the
poison and the report (fakes and moto in-process, no network, no LocalStack)."""

from __future__ import annotations

import argparse
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
import urllib3
from moto import mock_aws

from lambdamesh.chaos import shoppers
from lambdamesh.chaos import switches as switches_module
from lambdamesh.chaos.command import plan_from, report_document, report_lines
from lambdamesh.chaos.invariants import (
    CHECKS,
    Check,
    DeadLetterSeen,
    LedgerEntry,
    Observation,
    cancelled_charges_refunded,
    check_all,
    every_order_accepted,
    every_order_terminal,
    format_table,
    no_mail_twice,
    none_charged_twice,
    nothing_in_flight,
    only_poison_dead_lettered,
    poison_dead_lettered,
    stock_conserved,
    stock_never_negative,
)
from lambdamesh.chaos.observation import restock
from lambdamesh.chaos.plan import ChaosPlan
from lambdamesh.chaos.poison import Poison, poison_message, publish_poison
from lambdamesh.chaos.runner import ChaosReport
from lambdamesh.chaos.shoppers import (
    GIVE_UP_AFTER_S,
    MAX_RETRY_WAIT_S,
    PlacedOrder,
    Placement,
    Product,
    Refusal,
    Shop,
    basket,
)
from lambdamesh.chaos.switches import (
    PAYMENT_FAILURE_VARIABLE,
    FaultSwitches,
    Function,
    discover_functions,
    faults_for,
    variables_for,
)
from lambdamesh_toolkit.faults import FAULTS_VARIABLE, FaultPlan
from tests.support.fake_aws import use_fake_aws
from tests.support.shop_requests import Answer, script

if TYPE_CHECKING:
    from mypy_boto3_lambda.client import LambdaClient
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient

# --- invariants: one consistent run, and broken copies of it ---------------------------------

CONFIRMED, PAID_THEN_CANCELLED, DECLINED = "order-7f3a", "order-c41e", "order-9b02"
RUN = "chaos-1a2b3c4d"


def placed(order_id: str, lines: tuple[tuple[str, int], ...] = (("p-a", 2),)) -> PlacedOrder:
    return PlacedOrder(order_id, "user-1", lines, attempts=1)


def fine() -> Observation:
    """A run where everything went right.

    Three orders: one confirmed (charged, units reserved), one cancelled after its charge
    (refunded once, units released) and one cancelled because the card was declined. Two units
    of ``p-a`` moved from the shelf to the confirmed order's reservation; the payment of the
    confirmed order was published twice under the same event id (a duplicate, not a charge);
    both poison events sit in a DLQ with their reason; every queue is empty.
    """
    poison = [
        Poison(f"{RUN}-poison-0", "UsersTopicArn", "a body that is not JSON"),
        Poison(f"{RUN}-poison-1", "InventoryTopicArn", "an event version nobody knows"),
    ]
    return Observation(
        placed=[placed(CONFIRMED), placed(PAID_THEN_CANCELLED), placed(DECLINED)],
        refused=[],
        statuses={CONFIRMED: "confirmed", PAID_THEN_CANCELLED: "cancelled", DECLINED: "cancelled"},
        payments={CONFIRMED: "processed", PAID_THEN_CANCELLED: "refunded", DECLINED: "failed"},
        ledger=[
            LedgerEntry("payment.processed", "ev-1", CONFIRMED),
            LedgerEntry("payment.processed", "ev-1", CONFIRMED),
            LedgerEntry("payment.processed", "ev-2", PAID_THEN_CANCELLED),
            LedgerEntry("payment.refunded", "ev-3", PAID_THEN_CANCELLED),
            LedgerEntry("payment.failed", "ev-4", DECLINED),
        ],
        reservations={
            CONFIRMED: "reserved",
            PAID_THEN_CANCELLED: "released",
            DECLINED: "released",
        },
        stock_before={"p-a": 10, "p-b": 4},
        stock_after={"p-a": 8, "p-b": 4},
        held_before={},
        held_after={"p-a": 2},
        mails=[
            (f"{RUN}-0@example.com", "Welcome to lambdamesh, Shopper 0"),
            (f"{RUN}-0@example.com", f"Your order {CONFIRMED} is confirmed"),
            (f"{RUN}-0@example.com", f"Your order {PAID_THEN_CANCELLED} was cancelled"),
            (f"{RUN}-0@example.com", f"Your order {DECLINED} was cancelled"),
        ],
        poison=poison,
        dead_letters=[
            DeadLetterSeen(
                "lambdamesh-notifications-users-dlq",
                f"not JSON {{ {poison[0].marker}",
                None,
                "not an event: Expecting value",
            ),
            DeadLetterSeen(
                "lambdamesh-orders-outcomes-dlq",
                json.dumps({"version": 99, "data": {"order_id": poison[1].marker}}),
                poison[1].marker,
                "unknown event version 99",
            ),
        ],
        in_flight={
            "lambdamesh-payments-orders.fifo": 0,
            "lambdamesh-inventory-orders.fifo": 0,
            "lambdamesh-orders-outcomes": 0,
        },
    )


def assert_broken(check: Check, *culprits: str) -> None:
    """``check`` does not hold, says how many examples broke it, and names every culprit."""
    assert not check.holds
    assert f"; {len(check.examples)} broken" in check.figures
    for culprit in culprits:
        assert any(culprit in example for example in check.examples), (culprit, check.examples)


def test_a_consistent_run_satisfies_every_invariant_with_sensible_figures() -> None:
    # GIVEN a run where every order ended well
    seen = fine()
    # WHEN every invariant is checked
    checks = {check.name: check for check in check_all(seen)}
    # THEN each holds, gives no example, and counts what it looked at
    assert all(check.holds and not check.examples for check in checks.values()), checks
    assert checks["every valid order accepted"].figures == "3 accepted of 3"
    assert checks["every order terminal"].figures == "2 cancelled, 1 confirmed"
    assert checks["no order charged twice"].figures == "2 charged, 3 payment.processed published"
    assert (
        checks["every cancelled order's charge refunded"].figures
        == "1 refunded, 1 confirmed kept their charge"
    )
    assert (
        checks["stock conserved"].figures
        == "2 products, 2 units moved from shelf to confirmed orders"
    )
    assert checks["stock never negative"].figures == "lowest shelf 4 units"
    assert checks["every poison event in a DLQ with its reason"].figures == (
        "2 published, 2 dead letters"
    )
    assert checks["nothing else dead-lettered after the redrive"].figures == (
        "2 dead letters of the run"
    )
    assert checks["no mail sent twice"].figures == "4 mails sent"
    assert checks["nothing left in flight"].figures == "3 queues, 0 messages"


def test_check_all_answers_once_per_invariant_in_the_order_of_checks() -> None:
    # GIVEN a run  WHEN every invariant is checked
    checks = check_all(fine())
    # THEN there is one verdict per entry of CHECKS, in its order
    assert [check.name for check in checks] == [check(fine()).name for check in CHECKS]
    assert len({check.name for check in checks}) == len(CHECKS) == 10


def test_a_refused_order_breaks_every_order_accepted_naming_its_key_and_code() -> None:
    # GIVEN an order the API refused with 409
    seen = replace(fine(), refused=[Refusal(f"{RUN}-order-3", 409, "conflict")])
    # WHEN checked
    check = every_order_accepted(seen)
    # THEN it does not hold and names the refused key with its status and code
    assert_broken(check, f"{RUN}-order-3: 409 conflict")
    assert check.figures.startswith("3 accepted of 4")


def test_a_refusal_without_an_error_code_is_named_by_its_status_alone() -> None:
    # GIVEN an order that got no answer at all before the shopper gave up
    seen = replace(fine(), refused=[Refusal(f"{RUN}-order-3", 0, None)])
    # WHEN checked  THEN the example is the key and the status, with no trailing blank
    assert every_order_accepted(seen).examples == (f"{RUN}-order-3: 0",)


def test_an_order_still_placed_or_missing_breaks_every_order_terminal() -> None:
    # GIVEN one order still placed and one the orders API does not report at all
    statuses = {CONFIRMED: "confirmed", PAID_THEN_CANCELLED: "placed"}
    seen = replace(fine(), statuses=statuses)
    # WHEN checked
    check = every_order_terminal(seen)
    # THEN both are named with what was seen, and the figures count them
    assert_broken(check, f"{PAID_THEN_CANCELLED}: placed", f"{DECLINED}: missing")
    assert check.figures.startswith("1 confirmed, 1 missing, 1 placed")


def test_two_payment_events_for_one_order_are_a_second_charge() -> None:
    # GIVEN the confirmed order's payment published under two distinct event ids
    seen = fine()
    seen = replace(seen, ledger=[*seen.ledger, LedgerEntry("payment.processed", "ev-9", CONFIRMED)])
    # WHEN checked
    check = none_charged_twice(seen)
    # THEN the order is named with its two charges
    assert_broken(check, f"{CONFIRMED}: 2 charges")


def test_the_same_payment_event_delivered_twice_is_not_a_second_charge() -> None:
    # GIVEN one payment.processed seen three times under the same event id
    seen = fine()
    again = LedgerEntry("payment.processed", "ev-2", PAID_THEN_CANCELLED)
    seen = replace(seen, ledger=[*seen.ledger, again, again])
    # WHEN checked
    check = none_charged_twice(seen)
    # THEN it holds: duplicates of one event are one charge (the deliveries are still counted)
    assert check.holds
    assert check.figures == "2 charged, 5 payment.processed published"


def test_a_cancelled_order_charged_but_never_refunded_breaks_the_refund_invariant() -> None:
    # GIVEN the order cancelled after its charge, without its refund
    seen = fine()
    ledger = [e for e in seen.ledger if e.type != "payment.refunded"]
    seen = replace(
        seen, ledger=ledger, payments={**seen.payments, PAID_THEN_CANCELLED: "processed"}
    )
    # WHEN checked  THEN the order is named with no refund and its payment's status
    assert_broken(
        cancelled_charges_refunded(seen),
        f"{PAID_THEN_CANCELLED}: cancelled, 0 refund(s), payment processed",
    )


def test_a_cancelled_order_refunded_twice_breaks_the_refund_invariant() -> None:
    # GIVEN two distinct refunds of one cancelled order
    seen = fine()
    seen = replace(
        seen, ledger=[*seen.ledger, LedgerEntry("payment.refunded", "ev-8", PAID_THEN_CANCELLED)]
    )
    # WHEN checked
    check = cancelled_charges_refunded(seen)
    # THEN the order is named with its two refunds, and is not counted as refunded
    assert_broken(check, f"{PAID_THEN_CANCELLED}: cancelled, 2 refund(s)")
    assert check.figures.startswith("0 refunded")


def test_the_same_refund_delivered_twice_is_one_refund() -> None:
    # GIVEN the one refund event delivered twice
    seen = fine()
    again = LedgerEntry("payment.refunded", "ev-3", PAID_THEN_CANCELLED)
    # WHEN checked  THEN it still holds
    assert cancelled_charges_refunded(replace(seen, ledger=[*seen.ledger, again])).holds


def test_a_refunded_cancelled_order_whose_payment_record_disagrees_is_broken() -> None:
    # GIVEN a refund published but the payment record still ``processed``
    seen = fine()
    seen = replace(seen, payments={**seen.payments, PAID_THEN_CANCELLED: "processed"})
    # WHEN checked  THEN the order is named with the record's status
    assert_broken(
        cancelled_charges_refunded(seen),
        f"{PAID_THEN_CANCELLED}: cancelled, 1 refund(s), payment processed",
    )


def test_a_confirmed_order_refunded_breaks_the_refund_invariant() -> None:
    # GIVEN the confirmed order refunded
    seen = fine()
    seen = replace(
        seen,
        ledger=[*seen.ledger, LedgerEntry("payment.refunded", "ev-7", CONFIRMED)],
        payments={**seen.payments, CONFIRMED: "refunded"},
    )
    # WHEN checked  THEN the confirmed order is named with its refund
    assert_broken(
        cancelled_charges_refunded(seen), f"{CONFIRMED}: confirmed, payment refunded, 1 refund(s)"
    )


def test_a_refund_of_an_order_never_charged_breaks_the_refund_invariant() -> None:
    # GIVEN a refund published for the order whose card was declined
    seen = fine()
    refund = LedgerEntry("payment.refunded", "ev-9", DECLINED)
    # WHEN checked  THEN that order is named: money went back that never came in
    assert_broken(
        cancelled_charges_refunded(replace(seen, ledger=[*seen.ledger, refund])),
        f"{DECLINED}: cancelled, refunded 1 time(s) but never charged",
    )


def test_a_confirmed_order_never_charged_breaks_the_refund_invariant() -> None:
    # GIVEN the confirmed order's charge missing from the ledger
    seen = fine()
    seen = replace(seen, ledger=[e for e in seen.ledger if e.order_id != CONFIRMED])
    # WHEN checked  THEN the confirmed order is named
    assert_broken(cancelled_charges_refunded(seen), f"{CONFIRMED}: confirmed")


def test_a_cancelled_order_charged_without_a_published_payment_event_is_broken() -> None:
    # GIVEN a declined-and-cancelled order whose payment record says ``processed``
    # (the charge happened but payment.processed never reached the topic)
    seen = fine()
    seen = replace(seen, payments={**seen.payments, DECLINED: "processed"})
    # WHEN checked  THEN the order is named as charged without the event
    assert_broken(
        cancelled_charges_refunded(seen),
        f"{DECLINED}: cancelled, charged without payment.processed published",
    )


def test_units_that_vanish_break_stock_conservation() -> None:
    # GIVEN a unit of p-b gone from the shelf without a reservation holding it
    seen = replace(fine(), stock_after={"p-a": 8, "p-b": 3})
    # WHEN checked  THEN the product is named with its units before and after
    assert_broken(stock_conserved(seen), "p-b: 4 units before, 3 after")


def test_units_held_before_the_run_count_as_units() -> None:
    # GIVEN an older reservation of p-b released during the run: shelf +1, held -1
    seen = replace(
        fine(), held_before={"p-b": 1}, stock_before={"p-a": 10, "p-b": 4}, held_after={"p-a": 2}
    )
    seen = replace(seen, stock_after={"p-a": 8, "p-b": 5})
    # WHEN checked  THEN units are conserved, and one unit less moved to reservations
    check = stock_conserved(seen)
    assert check.holds
    assert check.figures == "2 products, 1 units moved from shelf to confirmed orders"


def test_a_confirmed_order_without_its_reservation_breaks_stock_conservation() -> None:
    # GIVEN the confirmed order's reservation released
    seen = fine()
    seen = replace(seen, reservations={**seen.reservations, CONFIRMED: "released"})
    # WHEN checked  THEN the order is named with its reservation's status
    assert_broken(stock_conserved(seen), f"{CONFIRMED}: confirmed, reservation released")


def test_a_confirmed_order_with_no_reservation_at_all_breaks_stock_conservation() -> None:
    # GIVEN no reservation for the confirmed order
    seen = fine()
    seen = replace(
        seen, reservations={k: v for k, v in seen.reservations.items() if k != CONFIRMED}
    )
    # WHEN checked  THEN the order is named
    assert_broken(stock_conserved(seen), f"{CONFIRMED}: confirmed, reservation None")


def test_a_cancelled_order_still_reserved_breaks_stock_conservation() -> None:
    # GIVEN a cancelled order whose units are still held (and counted as held)
    seen = fine()
    seen = replace(
        seen,
        reservations={**seen.reservations, DECLINED: "reserved"},
        stock_after={"p-a": 6, "p-b": 4},
        held_after={"p-a": 4},
    )
    # WHEN checked  THEN the units add up, but the order is named
    check = stock_conserved(seen)
    assert_broken(check, f"{DECLINED}: cancelled, stock still reserved")
    assert check.examples == (f"{DECLINED}: cancelled, stock still reserved",)


def test_a_negative_shelf_breaks_stock_never_negative() -> None:
    # GIVEN a shelf below zero
    seen = replace(fine(), stock_after={"p-a": 8, "p-b": -1})
    # WHEN checked  THEN the product is named with its units, and the figures show the lowest
    check = stock_never_negative(seen)
    assert_broken(check, "p-b: -1")
    assert check.figures.startswith("lowest shelf -1 units")


def test_stock_never_negative_holds_on_an_empty_shelf() -> None:
    # GIVEN a shelf sold out exactly  WHEN checked  THEN it holds
    assert stock_never_negative(replace(fine(), stock_after={"p-a": 0})).holds


def test_a_poison_event_in_no_dead_letter_queue_is_named_with_its_flaw() -> None:
    # GIVEN the second poison event's dead letter missing
    seen = fine()
    seen = replace(seen, dead_letters=seen.dead_letters[:1])
    # WHEN checked  THEN its marker and flaw are named
    check = poison_dead_lettered(seen)
    assert_broken(check, f"{RUN}-poison-1 (an event version nobody knows): in no dead-letter queue")
    assert check.figures.startswith("2 published, 1 dead letters")


def test_a_poison_dead_letter_without_its_reason_is_named_with_its_queue() -> None:
    # GIVEN the first poison's dead letter with no failure recorded
    seen = fine()
    seen = replace(
        seen, dead_letters=[replace(seen.dead_letters[0], reason=None), *seen.dead_letters[1:]]
    )
    # WHEN checked  THEN the marker and the queue are named
    assert_broken(
        poison_dead_lettered(seen),
        f"{RUN}-poison-0 in lambdamesh-notifications-users-dlq: no reason recorded",
    )


def test_a_dead_letter_that_is_not_poison_breaks_only_poison_dead_lettered() -> None:
    # GIVEN an order's event left in a DLQ after the redrive
    seen = fine()
    stray = DeadLetterSeen(
        "lambdamesh-payments-orders-dlq.fifo",
        json.dumps({"type": "order.placed", "data": {"order_id": CONFIRMED}}),
        f"{RUN}-order-0",
        "TimeoutError: read timed out",
    )
    seen = replace(seen, dead_letters=[*seen.dead_letters, stray])
    # WHEN checked  THEN its queue and reason are named; the poison invariant still holds
    check = only_poison_dead_lettered(seen)
    assert_broken(check, "lambdamesh-payments-orders-dlq.fifo: TimeoutError: read timed out")
    assert check.figures.startswith("3 dead letters of the run")
    assert poison_dead_lettered(seen).holds


def test_a_stray_dead_letter_without_a_reason_is_named_by_its_body() -> None:
    # GIVEN a stray dead letter with no recorded reason
    stray = DeadLetterSeen("lambdamesh-orders-outcomes-dlq", f"{RUN} payload", None, None)
    seen = replace(fine(), dead_letters=[*fine().dead_letters, stray])
    # WHEN checked  THEN the start of its body stands for the reason
    assert_broken(only_poison_dead_lettered(seen), f"lambdamesh-orders-outcomes-dlq: {RUN} payload")


def test_a_mail_sent_twice_breaks_no_mail_twice() -> None:
    # GIVEN the confirmation mail sent twice
    seen = fine()
    twice = (f"{RUN}-0@example.com", f"Your order {CONFIRMED} is confirmed")
    seen = replace(seen, mails=[*seen.mails, twice])
    # WHEN checked  THEN the recipient and subject are named with the count
    assert_broken(
        no_mail_twice(seen), f"{RUN}-0@example.com: 'Your order {CONFIRMED} is confirmed' sent 2"
    )


def test_a_decided_order_without_its_mail_breaks_no_mail_twice() -> None:
    # GIVEN no mail about the declined order
    seen = fine()
    seen = replace(seen, mails=[m for m in seen.mails if DECLINED not in m[1]])
    # WHEN checked  THEN the order is named with its status
    assert_broken(no_mail_twice(seen), f"{DECLINED}: cancelled but no mail")


def test_an_undecided_order_needs_no_mail() -> None:
    # GIVEN an order still placed and, rightly, not mailed about
    seen = fine()
    seen = replace(
        seen,
        statuses={**seen.statuses, DECLINED: "placed"},
        mails=[m for m in seen.mails if DECLINED not in m[1]],
    )
    # WHEN checked  THEN the mail invariant holds (the terminal one does not)
    assert no_mail_twice(seen).holds
    assert not every_order_terminal(seen).holds


def test_a_queue_with_messages_breaks_nothing_in_flight() -> None:
    # GIVEN a queue with two messages left
    seen = replace(fine(), in_flight={**fine().in_flight, "lambdamesh-orders-outcomes": 2})
    # WHEN checked  THEN the queue is named with its count, and the total is counted
    check = nothing_in_flight(seen)
    assert_broken(check, "lambdamesh-orders-outcomes: 2 messages")
    assert check.examples == ("lambdamesh-orders-outcomes: 2 messages",)
    assert check.figures.startswith("3 queues, 2 messages")


def test_examples_are_capped_while_the_figures_count_every_break() -> None:
    # GIVEN seven refused orders
    refused = [Refusal(f"{RUN}-order-{n}", 503, "unavailable") for n in range(7)]
    # WHEN checked
    check = every_order_accepted(replace(fine(), refused=refused))
    # THEN five examples are shown, seven breaks counted
    assert len(check.examples) == 5
    assert check.figures.endswith("; 7 broken")


def test_the_table_marks_a_broken_invariant_no_and_lists_its_examples_under_it() -> None:
    # GIVEN the verdicts of a run with a queue left busy
    seen = replace(fine(), in_flight={"lambdamesh-orders-outcomes": 1})
    # WHEN formatted
    lines = format_table(check_all(seen))
    # THEN every invariant has its row, the broken one reads NO, its example follows it indented
    assert lines[0].split() == ["invariant", "holds", "figures"]
    row = next(n for n, line in enumerate(lines) if line.startswith("nothing left in flight"))
    assert lines[row].split()[4] == "NO"
    assert lines[row + 1].strip() == "lambdamesh-orders-outcomes: 1 messages"
    assert lines[row + 1].startswith(" " * 10)
    assert sum(1 for line in lines if "  yes  " in line) == len(CHECKS) - 1
    assert len(lines) == 2 + len(CHECKS) + 1


# --- switches: which function gets which faults, and putting everything back ------------------

PLAN = ChaosPlan(
    payment_failure_rate=0.25, crash_rate=0.1, slow_rate=0.2, duplicate_rate=0.3, outage_s=6.0
)
USERS_API = Function("users", "APIHandler", "lambdamesh-users-APIHandler", consumer=False)
ORDERS_API = Function("orders", "APIHandler", "lambdamesh-orders-APIHandler", consumer=False)
ORDERS_SAGA = Function("orders", "HandleOutcomes", "lambdamesh-orders-HandleOutcomes", True)
PAYMENTS = Function("payments", "HandleOrderEvents", "lambdamesh-payments-HandleOrderEvents", True)
INVENTORY = Function(
    "inventory", "HandleOrderEvents", "lambdamesh-inventory-HandleOrderEvents", True
)
INVENTORY_SEED = Function("inventory", "Seed", "lambdamesh-inventory-Seed", consumer=False)
NOTIFICATIONS = Function(
    "notifications", "HandleUserEvents", "lambdamesh-notifications-HandleUserEvents", True
)
CATALOG_RPC = Function("catalog", "Rpc", "lambdamesh-catalog-Rpc", consumer=False)
REVIEWS_API = Function("reviews", "APIHandler", "lambdamesh-reviews-APIHandler", consumer=False)
EVERY_FUNCTION = [
    USERS_API,
    ORDERS_API,
    ORDERS_SAGA,
    PAYMENTS,
    INVENTORY,
    INVENTORY_SEED,
    NOTIFICATIONS,
    CATALOG_RPC,
    REVIEWS_API,
]


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        (USERS_API, FaultPlan(unavailable_until=99.0, duplicate_rate=0.3)),
        (ORDERS_API, FaultPlan(duplicate_rate=0.3)),
        (ORDERS_SAGA, FaultPlan(crash_rate=0.1, duplicate_rate=0.3)),
        (PAYMENTS, FaultPlan(crash_rate=0.1, duplicate_rate=0.3)),
        (INVENTORY, FaultPlan(crash_rate=0.1, slow_rate=0.2, duplicate_rate=0.3)),
        (INVENTORY_SEED, FaultPlan(duplicate_rate=0.3)),
        (NOTIFICATIONS, FaultPlan(crash_rate=0.1)),
        (CATALOG_RPC, FaultPlan()),
        (REVIEWS_API, FaultPlan()),
    ],
    ids=lambda value: value.name if isinstance(value, Function) else None,
)
def test_each_function_gets_the_faults_that_fit_what_it_does(
    function: Function, expected: FaultPlan
) -> None:
    # GIVEN a plan with every fault and an outage until t=99
    # WHEN the function's faults are chosen
    # THEN only the users API goes down, consumers crash, inventory's consumers are slow
    # and publishers duplicate
    assert faults_for(function, PLAN, outage_until=99.0) == expected


def test_without_an_outage_time_the_users_api_keeps_answering() -> None:
    # GIVEN no outage asked for  WHEN the users API's faults are chosen
    faults = faults_for(USERS_API, PLAN, outage_until=None)
    # THEN it does not go down (it still duplicates its events)
    assert faults == FaultPlan(duplicate_rate=0.3)


def test_variables_add_the_faults_and_keep_every_original_variable() -> None:
    # GIVEN the inventory consumer's environment
    original = {"STOCK_TABLE": "stock", "LOG_LEVEL": "INFO"}
    # WHEN its variables under the plan are computed
    variables = variables_for(INVENTORY, PLAN, original, outage_until=None)
    # THEN the originals are kept and the faults added; the original is not modified
    assert {k: variables[k] for k in original} == original
    assert json.loads(variables[FAULTS_VARIABLE]) == {
        "crash_rate": 0.1,
        "slow_rate": 0.2,
        "duplicate_rate": 0.3,
    }
    assert set(variables) == {*original, FAULTS_VARIABLE}
    assert original == {"STOCK_TABLE": "stock", "LOG_LEVEL": "INFO"}


def test_payments_get_the_card_failure_rate_and_the_users_api_its_outage_end() -> None:
    # GIVEN the payments consumer and the users API
    payments = variables_for(PAYMENTS, PLAN, {"TABLE": "p"}, outage_until=None)
    users = variables_for(USERS_API, PLAN, {}, outage_until=123.5)
    # THEN payments declines a share of cards, the users API goes down until the time given
    assert payments[PAYMENT_FAILURE_VARIABLE] == "0.25"
    assert payments["TABLE"] == "p"
    assert PAYMENT_FAILURE_VARIABLE not in users
    assert json.loads(users[FAULTS_VARIABLE])["unavailable_until"] == 123.5


def test_a_function_without_faults_keeps_its_environment_unchanged() -> None:
    # GIVEN the catalog's RPC function  WHEN its variables are computed
    # THEN they are its original ones, no fault variable added
    assert variables_for(CATALOG_RPC, PLAN, {"A": "1"}, outage_until=5.0) == {"A": "1"}


@dataclass
class FakeLambda:
    """Function configurations in memory; records updates, waits and pages of mappings."""

    environments: dict[str, dict[str, str] | None]
    mappings: list[list[dict[str, Any]]] = field(default_factory=list)
    updates: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    waits: list[tuple[str, str]] = field(default_factory=list)
    on_wait: Callable[[str], None] | None = None
    """Runs in each wait, with the function's name (say, to let time pass)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        variables = self.environments[kwargs["FunctionName"]]
        configuration: dict[str, Any] = {"FunctionName": kwargs["FunctionName"]}
        if variables is not None:
            configuration["Environment"] = {"Variables": dict(variables)}
        return configuration

    def update_function_configuration(self, **kwargs: Any) -> dict[str, Any]:
        name, variables = kwargs["FunctionName"], dict(kwargs["Environment"]["Variables"])
        with self._lock:
            self.updates.append((name, variables))
            self.environments[name] = variables
        return {"FunctionName": name}

    def get_waiter(self, waiter_name: str) -> Any:
        fake = self

        class Waiter:
            def wait(self, **kwargs: Any) -> None:
                with fake._lock:
                    fake.waits.append((waiter_name, kwargs["FunctionName"]))
                if fake.on_wait is not None:
                    fake.on_wait(kwargs["FunctionName"])

        return Waiter()

    def get_paginator(self, operation: str) -> Any:
        assert operation == "list_event_source_mappings"
        pages = [{"EventSourceMappings": page} for page in self.mappings]

        class Paginator:
            def paginate(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
                return iter(pages)

        return Paginator()

    def client(self) -> LambdaClient:
        return cast("LambdaClient", self)


ORIGINAL_ENVIRONMENTS: dict[str, dict[str, str] | None] = {
    USERS_API.name: {"USERS_TABLE": "users", "LOG_LEVEL": "INFO"},
    PAYMENTS.name: {"PAYMENTS_TABLE": "payments", PAYMENT_FAILURE_VARIABLE: "0"},
    INVENTORY.name: {"STOCK_TABLE": "stock"},
    NOTIFICATIONS.name: None,
    CATALOG_RPC.name: {"PRODUCTS_TABLE": "products"},
    REVIEWS_API.name: {},
}
SWITCHED = [USERS_API, PAYMENTS, INVENTORY, NOTIFICATIONS, CATALOG_RPC, REVIEWS_API]


def switches(fake: FakeLambda) -> FaultSwitches:
    return FaultSwitches(fake.client(), list(SWITCHED), progress=lambda _: None)


def test_switching_on_updates_only_the_functions_whose_environment_changes() -> None:
    # GIVEN six functions, two of which (catalog RPC, reviews API) get no fault
    fake = FakeLambda(dict(ORIGINAL_ENVIRONMENTS))
    # WHEN the faults are switched on, with the users outage
    changed = switches(fake).switch_on(PLAN, outage=True)
    # THEN only the four others were updated, each waited for, originals kept
    updated = {name for name, _ in fake.updates}
    assert changed == 4
    assert updated == {USERS_API.name, PAYMENTS.name, INVENTORY.name, NOTIFICATIONS.name}
    assert sorted(fake.waits) == sorted(("function_updated_v2", name) for name in updated)
    users = fake.environments[USERS_API.name]
    assert users is not None
    assert users["USERS_TABLE"] == "users"
    assert users["LOG_LEVEL"] == "INFO"
    assert "unavailable_until" in json.loads(users[FAULTS_VARIABLE])
    payments = fake.environments[PAYMENTS.name]
    assert payments is not None
    assert payments[PAYMENT_FAILURE_VARIABLE] == "0.25"


def test_the_users_outage_is_switched_on_last_so_that_it_lasts_its_length() -> None:
    # GIVEN the functions  WHEN switched on with the outage
    fake = FakeLambda(dict(ORIGINAL_ENVIRONMENTS))
    switches(fake).switch_on(PLAN, outage=True)
    # THEN the users API was updated after every other function
    assert fake.updates[-1][0] == USERS_API.name


class FakeClock:
    """``time.time`` and ``time.monotonic`` that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def test_the_users_outage_lasts_its_length_from_when_its_slow_update_took_effect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a busy machine: updates take 2 s to take effect, the users API's first one 6 s
    clock = FakeClock()
    monkeypatch.setattr(switches_module, "time", clock)
    fake = FakeLambda(dict(ORIGINAL_ENVIRONMENTS))
    users_waits: list[float] = []
    lock = threading.Lock()

    def time_passes(name: str) -> None:
        if name == USERS_API.name:
            users_waits.append(clock.now)
            clock.now += 6.0 if len(users_waits) == 1 else 2.0
        else:
            with lock:
                clock.now += 2.0 / 3  # three functions change together: 2 s in all

    fake.on_wait = time_passes
    # WHEN the faults are switched on with the outage (6 s)
    switches(fake).switch_on(PLAN, outage=True)
    # THEN the users API's outage was set twice, and the one in effect ends at least the
    # outage's length after it took effect
    users_updates = [variables for name, variables in fake.updates if name == USERS_API.name]
    assert len(users_updates) == 2
    until = json.loads(users_updates[-1][FAULTS_VARIABLE])["unavailable_until"]
    assert until - clock.now >= PLAN.outage_s


def test_switching_on_without_outage_leaves_the_users_api_up() -> None:
    # GIVEN the functions  WHEN switched on without the outage
    fake = FakeLambda(dict(ORIGINAL_ENVIRONMENTS))
    switches(fake).switch_on(PLAN, outage=False)
    # THEN the users API only duplicates its events
    users = fake.environments[USERS_API.name]
    assert users is not None
    assert json.loads(users[FAULTS_VARIABLE]) == {"duplicate_rate": 0.3}


def test_switching_off_restores_every_environment_exactly() -> None:
    # GIVEN faults switched on
    fake = FakeLambda(dict(ORIGINAL_ENVIRONMENTS))
    faults = switches(fake)
    faults.switch_on(PLAN, outage=True)
    # WHEN switched off
    restored = faults.switch_off()
    # THEN the four changed functions are put back: added variables gone, replaced ones back
    assert restored == 4
    for function in SWITCHED:
        assert (fake.environments[function.name] or {}) == (
            ORIGINAL_ENVIRONMENTS[function.name] or {}
        ), function.name
    payments = fake.environments[PAYMENTS.name]
    assert payments == {"PAYMENTS_TABLE": "payments", PAYMENT_FAILURE_VARIABLE: "0"}
    assert [name for name, _ in fake.updates].count(CATALOG_RPC.name) == 0


def test_switching_off_twice_changes_nothing_the_second_time() -> None:
    # GIVEN faults switched on and off
    fake = FakeLambda(dict(ORIGINAL_ENVIRONMENTS))
    faults = switches(fake)
    faults.switch_on(PLAN, outage=False)
    faults.switch_off()
    updates = len(fake.updates)
    # WHEN switched off again
    again = faults.switch_off()
    # THEN nothing is updated
    assert again == 0
    assert len(fake.updates) == updates


def test_switching_off_before_switching_on_changes_nothing() -> None:
    # GIVEN switches that never switched on  WHEN switched off  THEN no function is touched
    fake = FakeLambda(dict(ORIGINAL_ENVIRONMENTS))
    assert switches(fake).switch_off() == 0
    assert fake.updates == []


def test_switching_on_twice_keeps_the_environment_from_before_the_first() -> None:
    # GIVEN faults switched on twice (the second time without the outage)
    fake = FakeLambda(dict(ORIGINAL_ENVIRONMENTS))
    faults = switches(fake)
    faults.switch_on(PLAN, outage=True)
    faults.switch_on(PLAN, outage=False)
    # WHEN switched off
    faults.switch_off()
    # THEN the originals are back, not the first switch's faults
    assert fake.environments[USERS_API.name] == ORIGINAL_ENVIRONMENTS[USERS_API.name]


def test_discovery_marks_as_consumers_exactly_the_functions_fed_by_sqs() -> None:
    # GIVEN mappings over two pages: SQS queues for two functions, a stream for a third
    arn = "arn:aws:lambda:us-east-1:000000000000:function:"
    fake = FakeLambda(
        {},
        mappings=[
            [
                {
                    "FunctionArn": arn + "pay-orders",
                    "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:q.fifo",
                },
                {
                    "FunctionArn": arn + "users-stream",
                    "EventSourceArn": "arn:aws:dynamodb:us-east-1:0:table/u/stream/2026",
                },
            ],
            [
                {
                    "FunctionArn": arn + "inv-orders",
                    "EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:q2",
                },
                {"FunctionArn": arn + "api"},
            ],
        ],
    )
    services: list[tuple[str, Mapping[str, str]]] = [
        ("payments", {"HandleOrderEvents": "pay-orders"}),
        ("inventory", {"HandleOrderEvents": "inv-orders", "Seed": "inv-seed"}),
        ("users", {"APIHandler": "api", "Stream": "users-stream"}),
    ]
    # WHEN the functions are discovered
    functions = discover_functions(fake.client(), services)
    # THEN every function is listed with its service, and only the SQS-fed are consumers
    assert functions == [
        Function("payments", "HandleOrderEvents", "pay-orders", consumer=True),
        Function("inventory", "HandleOrderEvents", "inv-orders", consumer=True),
        Function("inventory", "Seed", "inv-seed", consumer=False),
        Function("users", "APIHandler", "api", consumer=False),
        Function("users", "Stream", "users-stream", consumer=False),
    ]


# --- shoppers: baskets, and orders placed as a careful client does ----------------------------

SHELF = [Product(f"p-{n}", 100 * n) for n in range(1, 6)] + [Product("p-scarce", 999)]


@pytest.mark.parametrize("seed", range(40))
def test_a_basket_has_one_to_three_distinct_lines_of_one_or_two_units(seed: int) -> None:
    # GIVEN a seeded generator  WHEN a basket is filled without scarce products
    lines = basket(random.Random(seed), SHELF, ["p-scarce"], 0.0)
    # THEN it has 1-3 distinct plentiful products, one or two of each
    products = [product for product, _ in lines]
    assert 1 <= len(lines) <= 3
    assert len(set(products)) == len(products)
    assert "p-scarce" not in products
    assert all(quantity in (1, 2) for _, quantity in lines)


def test_at_a_scarce_share_of_one_every_basket_asks_for_the_scarce_product_once() -> None:
    # GIVEN scarce_share 1.0  WHEN many baskets are filled
    rng = random.Random(7)
    baskets = [basket(rng, SHELF, ["p-scarce"], 1.0) for _ in range(50)]
    # THEN each asks for the scarce product exactly once, still 1-3 distinct lines
    for lines in baskets:
        products = [product for product, _ in lines]
        assert products.count("p-scarce") == 1
        assert len(set(products)) == len(products)
        assert 1 <= len(lines) <= 3


def test_the_same_seed_fills_the_same_baskets() -> None:
    # GIVEN two generators with the same seed  WHEN baskets are filled
    first, second = random.Random(42), random.Random(42)
    # THEN they are the same
    assert [basket(first, SHELF, ["p-scarce"], 0.5) for _ in range(20)] == [
        basket(second, SHELF, ["p-scarce"], 0.5) for _ in range(20)
    ]


CREATED: Answer = (201, {"id": "order-1", "status": "placed"}, {})
UNAVAILABLE: Answer = (
    503,
    {"error": {"code": "unavailable", "message": "down"}},
    {"Retry-After": "2"},
)


@pytest.fixture
def shop() -> Shop:
    return Shop("http://users", "http://catalog", "http://orders", RUN, clients=1)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait a shopper would sleep, without sleeping."""
    slept: list[float] = []
    monkeypatch.setattr("lambdamesh.chaos.shoppers.time.sleep", slept.append)
    return slept


def test_a_503_is_retried_under_the_same_idempotency_key_after_retry_after(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, waits: list[float]
) -> None:
    # GIVEN the orders API down once, then accepting
    orders = script(monkeypatch, shop, UNAVAILABLE, CREATED)
    # WHEN an order is placed
    outcome, retried = shop.place(f"{RUN}-order-0", "user-1", [("p-1", 2)])
    # THEN it is placed after two attempts, one retry, both under the same key and body
    assert outcome == PlacedOrder("order-1", "user-1", (("p-1", 2),), attempts=2)
    assert retried == 1
    assert [r[2] for r in orders.requests] == [
        {"user_id": "user-1", "items": [{"product_id": "p-1", "quantity": 2}]}
    ] * 2
    assert [r[3]["Idempotency-Key"] for r in orders.requests] == [f"{RUN}-order-0"] * 2
    assert all(r[:2] == ("POST", "http://orders/orders") for r in orders.requests)
    # AND the wait followed Retry-After (2 s, with up to 20 % jitter)
    assert len(waits) == 1
    assert 2 * 0.8 <= waits[0] <= 2 * 1.2


def test_a_long_retry_after_is_capped(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, waits: list[float]
) -> None:
    # GIVEN 503s asking for 30 s, then an acceptance
    long_wait: Answer = (503, None, {"retry-after": "30"})
    script(monkeypatch, shop, long_wait, long_wait, long_wait, CREATED)
    # WHEN an order is placed
    outcome, retried = shop.place(f"{RUN}-order-1", "user-1", [("p-1", 1)])
    # THEN every wait is capped at MAX_RETRY_WAIT_S (jitter at most x1.2)
    assert isinstance(outcome, PlacedOrder)
    assert outcome.attempts == 4
    assert retried == 3
    assert len(waits) == 3
    assert all(MAX_RETRY_WAIT_S * 0.8 <= wait <= MAX_RETRY_WAIT_S * 1.2 for wait in waits)


def test_a_refusal_is_recorded_with_its_error_code_and_not_retried(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, waits: list[float]
) -> None:
    # GIVEN the orders API refusing the order as invalid
    invalid: Answer = (400, {"error": {"code": "invalid_request", "message": "no"}}, {})
    orders = script(monkeypatch, shop, invalid, CREATED)
    # WHEN placed
    outcome, retried = shop.place(f"{RUN}-order-2", "user-1", [("p-1", 1)])
    # THEN it is a refusal with the status and code, after one request and no wait
    assert outcome == Refusal(f"{RUN}-order-2", 400, "invalid_request")
    assert retried == 0
    assert len(orders.requests) == 1
    assert waits == []


def test_a_refusal_whose_body_is_not_an_error_has_no_code(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, waits: list[float]
) -> None:
    # GIVEN a 500 answered as plain text  WHEN placed  THEN a refusal without a code
    script(monkeypatch, shop, (500, "Internal Server Error", {}))
    outcome, _ = shop.place(f"{RUN}-order-3", "user-1", [("p-1", 1)])
    assert outcome == Refusal(f"{RUN}-order-3", 500, None)


def test_a_lost_connection_is_retried_under_the_same_key(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, waits: list[float]
) -> None:
    # GIVEN the connection dropped once, then an acceptance
    dropped = urllib3.exceptions.ProtocolError("Connection aborted.")
    orders = script(monkeypatch, shop, dropped, CREATED)
    # WHEN placed
    outcome, retried = shop.place(f"{RUN}-order-4", "user-1", [("p-1", 1)])
    # THEN it is placed on the second attempt under the same key, after about a second
    assert isinstance(outcome, PlacedOrder)
    assert outcome.attempts == 2
    assert retried == 1
    assert {r[3]["Idempotency-Key"] for r in orders.requests} == {f"{RUN}-order-4"}
    assert len(waits) == 1
    assert 0.8 <= waits[0] <= 1.2


STILL_RUNNING: Answer = (
    409,
    {"error": {"code": "conflict", "message": "a request with this Idempotency-Key is still"}},
    {},
)


@pytest.mark.parametrize(
    "lost",
    [urllib3.exceptions.ProtocolError("Connection aborted."), (504, None, {})],
    ids=["no answer", "gateway timeout"],
)
def test_a_409_for_the_shoppers_own_unanswered_attempt_is_retried_until_placed(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, waits: list[float], lost: Answer
) -> None:
    # GIVEN a first attempt that got no answer while the API kept working on it, so that the
    # retry finds the key still claimed (409 "still being processed; retry in a moment")
    orders = script(monkeypatch, shop, lost, STILL_RUNNING, CREATED)
    # WHEN placed
    outcome, retried = shop.place(f"{RUN}-order-6", "user-1", [("p-1", 1)])
    # THEN the shopper retries under the same key until the order it placed is answered
    assert outcome == PlacedOrder("order-1", "user-1", (("p-1", 1),), attempts=3)
    assert retried == 2
    assert {r[3]["Idempotency-Key"] for r in orders.requests} == {f"{RUN}-order-6"}


def test_a_409_on_a_first_attempt_is_a_refusal(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, waits: list[float]
) -> None:
    # GIVEN a key some other request holds, the shopper's first attempt answered 409
    script(monkeypatch, shop, STILL_RUNNING, CREATED)
    # WHEN placed  THEN it is a refusal: nothing of this shopper's is running
    outcome, retried = shop.place(f"{RUN}-order-7", "user-1", [("p-1", 1)])
    assert outcome == Refusal(f"{RUN}-order-7", 409, "conflict")
    assert retried == 0
    assert waits == []


def test_a_409_after_a_503_is_a_refusal(
    monkeypatch: pytest.MonkeyPatch, shop: Shop, waits: list[float]
) -> None:
    # GIVEN a 503 (an answer: the API released the key or finished with it), then a 409
    script(monkeypatch, shop, UNAVAILABLE, STILL_RUNNING, CREATED)
    # WHEN placed  THEN the 409 is a finding, not retried
    outcome, retried = shop.place(f"{RUN}-order-8", "user-1", [("p-1", 1)])
    assert outcome == Refusal(f"{RUN}-order-8", 409, "conflict")
    assert retried == 1


def test_a_shopper_gives_up_on_an_order_that_stays_unavailable(
    monkeypatch: pytest.MonkeyPatch, shop: Shop
) -> None:
    # GIVEN an API down for good, and a clock that moves only while the shopper waits
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(shoppers, "time", SimpleNamespace(sleep=sleep, monotonic=lambda: now[0]))
    orders = script(monkeypatch, shop, *[UNAVAILABLE] * 1000)
    # WHEN placed
    outcome, retried = shop.place(f"{RUN}-order-5", "user-1", [("p-1", 1)])
    # THEN after GIVE_UP_AFTER_S it is refused with the last status and code
    assert outcome == Refusal(f"{RUN}-order-5", 503, "unavailable")
    assert retried == len(orders.requests) - 1
    assert GIVE_UP_AFTER_S < now[0] <= GIVE_UP_AFTER_S + MAX_RETRY_WAIT_S * 1.2


def test_a_placement_counts_outcomes_and_retries() -> None:
    # GIVEN a placement  WHEN one order placed after a retry and one refused are added
    placement = Placement()
    placement.add(placed("order-1"), 1)
    placement.add(Refusal("k", 400, "invalid_request"), 0)
    # THEN each lands in its list and the retries add up
    assert [o.id for o in placement.placed] == ["order-1"]
    assert placement.refused == [Refusal("k", 400, "invalid_request")]
    assert placement.retried_503 == 1


# --- poison: every kind to its topic, each with its marker ------------------------------------

TOPIC_OUTPUTS = ("UsersTopicArn", "InventoryTopicArn", "OrdersTopicArn", "PaymentsTopicArn")


@dataclass
class RecordingSns:
    published: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, **kwargs: Any) -> dict[str, str]:
        self.published.append(kwargs)
        return {"MessageId": str(len(self.published))}


def test_each_poison_goes_to_its_topic_with_its_marker_and_fifo_ids_where_needed() -> None:
    # GIVEN the system's topics, the orders one FIFO
    topics = {
        "UsersTopicArn": "arn:sns:lambdamesh-users",
        "InventoryTopicArn": "arn:sns:lambdamesh-inventory",
        "OrdersTopicArn": "arn:sns:lambdamesh-orders.fifo",
        "PaymentsTopicArn": "arn:sns:lambdamesh-payments",
        "EventFailuresTable": "not a topic",
    }
    sns = RecordingSns()
    # WHEN six poison events are published
    poison = publish_poison(cast("SNSClient", sns), topics, 6, RUN)
    # THEN six were published, cycling over the kinds, each to its topic
    assert len(poison) == len(sns.published) == 6
    assert [p.topic for p in poison] == [*TOPIC_OUTPUTS, *TOPIC_OUTPUTS[:2]]
    assert [p.marker for p in poison] == [f"{RUN}-poison-{n:03d}" for n in range(6)]
    assert len({p.flaw for p in poison}) == 4
    for one, call in zip(poison, sns.published, strict=True):
        assert call["TopicArn"] == topics[one.topic]
        assert one.marker in call["Message"]
        assert call["MessageAttributes"]["correlation_id"]["StringValue"] == one.marker
        assert call["MessageAttributes"]["type"]["DataType"] == "String"
        if call["TopicArn"].endswith(".fifo"):
            assert call["MessageGroupId"] == call["MessageDeduplicationId"] == one.marker
        else:
            assert "MessageGroupId" not in call
            assert "MessageDeduplicationId" not in call


def test_no_poison_is_published_when_none_is_asked_for() -> None:
    # GIVEN no topics needed  WHEN zero poison events are published  THEN nothing is sent
    sns = RecordingSns()
    assert publish_poison(cast("SNSClient", sns), {}, 0, RUN) == []
    assert sns.published == []


def test_every_poison_kind_breaks_a_rule_consumers_check() -> None:
    # GIVEN each kind's message
    bodies = [poison_message(kind, "m-1")[2] for kind in range(4)]
    # THEN the first is not JSON, the second has an unknown version, the third breaks its
    # contract, the fourth has no id; each carries the marker
    assert all("m-1" in body for body in bodies)
    with pytest.raises(ValueError, match="Expecting"):
        json.loads(bodies[0])
    assert json.loads(bodies[1])["version"] == 99
    assert json.loads(bodies[2])["data"]["total_cents"] == -1
    assert "id" not in json.loads(bodies[3])


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[SNSClient, SQSClient]]:
    use_fake_aws(monkeypatch)
    with mock_aws():
        sns: SNSClient = boto3.client("sns", region_name="us-east-1")
        sqs: SQSClient = boto3.client("sqs", region_name="us-east-1")
        yield sns, sqs


def test_poison_published_to_moto_reaches_the_queues_subscribed_to_each_topic(
    aws: tuple[SNSClient, SQSClient],
) -> None:
    # GIVEN the four topics (orders FIFO) each with a queue subscribed, raw delivery
    sns, sqs = aws
    topics: dict[str, str] = {}
    queues: dict[str, str] = {}
    for output in TOPIC_OUTPUTS:
        fifo = output == "OrdersTopicArn"
        suffix = ".fifo" if fifo else ""
        name = f"lambdamesh-{output.removesuffix('TopicArn').lower()}"
        attributes = {"FifoTopic": "true"} if fifo else {}
        topics[output] = sns.create_topic(Name=name + suffix, Attributes=attributes)["TopicArn"]
        url = sqs.create_queue(
            QueueName=f"{name}-q{suffix}", Attributes={"FifoQueue": "true"} if fifo else {}
        )["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(
            TopicArn=topics[output],
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        queues[output] = url
    # WHEN five poison events are published
    poison = publish_poison(sns, topics, 5, RUN)
    # THEN SNS accepted each (FIFO ids included) and each queue holds its topic's markers
    for output, url in queues.items():
        received = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        expected = {p.marker for p in poison if p.topic == output}
        found = {p.marker for p in poison for m in received if p.marker in m["Body"]}
        assert found == expected, output
        if output == "OrdersTopicArn":
            assert received[0]["Attributes"]["MessageGroupId"] == f"{RUN}-poison-002"


# --- command: the plan from the arguments, and the report -------------------------------------


def arguments(**given: Any) -> argparse.Namespace:
    return argparse.Namespace(**{"small": False, "orders": None, "clients": None, **given})


def test_the_plan_is_the_full_run_unless_small_is_asked_for() -> None:
    # GIVEN no option, then --small  WHEN the plan is read  THEN the default, then the small one
    assert plan_from(arguments()) == ChaosPlan()
    assert plan_from(arguments(small=True)) == ChaosPlan.small()


def test_orders_and_clients_override_either_plan_and_nothing_else() -> None:
    # GIVEN --small --orders 7 --clients 3  WHEN the plan is read
    plan = plan_from(arguments(small=True, orders=7, clients=3))
    # THEN the small plan with those two figures
    assert plan == replace(ChaosPlan.small(), orders=7, clients=3)
    assert plan_from(arguments(orders=50)) == replace(ChaosPlan(), orders=50)


def chaos_report(checks: list[Check]) -> ChaosReport:
    placement = Placement()
    placement.add(placed("order-1"), 2)
    placement.add(Refusal("k", 400, "invalid_request"), 0)
    return ChaosReport(
        RUN,
        ChaosPlan.small(),
        checks=checks,
        placement=placement,
        faults=Counter({"crash": 3, "duplicate": 5}),
        poison=5,
        redriven=4,
        timings={"total": 61.26, "placing 24 orders": 12.04},
    )


def test_the_report_shows_the_figures_the_table_and_that_every_invariant_holds() -> None:
    # GIVEN a run where every invariant held
    chaos = chaos_report(check_all(fine()))
    # WHEN reported
    lines = report_lines(chaos)
    # THEN the figures, the table and the verdict are printed
    text = "\n".join(lines)
    assert f"run {RUN}: 24 orders, 4 clients, 61 s" in text
    assert "faults injected (from the functions' logs): crash 3, duplicate 5" in text
    assert "503 answers retried by the clients: 2" in text
    assert "poison events published: 5; dead letters redriven: 4" in text
    assert all(line in lines for line in format_table(chaos.checks))
    assert lines[-1] == "all invariants hold"


def test_the_report_says_so_when_an_invariant_does_not_hold() -> None:
    # GIVEN a run that left a message in flight, and one whose checks never ran
    broken = chaos_report(check_all(replace(fine(), in_flight={"q": 1})))
    unchecked = chaos_report([])
    # WHEN reported  THEN both end with the warning; the broken one shows its example
    assert report_lines(broken)[-1] == "SOME INVARIANTS DO NOT HOLD"
    assert any(line.strip() == "q: 1 messages" for line in report_lines(broken))
    assert report_lines(unchecked)[-1] == "SOME INVARIANTS DO NOT HOLD"
    assert "faults injected (from the functions' logs): none logged" in "\n".join(
        report_lines(replace(unchecked, faults=Counter()))
    )


def test_the_report_document_is_json_with_every_figure() -> None:
    # GIVEN a run with a broken invariant
    chaos = chaos_report(check_all(replace(fine(), in_flight={"q": 1})))
    # WHEN turned into a document and through JSON
    document = json.loads(json.dumps(report_document(chaos)))
    # THEN it carries the verdict, each check, the plan and the figures
    assert document["run_id"] == RUN
    assert document["holds"] is False
    assert document["plan"] == asdict(ChaosPlan.small())
    assert len(document["checks"]) == len(CHECKS)
    in_flight = document["checks"][-1]
    assert in_flight["holds"] is False
    assert in_flight["examples"] == ["q: 1 messages"]
    assert document["faults"] == {"crash": 3, "duplicate": 5}
    assert (document["orders_placed"], document["orders_refused"]) == (1, 1)
    assert (document["retried_503"], document["poison"], document["redriven"]) == (2, 5, 4)
    assert document["timings_s"] == {"total": 61.3, "placing 24 orders": 12.0}


def test_restocking_adds_units_and_a_stock_version_as_every_level_change_does(
    aws: tuple[SNSClient, SQSClient],
) -> None:
    # GIVEN a stock table with a versioned item last changed by an order, and an item stocked
    # before versions existed
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.create_table(
        TableName="stock",
        AttributeDefinitions=[{"AttributeName": "product_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "product_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    dynamodb.put_item(
        TableName="stock",
        Item={
            "product_id": {"S": "p-a"},
            "stock": {"N": "3"},
            "stock_version": {"N": "7"},
            "correlation_id": {"S": "trace-order-1"},
        },
    )
    dynamodb.put_item(TableName="stock", Item={"product_id": {"S": "p-b"}, "stock": {"N": "0"}})
    # WHEN both are restocked with ten units
    restock(dynamodb, "stock", ["p-a", "p-b"], 10)
    # THEN each level grew by ten and its version by one (the stream publishes the new level
    # under a new version), and the order's correlation id no longer claims the change
    items = {item["product_id"]["S"]: item for item in dynamodb.scan(TableName="stock")["Items"]}
    assert items["p-a"] == {
        "product_id": {"S": "p-a"},
        "stock": {"N": "13"},
        "stock_version": {"N": "8"},
    }
    assert items["p-b"]["stock"] == {"N": "10"}
    assert items["p-b"]["stock_version"] == {"N": "1"}
