"""The order saga's decisions, as pure functions.

An order is placed; payments and inventory each answer with one outcome. The saga
decides:

- payment processed AND inventory reserved → the order is confirmed (``order.confirmed``);
- payment failed OR inventory rejected → the order is cancelled with the reason
  (``order.cancelled``), whichever failure comes first; payments and inventory compensate
  (refund, release) when they see ``order.cancelled``;
- an outcome arriving after the decision is recorded and changes nothing else;
- an outcome already recorded (a duplicate, however it was delivered) changes nothing.

No I/O here: :func:`decide` takes the state and one outcome and returns the new state
and the events to publish. Storing the state (with a version, so two outcomes handled at
once cannot both decide) and publishing are the caller's business (``outcomes.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from lambdamesh_toolkit.contracts.events import (
    InventoryRejected,
    InventoryReserved,
    OrderCancelled,
    OrderConfirmed,
    PaymentFailed,
    PaymentProcessed,
)
from lambdamesh_toolkit.contracts.orders import MAX_CANCEL_REASON_LENGTH, OrderStatus

type Outcome = PaymentProcessed | PaymentFailed | InventoryReserved | InventoryRejected
"""The events the saga listens to."""
type Decision = OrderConfirmed | OrderCancelled
"""The events the saga publishes."""


class PaymentOutcome(StrEnum):
    """What payments answered for the order."""

    PROCESSED = "processed"
    FAILED = "failed"


class InventoryOutcome(StrEnum):
    """What inventory answered for the order."""

    RESERVED = "reserved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class SagaState:
    """Where one order's saga is.

    Attributes
    ----------
    order_id, user_id
        The order and its customer.
    status
        ``placed`` until decided, then ``confirmed`` or ``cancelled`` for good.
    payment, inventory
        The outcome each side answered, ``None`` while it has not.
    cancel_reason
        Why the order was cancelled (``None`` unless it was).
    version
        How many times the stored state has changed: the store writes a new state only
        over the version it was decided from.
    """

    order_id: str
    user_id: str
    status: OrderStatus = OrderStatus.PLACED
    payment: PaymentOutcome | None = None
    inventory: InventoryOutcome | None = None
    cancel_reason: str | None = None
    version: int = 0

    @property
    def decided(self) -> bool:
        """Whether the order is confirmed or cancelled (a decision is never undone)."""
        return self.status is not OrderStatus.PLACED


class WrongOrderError(ValueError):
    """An outcome was given to the saga of another order."""


def decide(state: SagaState, outcome: Outcome) -> tuple[SagaState, list[Decision]]:
    """Apply one outcome to an order's saga.

    Parameters
    ----------
    state
        The saga as stored.
    outcome
        A ``payment.processed``, ``payment.failed``, ``inventory.reserved`` or
        ``inventory.rejected`` event's data.

    Returns
    -------
    tuple[SagaState, list[Decision]]
        The new state (``state`` itself when the outcome changes nothing: a duplicate)
        and the events to publish: ``order.confirmed`` or ``order.cancelled`` when this
        outcome decides the order, else none. ``version`` is left as it was.

    Raises
    ------
    WrongOrderError
        When the outcome is about another order.
    """
    if outcome.order_id != state.order_id:
        raise WrongOrderError(
            f"outcome for order {outcome.order_id} given to the saga of {state.order_id}"
        )
    recorded = _record(state, outcome)
    if recorded == state or recorded.decided:
        # A duplicate, or a late outcome once decided: recorded at most, nothing to say.
        return recorded, []
    return _conclude(recorded, outcome)


def _record(state: SagaState, outcome: Outcome) -> SagaState:
    """``state`` with the outcome's side filled in, unless that side has answered already."""
    match outcome:
        case PaymentProcessed() if state.payment is None:
            return replace(state, payment=PaymentOutcome.PROCESSED)
        case PaymentFailed() if state.payment is None:
            return replace(state, payment=PaymentOutcome.FAILED)
        case InventoryReserved() if state.inventory is None:
            return replace(state, inventory=InventoryOutcome.RESERVED)
        case InventoryRejected() if state.inventory is None:
            return replace(state, inventory=InventoryOutcome.REJECTED)
    # Each side answers once per order (payments charges once, inventory reserves once);
    # a second answer from the same side is a redelivery and the first one stands.
    return state


def _conclude(state: SagaState, outcome: Outcome) -> tuple[SagaState, list[Decision]]:
    """Decide a placed order whose state has just taken ``outcome`` in."""
    reason = failure_reason(outcome)
    if reason is not None:
        cancelled = replace(state, status=OrderStatus.CANCELLED, cancel_reason=reason)
        return cancelled, [
            OrderCancelled(order_id=state.order_id, user_id=state.user_id, reason=reason)
        ]
    if state.payment is PaymentOutcome.PROCESSED and state.inventory is InventoryOutcome.RESERVED:
        confirmed = replace(state, status=OrderStatus.CONFIRMED)
        return confirmed, [OrderConfirmed(order_id=state.order_id, user_id=state.user_id)]
    # One side has answered well, the other not yet: wait for it.
    return state, []


def failure_reason(outcome: Outcome) -> str | None:
    """Why ``outcome`` cancels its order, in words for the customer; ``None`` if it does not."""
    match outcome:
        case PaymentFailed(reason=reason):
            text = f"payment failed: {reason}"
        case InventoryRejected(reason=reason, product_id=product_id):
            text = f"product {product_id} cannot be reserved: {reason}"
        case _:
            return None
    return _clip(text)


def _clip(text: str) -> str:
    """``text`` cut to the length the ``Order`` contract allows for a reason."""
    if len(text) <= MAX_CANCEL_REASON_LENGTH:
        return text
    return text[: MAX_CANCEL_REASON_LENGTH - 1] + "…"
