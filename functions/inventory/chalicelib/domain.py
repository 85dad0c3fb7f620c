"""Inventory: reserve an order's stock all or nothing, release it once, never go negative.

Plain Python: the stock and reservations tables and the topic are ports that adapters
implement.

Every handler is safe to run again for the same event (redeliveries are normal: the
queue is at-least-once, and the consumer acknowledges an event only after its handler
returned). The reservations table holds one item per order, written in the same
transaction as the stock it takes or gives back, with conditions, so an order reserves
at most once and releases at most once. The event announcing an outcome is stored with
it and republished, with the same event id, when the event that caused it comes again:
if the first run died between writing and publishing, the announcement still goes out,
and the saga finds a duplicate already recorded in the order's stream.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    InventoryRejected,
    InventoryReleased,
    InventoryReserved,
    OrderPlaced,
)
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.publishing import EventPublisher, Outbox

from .seed_data import SEED_STOCK

SERVICE = "inventory"


class ReservationStatus(StrEnum):
    """Where an order's reservation is."""

    RESERVED = "reserved"
    """Every line's stock is taken."""
    REJECTED = "rejected"
    """A line could not be served; nothing was taken."""
    RELEASED = "released"
    """Taken, then given back (the order was cancelled or its payment failed)."""
    VOIDED = "voided"
    """Released before it was reserved: a late ``order.placed`` must not take stock."""


@dataclass(frozen=True)
class StockLine:
    """Units of one product an order takes."""

    product_id: str
    quantity: int


@dataclass(frozen=True)
class Reservation:
    """An order's reservation record.

    Attributes
    ----------
    outcome_event
        The ``inventory.reserved`` / ``inventory.rejected`` event (``None`` when voided).
    release_event
        The ``inventory.released`` event, once released.
    """

    order_id: str
    status: ReservationStatus
    reservation_id: str
    lines: tuple[StockLine, ...] = ()
    outcome_event: EventEnvelope | None = None
    release_event: EventEnvelope | None = None


@dataclass(frozen=True)
class Shortage:
    """Why a reservation failed: the first product that could not be served.

    ``available`` is ``None`` when the product is not stocked at all.
    """

    product_id: str
    wanted: int
    available: int | None


class ReserveResult(StrEnum):
    """What :meth:`InventoryRepository.reserve` did, when it did not hit a shortage."""

    RESERVED = "reserved"
    ALREADY_RECORDED = "already_recorded"


class InventoryRepository(Protocol):
    """Stock levels and reservations."""

    def get(self, order_id: str) -> Reservation | None:
        """The order's reservation record, or ``None``."""
        ...

    def reserve(self, reservation: Reservation) -> ReserveResult | Shortage:
        """In one transaction: take every line's stock (never below zero) and store the record.

        Returns what happened: reserved; the order already has a record (nothing taken);
        or the first line that could not be served (nothing taken).
        """
        ...

    def add(self, reservation: Reservation) -> bool:
        """Store a record that takes no stock; ``False`` if the order has one already."""
        ...

    def release(self, reservation: Reservation) -> bool:
        """In one transaction: mark the reserved record released and give its stock back.

        ``False`` (nothing changed) when the stored record is not ``reserved``.
        """
        ...

    def add_product_if_absent(self, product_id: str, stock: int) -> bool:
        """Stock a product unless it is stocked already; whether it was added."""
        ...


def stock_lines(lines: Iterable[OrderLine]) -> tuple[StockLine, ...]:
    """The stock an order takes: quantities summed per product, in product id order.

    One entry per product because a DynamoDB transaction may touch an item once; the
    fixed order keeps reasons deterministic (the first short product, by id).
    """
    totals: dict[str, int] = {}
    for line in lines:
        totals[line.product_id] = totals.get(line.product_id, 0) + line.quantity
    return tuple(StockLine(product_id, totals[product_id]) for product_id in sorted(totals))


def rejection_reason(shortage: Shortage) -> str:
    """A person-readable reason for ``inventory.rejected``."""
    if shortage.available is None:
        return f"product {shortage.product_id} is not stocked"
    return (
        f"not enough stock of {shortage.product_id}: "
        f"{shortage.wanted} wanted, {shortage.available} available"
    )


