"""The invariants a chaos run must leave intact: pure checks of what the run observed.

Each check reads an :class:`Observation` and answers with a :class:`Check`: whether it holds,
the figures behind it, and a few examples when it does not. Nothing here talks to AWS, so each
check is unit-tested on observations built by hand.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .poison import Poison
from .shoppers import PlacedOrder, Refusal

TERMINAL = frozenset({"confirmed", "cancelled"})
EXAMPLES = 5


@dataclass(frozen=True)
class LedgerEntry:
    """One payments event seen on the payments topic."""

    type: str
    event_id: str
    order_id: str


@dataclass(frozen=True)
class DeadLetterSeen:
    """A message found in a dead-letter queue: its queue, body and recorded reason."""

    queue: str
    body: str
    correlation_id: str | None
    reason: str | None


@dataclass(frozen=True)
class Observation:
    """Everything a run left behind, read once the system is quiet again.

    Attributes
    ----------
    placed, refused
        Orders the API accepted, and those it did not.
    statuses
        Order id → status the orders API reports.
    payments
        Order id → status of its payment record.
    ledger
        Every payments event published during the run (duplicates included).
    reservations
        Order id → status of its reservation record.
    stock_before, stock_after
        Product → units on the shelf before the orders and at the end.
    held_before, held_after
        Product → units held by reservations (status ``reserved``), before and at the end.
    mails
        ``(recipient, subject)`` of every mail sent to the run's users.
    poison
        The poison events published.
    dead_letters
        Every message in the dead-letter queues at the end that belongs to the run.
    in_flight
        Source queue → messages still waiting or being processed at the end.
    """

    placed: Sequence[PlacedOrder]
    refused: Sequence[Refusal]
    statuses: Mapping[str, str]
    payments: Mapping[str, str]
    ledger: Sequence[LedgerEntry]
    reservations: Mapping[str, str]
    stock_before: Mapping[str, int]
    stock_after: Mapping[str, int]
    held_before: Mapping[str, int]
    held_after: Mapping[str, int]
    mails: Sequence[tuple[str, str]]
    poison: Sequence[Poison]
    dead_letters: Sequence[DeadLetterSeen]
    in_flight: Mapping[str, int]


@dataclass(frozen=True)
class Check:
    """One invariant's verdict: ``figures`` says what was counted, ``examples`` what broke it."""

    name: str
    holds: bool
    figures: str
    examples: tuple[str, ...] = field(default=())


def _check(name: str, figures: str, broken: Iterable[str]) -> Check:
    examples = list(broken)
    figures = figures + (f"; {len(examples)} broken" if examples else "")
    return Check(name, not examples, figures, tuple(examples[:EXAMPLES]))


def every_order_accepted(seen: Observation) -> Check:
    """Every order (all valid) was accepted, retries included."""
    return _check(
        "every valid order accepted",
        f"{len(seen.placed)} accepted of {len(seen.placed) + len(seen.refused)}",
        (f"{r.key}: {r.status} {r.code or ''}".strip() for r in seen.refused),
    )


def every_order_terminal(seen: Observation) -> Check:
    """Every accepted order ended confirmed or cancelled."""
    counts = Counter(seen.statuses.get(order.id, "missing") for order in seen.placed)
    figures = ", ".join(f"{counts[s]} {s}" for s in sorted(counts))
    return _check(
        "every order terminal",
        figures or "no orders",
        (
            f"{o.id}: {seen.statuses.get(o.id, 'missing')}"
            for o in seen.placed
            if seen.statuses.get(o.id) not in TERMINAL
        ),
    )


def _distinct_events(seen: Observation, event_type: str) -> dict[str, set[str]]:
    events: dict[str, set[str]] = defaultdict(set)
    for entry in seen.ledger:
        if entry.type == event_type:
            events[entry.order_id].add(entry.event_id)
    return events


def none_charged_twice(seen: Observation) -> Check:
    """No order has two charges: at most one distinct ``payment.processed`` per order."""
    charges = _distinct_events(seen, "payment.processed")
    ours = {order.id for order in seen.placed}
    deliveries = sum(1 for e in seen.ledger if e.type == "payment.processed")
    charged = sum(1 for order_id in ours if charges.get(order_id))
    return _check(
        "no order charged twice",
        f"{charged} charged, {deliveries} payment.processed published",
        (f"{o}: {len(charges[o])} charges" for o in sorted(ours) if len(charges.get(o, ())) > 1),
    )


def cancelled_charges_refunded(seen: Observation) -> Check:
    """A cancelled order's charge is refunded once; a confirmed order's is kept."""
    charges = _distinct_events(seen, "payment.processed")
    refunds = _distinct_events(seen, "payment.refunded")
    broken = []
    refunded = 0
    for order in seen.placed:
        status = seen.statuses.get(order.id)
        charged = bool(charges.get(order.id))
        times = len(refunds.get(order.id, ()))
        if status == "cancelled" and charged:
            refunded += times == 1
            if times != 1 or seen.payments.get(order.id) != "refunded":
                broken.append(
                    f"{order.id}: cancelled, {times} refund(s), "
                    f"payment {seen.payments.get(order.id)}"
                )
        elif times and not charged:
            broken.append(f"{order.id}: {status}, refunded {times} time(s) but never charged")
        elif status == "cancelled" and seen.payments.get(order.id) == "processed":
            broken.append(f"{order.id}: cancelled, charged without payment.processed published")
        elif status == "confirmed" and (
            not charged or times or seen.payments.get(order.id) != "processed"
        ):
            broken.append(
                f"{order.id}: confirmed, payment {seen.payments.get(order.id)}, {times} refund(s)"
            )
    return _check(
        "every cancelled order's charge refunded",
        f"{refunded} refunded, {sum(1 for s in seen.statuses.values() if s == 'confirmed')} "
        "confirmed kept their charge",
        broken,
    )


