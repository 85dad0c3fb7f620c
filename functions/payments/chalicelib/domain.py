"""Payments: one charge per order, one refund per charge, each announced by an event.

Plain Python: the provider, the payments table and the topic are ports that adapters
implement.

Every handler is safe to run again for the same event (redeliveries are normal: the
queue is at-least-once, and the consumer acknowledges an event only after its handler
returned). The payments table holds one item per order, written with a condition, so
whatever runs twice, an order is charged once and refunded once. The event announcing
an outcome is stored with the outcome and republished, with the same event id, when the
event that caused it comes again: if the first run died between writing and publishing,
the announcement still goes out, and a duplicate changes nothing downstream (the saga finds it
recorded in the order's stream; inventory's release is conditional).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol

from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderPlaced,
    OrderVoided,
    PaymentFailed,
    PaymentProcessed,
    PaymentRefunded,
)
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.publishing import EventPublisher, Outbox

from .provider import ChargeResult

SERVICE = "payments"


class PaymentStatus(StrEnum):
    """What happened to an order's payment."""

    PROCESSED = "processed"
    """Charged; refundable."""
    FAILED = "failed"
    """Declined: nothing was charged."""
    REFUNDED = "refunded"
    """Charged, then refunded in full."""
    VOIDED = "voided"
    """Cancelled before any charge: a late ``order.placed`` must not charge it."""


@dataclass(frozen=True)
class Payment:
    """An order's payment record.

    Attributes
    ----------
    outcome_event
        The ``payment.processed`` / ``payment.failed`` event that announced the charge
        (``None`` for a voided order).
    refund_event
        The ``payment.refunded`` event, once refunded.
    """

    order_id: str
    status: PaymentStatus
    amount_cents: int
    currency: str
    payment_id: str | None = None
    decline_reason: str | None = None
    refund_id: str | None = None
    outcome_event: EventEnvelope | None = None
    refund_event: EventEnvelope | None = None
    updated_at: datetime | None = None


class PaymentProvider(Protocol):
    """The card provider (``provider.SimulatedProvider``)."""

    def charge(self, idempotency_key: str, amount_cents: int, currency: str) -> ChargeResult:
        """Charge once per key; the same key always gets the same result."""
        ...

    def refund(self, payment_id: str, amount_cents: int) -> str:
        """Refund a payment in full, once per payment; the refund id."""
        ...


class PaymentRepository(Protocol):
    """Where payments live: one item per order."""

    def get(self, order_id: str) -> Payment | None:
        """The order's payment, or ``None``."""
        ...

    def add(self, payment: Payment) -> bool:
        """Store the order's first payment record; ``False`` if the order has one already."""
        ...

    def refund(self, payment: Payment) -> bool:
        """Turn a processed payment into ``payment`` (refunded); ``False`` if not processed."""
        ...


class PaymentDesk:
    """Charges placed orders and refunds cancelled ones.

    Parameters
    ----------
    provider
        The card provider.
    repository
        The payments table.
    publisher
        The payments topic.
    clock
        Source of time, injectable so tests are deterministic.
    """

    def __init__(
        self,
        provider: PaymentProvider,
        repository: PaymentRepository,
        publisher: EventPublisher,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._provider = provider
        self._repository = repository
        self._outbox = Outbox(publisher)
        self._clock = clock

    def on_order_placed(self, event: EventEnvelope, order: OrderPlaced) -> EventEnvelope | None:
        """Charge the order once; publish ``payment.processed`` or ``payment.failed``.

        Returns the event published (``None`` when the order needed nothing: already
        settled by another event, or cancelled before it could be charged).
        """
        payment = self._repository.get(order.order_id)
        if payment is None:
            payment = self._charge(event, order)
            if self._repository.add(payment):
                return self._outbox.publish_stored(payment.outcome_event)
            # Another delivery recorded the order's payment meanwhile: that one stands.
            payment = self._require(order.order_id)
        return self._outbox.republish_if_caused_by(payment.outcome_event, event)

    def on_order_cancelled(
        self, event: EventEnvelope, cancellation: OrderCancelled
    ) -> EventEnvelope | None:
        """Refund a processed payment once (``payment.refunded``); void an unpaid order.

        Returns the event published, if any.
        """
        return self._undo(event, cancellation.order_id)

    def on_order_voided(self, event: EventEnvelope, voided: OrderVoided) -> EventEnvelope | None:
        """The order never existed: refund what was charged for it, as for a cancellation."""
        return self._undo(event, voided.order_id)

    def _undo(self, event: EventEnvelope, order_id: str) -> EventEnvelope | None:
        payment = self._repository.get(order_id)
        if payment is None:
            # Cancelled before its order.placed was handled (that one may sit in the DLQ
            # and be redriven later): void the order so that it is never charged.
            voided = Payment(
                order_id=order_id,
                status=PaymentStatus.VOIDED,
                amount_cents=0,
                currency="XXX",
                updated_at=self._clock(),
            )
            if self._repository.add(voided):
                return None
            payment = self._require(order_id)
        if payment.status is PaymentStatus.PROCESSED:
            return self._refund(event, payment)
        if payment.status is PaymentStatus.REFUNDED:
            return self._outbox.republish_if_caused_by(payment.refund_event, event)
        return None

    def _charge(self, event: EventEnvelope, order: OrderPlaced) -> Payment:
        # The order id is the provider's idempotency key: a repeated charge is the same one.
        result = self._provider.charge(order.order_id, order.total_cents, order.currency)
        if result.approved and result.payment_id is not None:
            outcome = new_event(
                PaymentProcessed.event_type,
                PaymentProcessed(
                    order_id=order.order_id,
                    payment_id=result.payment_id,
                    amount_cents=order.total_cents,
                    currency=order.currency,
                ),
                source=SERVICE,
                causation_id=event.id,
            )
            status = PaymentStatus.PROCESSED
        else:
            reason = result.decline_reason or "declined"
            outcome = new_event(
                PaymentFailed.event_type,
                PaymentFailed(order_id=order.order_id, reason=reason),
                source=SERVICE,
                causation_id=event.id,
            )
            status = PaymentStatus.FAILED
        return Payment(
            order_id=order.order_id,
            status=status,
            amount_cents=order.total_cents,
            currency=order.currency,
            payment_id=result.payment_id,
            decline_reason=result.decline_reason,
            outcome_event=outcome,
            updated_at=self._clock(),
        )

    def _refund(self, event: EventEnvelope, payment: Payment) -> EventEnvelope | None:
        assert payment.payment_id is not None, "a processed payment has a payment id"
        # The provider first: it refunds once per payment whatever the repeats, while a
        # record written first would claim a refund that a crash could leave undone.
        refund_id = self._provider.refund(payment.payment_id, payment.amount_cents)
        announcement = new_event(
            PaymentRefunded.event_type,
            PaymentRefunded(
                order_id=payment.order_id,
                payment_id=payment.payment_id,
                amount_cents=payment.amount_cents,
            ),
            source=SERVICE,
            causation_id=event.id,
        )
        refunded = replace(
            payment,
            status=PaymentStatus.REFUNDED,
            refund_id=refund_id,
            refund_event=announcement,
            updated_at=self._clock(),
        )
        if self._repository.refund(refunded):
            return self._outbox.publish_stored(announcement)
        current = self._require(payment.order_id)
        return self._outbox.republish_if_caused_by(current.refund_event, event)

    def _require(self, order_id: str) -> Payment:
        payment = self._repository.get(order_id)
        if payment is None:
            raise RuntimeError(f"the payment of order {order_id} vanished while handling it")
        return payment
