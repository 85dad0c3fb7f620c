"""A simulated card provider: the stand-in for Stripe, Adyen and their like.

It behaves like a real provider called with an idempotency key: the same key always gets
the same answer and the same payment id, so a charge repeated after a crash (the event
redelivered) is the same charge, not a second one. That is why the random failures are
drawn from a hash of the key instead of a random generator.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass

_PAYMENT_NAMESPACE = uuid.UUID("7d0f64a4-2f7c-4f4e-9c4b-51a3f1f0a8d1")
_REFUND_NAMESPACE = uuid.UUID("0c9f7e0e-57a6-4e0b-b0f3-2f3f5c1f6a11")


def stable_draw(key: str) -> float:
    """A number in ``[0, 1)`` fixed by ``key`` and spread evenly over keys."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class ChargeResult:
    """The provider's answer to a charge: a payment id when approved, else the reason."""

    approved: bool
    payment_id: str | None = None
    decline_reason: str | None = None


class SimulatedProvider:
    """Approves or declines charges by simple, configurable rules.

    Parameters
    ----------
    decline_above_cents
        Charges above this amount are declined (a card limit).
    failure_rate
        The share of the other charges declined, 0 (never) to 1 (always).
    draw
        The number in ``[0, 1)`` a charge's key draws; compared with ``failure_rate``.
    """

    def __init__(
        self,
        *,
        decline_above_cents: int,
        failure_rate: float,
        draw: Callable[[str], float] = stable_draw,
    ) -> None:
        self._limit = decline_above_cents
        self._failure_rate = failure_rate
        self._draw = draw

    def charge(self, idempotency_key: str, amount_cents: int, currency: str) -> ChargeResult:
        """Charge ``amount_cents``; the same key always gets the same result."""
        if amount_cents > self._limit:
            return ChargeResult(
                approved=False,
                decline_reason=(
                    f"amount {amount_cents} {currency} cents exceeds the limit of {self._limit}"
                ),
            )
        if self._draw(idempotency_key) < self._failure_rate:
            return ChargeResult(approved=False, decline_reason="card declined by the issuer")
        return ChargeResult(
            approved=True, payment_id=str(uuid.uuid5(_PAYMENT_NAMESPACE, idempotency_key))
        )

    def refund(self, payment_id: str, amount_cents: int) -> str:
        """Refund a payment in full; the refund id (the same for every repeat)."""
        return str(uuid.uuid5(_REFUND_NAMESPACE, f"{payment_id}:{amount_cents}"))