def stock_conserved(seen: Observation) -> Check:
    """Units are on the shelf or held by a reservation: their sum never changes; confirmed
    orders hold their units and cancelled ones none."""
    broken = []
    products = sorted(set(seen.stock_before) | set(seen.stock_after))
    for product in products:
        before = seen.stock_before.get(product, 0) + seen.held_before.get(product, 0)
        after = seen.stock_after.get(product, 0) + seen.held_after.get(product, 0)
        if before != after:
            broken.append(f"{product}: {before} units before, {after} after")
    for order in seen.placed:
        status = seen.statuses.get(order.id)
        reservation = seen.reservations.get(order.id)
        if status == "confirmed" and reservation != "reserved":
            broken.append(f"{order.id}: confirmed, reservation {reservation}")
        if status == "cancelled" and reservation == "reserved":
            broken.append(f"{order.id}: cancelled, stock still reserved")
    moved = sum(seen.held_after.values()) - sum(seen.held_before.values())
    return _check(
        "stock conserved",
        f"{len(products)} products, {moved} units moved from shelf to confirmed orders",
        broken,
    )


def stock_never_negative(seen: Observation) -> Check:
    """No shelf holds fewer than zero units."""
    return _check(
        "stock never negative",
        f"lowest shelf {min(seen.stock_after.values(), default=0)} units",
        (f"{p}: {units}" for p, units in sorted(seen.stock_after.items()) if units < 0),
    )


def poison_dead_lettered(seen: Observation) -> Check:
    """Every poison event sits in a dead-letter queue with the reason it failed."""
    broken = []
    copies = 0
    for poison in seen.poison:
        found = [letter for letter in seen.dead_letters if poison.marker in letter.body]
        copies += len(found)
        if not found:
            broken.append(f"{poison.marker} ({poison.flaw}): in no dead-letter queue")
        broken += [
            f"{poison.marker} in {letter.queue}: no reason recorded"
            for letter in found
            if not letter.reason
        ]
    return _check(
        "every poison event in a DLQ with its reason",
        f"{len(seen.poison)} published, {copies} dead letters",
        broken,
    )


def only_poison_dead_lettered(seen: Observation) -> Check:
    """After the redrive, the run's dead-letter queues hold nothing but its poison."""
    markers = [poison.marker for poison in seen.poison]
    others = [letter for letter in seen.dead_letters if not any(m in letter.body for m in markers)]
    return _check(
        "nothing else dead-lettered after the redrive",
        f"{len(seen.dead_letters)} dead letters of the run",
        (f"{letter.queue}: {letter.reason or letter.body[:80]}" for letter in others),
    )


def no_mail_twice(seen: Observation) -> Check:
    """No mail went out twice, and every decided order got its one mail."""
    counts = Counter(seen.mails)
    broken = [f"{to}: {subject!r} sent {n} times" for (to, subject), n in counts.items() if n > 1]
    subjects = [subject for _, subject in seen.mails]
    for order in seen.placed:
        if seen.statuses.get(order.id) in TERMINAL and not any(order.id in s for s in subjects):
            broken.append(f"{order.id}: {seen.statuses[order.id]} but no mail")
    return _check("no mail sent twice", f"{len(seen.mails)} mails sent", broken)


def nothing_in_flight(seen: Observation) -> Check:
    """Every source queue is empty: nothing waits, nothing is being processed."""
    return _check(
        "nothing left in flight",
        f"{len(seen.in_flight)} queues, {sum(seen.in_flight.values())} messages",
        (f"{queue}: {n} messages" for queue, n in sorted(seen.in_flight.items()) if n),
    )


CHECKS: tuple[Callable[[Observation], Check], ...] = (
    every_order_accepted,
    every_order_terminal,
    none_charged_twice,
    cancelled_charges_refunded,
    stock_conserved,
    stock_never_negative,
    poison_dead_lettered,
    only_poison_dead_lettered,
    no_mail_twice,
    nothing_in_flight,
)
"""Every invariant, in the order the table shows them."""


def check_all(seen: Observation) -> list[Check]:
    """Every invariant's verdict on ``seen``."""
    return [check(seen) for check in CHECKS]


def format_table(checks: Sequence[Check]) -> list[str]:
    """The verdicts as a text table, with the examples of what broke under each.

    >>> checks = [Check("a", True, "1 order"), Check("b", False, "x", ("e",))]
    >>> print("\\n".join(format_table(checks)))
    invariant  holds  figures
    ---------  -----  -------
    a          yes    1 order
    b          NO     x
                      e
    """
    width = max([len("invariant"), *(len(c.name) for c in checks)])
    lines = [
        f"{'invariant':<{width}}  holds  figures",
        f"{'-' * width}  -----  -------",
    ]
    for check in checks:
        lines.append(f"{check.name:<{width}}  {'yes' if check.holds else 'NO':<5}  {check.figures}")
        lines += [f"{'':<{width + 9}}{example}" for example in check.examples]
    return lines