def new_reservation_id() -> str:
    """A fresh reservation id."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class SeedReport:
    """What seeding did: product ids added, product ids already stocked (left alone)."""

    added: tuple[str, ...]
    present: tuple[str, ...]


class Storekeeper:
    """Reserves stock for placed orders and releases it for cancelled or unpaid ones.

    Parameters
    ----------
    repository
        Stock levels and reservations.
    publisher
        The inventory topic.
    new_id
        Source of reservation ids, injectable so tests are deterministic.
    """

    def __init__(
        self,
        repository: InventoryRepository,
        publisher: EventPublisher,
        *,
        new_id: Callable[[], str] = new_reservation_id,
    ) -> None:
        self._repository = repository
        self._outbox = Outbox(publisher)
        self._new_id = new_id

    def on_order_placed(self, event: EventEnvelope, order: OrderPlaced) -> EventEnvelope | None:
        """Reserve every line or none; publish ``inventory.reserved`` or ``inventory.rejected``.

        Returns the event published (``None`` when the order needed nothing: settled by
        an earlier delivery of another event, or released before it was reserved).
        """
        # No read first: the reservation's condition says whether the order has a record
        # (then nothing is taken), so the common case is one transaction.
        reservation_id = self._new_id()
        reserved = Reservation(
            order_id=order.order_id,
            status=ReservationStatus.RESERVED,
            reservation_id=reservation_id,
            lines=stock_lines(order.lines),
            outcome_event=new_event(
                InventoryReserved.event_type,
                InventoryReserved(order_id=order.order_id, reservation_id=reservation_id),
                source=SERVICE,
                causation_id=event.id,
            ),
        )
        result = self._repository.reserve(reserved)
        if result is ReserveResult.RESERVED:
            return self._outbox.publish_stored(reserved.outcome_event)
        if isinstance(result, Shortage):
            rejected = self._rejection(event, reserved, result)
            if self._repository.add(rejected):
                return self._outbox.publish_stored(rejected.outcome_event)
        # The order has a record already (an earlier delivery, or a void): that record stands.
        return self._outbox.republish_if_caused_by(
            self._require(order.order_id).outcome_event, event
        )

    def release(self, event: EventEnvelope, order_id: str) -> EventEnvelope | None:
        """Give an order's reserved stock back once; publish ``inventory.released``.

        Called for ``order.cancelled`` and ``payment.failed`` alike: whichever comes
        first releases, the other finds nothing left to do. Returns the event published.
        """
        existing = self._repository.get(order_id)
        if existing is None:
            # Released before its order.placed was handled (payment can fail before
            # inventory sees the order): void it so that it never takes stock.
            voided = Reservation(
                order_id=order_id, status=ReservationStatus.VOIDED, reservation_id=self._new_id()
            )
            if self._repository.add(voided):
                return None
            existing = self._require(order_id)
        if existing.status is ReservationStatus.RESERVED:
            released = replace(
                existing,
                status=ReservationStatus.RELEASED,
                release_event=new_event(
                    InventoryReleased.event_type,
                    InventoryReleased(order_id=order_id, reservation_id=existing.reservation_id),
                    source=SERVICE,
                    causation_id=event.id,
                ),
            )
            if self._repository.release(released):
                return self._outbox.publish_stored(released.release_event)
            existing = self._require(order_id)
        if existing.status is ReservationStatus.RELEASED:
            return self._outbox.republish_if_caused_by(existing.release_event, event)
        return None

    def seed(self, levels: Iterable[tuple[str, int]] = SEED_STOCK) -> SeedReport:
        """Stock the products that are missing; never overwrite a level (orders moved it)."""
        added: list[str] = []
        present: list[str] = []
        for product_id, stock in levels:
            stocked = self._repository.add_product_if_absent(product_id, stock)
            (added if stocked else present).append(product_id)
        return SeedReport(added=tuple(added), present=tuple(present))

    def _rejection(
        self, event: EventEnvelope, reserved: Reservation, shortage: Shortage
    ) -> Reservation:
        return replace(
            reserved,
            status=ReservationStatus.REJECTED,
            outcome_event=new_event(
                InventoryRejected.event_type,
                InventoryRejected(
                    order_id=reserved.order_id,
                    reason=rejection_reason(shortage),
                    product_id=shortage.product_id,
                ),
                source=SERVICE,
                causation_id=event.id,
            ),
        )

    def _require(self, order_id: str) -> Reservation:
        reservation = self._repository.get(order_id)
        if reservation is None:
            raise RuntimeError(f"the reservation of order {order_id} vanished while handling it")
        return reservation
