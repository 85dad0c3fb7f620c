"""Handling payment and inventory outcomes: the saga's decisions, stored, then published.

Plain Python around :func:`chalicelib.saga.decide`: the store and the topic are ports.

At-least-once, end to end. The consumer marks an outcome event as handled only after
:meth:`OrderSaga.apply` returned, so a crash anywhere in here means the outcome is
delivered again; each step is therefore safe to repeat:

1. the new state and the events it decided are stored together (the decided events wait
   in the order's *outbox*), conditioned on the state's version, so two outcomes for one
   order handled at once cannot both decide — the loser reloads and decides again;
2. the outbox is published (a redelivered outcome finds an outcome already recorded and
   publishes whatever the outbox still holds, with the same event ids: the FIFO topic
   drops a repeat within five minutes and every consumer is idempotent by event id);
3. the outbox is emptied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

from pydantic import BaseModel

from lambdamesh_toolkit.contracts.events import (
    EventData,
    EventEnvelope,
    InventoryRejected,
    InventoryReserved,
    OrderVoided,
    PaymentFailed,
    PaymentProcessed,
)
from lambdamesh_toolkit.events.envelope import derived_event_id, new_event
from lambdamesh_toolkit.events.publishing import Outbox

from .publishing import SOURCE, EventPublisher
from .saga import Decision, Outcome, SagaState, decide

SAVE_ATTEMPTS = 5
"""How often to decide again after losing a race on one order's state."""


@dataclass(frozen=True)
class SagaRecord:
    """An order's saga state and the events it decided but has not yet published."""

    state: SagaState
    outbox: tuple[EventEnvelope, ...] = field(default=())


class SagaRepository(Protocol):
    """Where saga states live (beside their orders)."""

    def load_saga(self, order_id: str) -> SagaRecord | None:
        """The order's saga, or ``None`` when there is no such order."""
        ...

    def save_saga(self, record: SagaRecord) -> bool:
        """Store ``record`` as version ``state.version + 1`` over ``state.version``.

        Returns ``False`` (storing nothing) when the stored version is another.
        """
        ...

    def clear_outbox(self, order_id: str, version: int) -> None:
        """Empty the outbox if the state is still at ``version`` (else leave it)."""
        ...


class SagaContentionError(RuntimeError):
    """The order's state kept changing under us; the outcome will be delivered again."""


OUTCOME_TYPES: tuple[type[EventData], ...] = (
    PaymentProcessed,
    PaymentFailed,
    InventoryReserved,
    InventoryRejected,
)
"""The events :meth:`OrderSaga.apply` accepts."""


class OrderSaga:
    """Takes payment and inventory outcomes in and decides orders.

    Parameters
    ----------
    repository
        Where saga states and their outboxes are stored.
    publisher
        The orders topic (FIFO: every event of an order goes in its order's group).
    """

    def __init__(self, repository: SagaRepository, publisher: EventPublisher) -> None:
        self._repository = repository
        self._outbox = Outbox(publisher)

    def apply(self, envelope: EventEnvelope, data: BaseModel) -> SagaState | None:
        """Apply one outcome event to its order; publish what that decides.

        Safe to call again with the same event after a crash at any point (see the
        module's docstring): the outcome is recorded once, a decision made once and
        published at least once.

        Parameters
        ----------
        envelope
            The outcome event (its id becomes the decision's causation id).
        data
            Its validated ``data``: one of :data:`OUTCOME_TYPES`.

        Returns
        -------
        SagaState | None
            The order's saga after the outcome; ``None`` for an order that does not exist,
            whose outcome is answered with ``order.voided`` (:meth:`_void`).

        Raises
        ------
        TypeError
            For an event the saga does not take.
        SagaContentionError
            When the state changed under us :data:`SAVE_ATTEMPTS` times in a row.
        """
        outcome = _as_outcome(data)
        for _ in range(SAVE_ATTEMPTS):
            record = self._repository.load_saga(outcome.order_id)
            if record is None:
                self._void(envelope, outcome.order_id)
                return None
            state, decisions = decide(record.state, outcome)
            if state == record.state:
                # Nothing new (a redelivery): finish a publication a crash may have cut short.
                self._flush(record)
                return state
            stored = SagaRecord(
                state=state,
                outbox=(*record.outbox, *self._envelopes(decisions, cause=envelope.id)),
            )
            if self._repository.save_saga(stored):
                saved = SagaRecord(state=_next_version(state), outbox=stored.outbox)
                self._flush(saved)
                return saved.state
        raise SagaContentionError(
            f"the saga of order {outcome.order_id} changed {SAVE_ATTEMPTS} times while "
            "deciding; giving the outcome back for redelivery"
        )

    def _void(self, cause: EventEnvelope, order_id: str) -> None:
        """Tell payments and inventory to undo what they did for an order that does not exist.

        Such an outcome answers an orphan ``order.placed`` (one orders never committed): the
        charge or the reservation it caused would otherwise stay for good. There is no order
        to store the announcement with, so its id is derived from the cause's: a redelivery
        publishes the same event again, which the topic and the consumers drop.
        """
        voided = OrderVoided(
            order_id=order_id, reason=f"no order {order_id}; {cause.type} {cause.id} undone"
        )
        envelope = new_event(
            OrderVoided.event_type,
            voided,
            source=SOURCE,
            causation_id=cause.id,
            event_id=derived_event_id(OrderVoided.event_type, cause.id),
        )
        self._outbox.publish([envelope], group_id=order_id)

    def _envelopes(self, decisions: Sequence[Decision], cause: str) -> list[EventEnvelope]:
        return [
            new_event(decision.event_type, decision, source=SOURCE, causation_id=cause)
            for decision in decisions
        ]

    def _flush(self, record: SagaRecord) -> None:
        """Publish the outbox, then empty it."""
        state = record.state
        self._outbox.publish(
            record.outbox,
            group_id=state.order_id,
            then=lambda: self._repository.clear_outbox(state.order_id, state.version),
        )


def _as_outcome(data: BaseModel) -> Outcome:
    if isinstance(data, PaymentProcessed | PaymentFailed | InventoryReserved | InventoryRejected):
        return data
    raise TypeError(f"the order saga does not take {type(data).__name__} events")


def _next_version(state: SagaState) -> SagaState:
    return replace(state, version=state.version + 1)
