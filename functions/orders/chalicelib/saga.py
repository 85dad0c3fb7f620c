"""The order saga: payment and inventory outcomes taken into the orders' event streams.

At least once, end to end. The outcomes queue's consumer acknowledges an outcome only after
:meth:`OrderSaga.take_in` returned, so a crash anywhere in here means the outcome comes again;
it keeps no processed marks, since the order's stream is the record of what was taken in.
Each run reloads the order's stream, decides with the aggregate's rules
(:mod:`chalicelib.order`) and appends what they add after the version it read: the record of
the outcome and, when it decides the order, ``order.confirmed`` or ``order.cancelled``, in one
write. Nothing is published here: the stream publisher publishes what was appended. Of two
outcomes for one order taken in at once, one appends and the other is refused
(``ConcurrencyError``), reloads and decides again from the winner's events
(:func:`~lambdamesh_toolkit.events.store.retry_on_conflict`); a redelivered outcome finds
itself recorded and adds nothing.
"""

from __future__ import annotations

from pydantic import BaseModel

from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    InventoryRejected,
    InventoryReserved,
    PaymentFailed,
    PaymentProcessed,
)
from lambdamesh_toolkit.events.store import retry_on_conflict

from .order import (
    OrderAggregate,
    OrderStreams,
    Outcome,
    rebuild,
    stream_id,
    take_outcome,
    void,
    with_appended,
)

APPEND_ATTEMPTS = 5
"""How often to reload and decide again after losing a race on one order's stream."""


class OrderSaga:
    """Takes payment and inventory outcomes into orders.

    Parameters
    ----------
    streams
        The event store holding the orders' streams.
    """

    def __init__(self, streams: OrderStreams) -> None:
        self._streams = streams

    def take_in(self, envelope: EventEnvelope, data: BaseModel) -> OrderAggregate:
        """Take one outcome event into its order; the order after it.

        An outcome about an order that does not exist is answered with ``order.voided``
        (appended to that order id's stream, so it is published like every other event):
        payments and inventory undo what they did for the orphan ``order.placed``.

        Raises
        ------
        TypeError
            For an event the saga does not take.
        ConcurrencyError
            When the order's stream changed under us :data:`APPEND_ATTEMPTS` times in a row
            (the outcome is given back for redelivery).
        """
        outcome = _as_outcome(data)
        stream = stream_id(outcome.order_id)

        def reload_decide_append() -> OrderAggregate:
            aggregate = rebuild(outcome.order_id, self._streams.read(stream))
            if aggregate.exists:
                added = take_outcome(aggregate, envelope, outcome)
            else:
                added = void(aggregate, envelope)
            if not added:
                return aggregate
            self._streams.append(stream, added, expected_version=aggregate.version)
            return with_appended(aggregate, added)

        return retry_on_conflict(reload_decide_append, attempts=APPEND_ATTEMPTS)


def _as_outcome(data: BaseModel) -> Outcome:
    if isinstance(data, PaymentProcessed | PaymentFailed | InventoryReserved | InventoryRejected):
        return data
    raise TypeError(f"the order saga does not take {type(data).__name__} events")
