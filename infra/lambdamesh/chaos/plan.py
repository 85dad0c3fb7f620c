"""What a chaos run does: how many orders, how many clients, which faults and how often."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChaosPlan:
    """The size of a run and the faults switched on during it.

    Attributes
    ----------
    orders
        Orders placed.
    clients
        Clients placing them at the same time.
    users
        Users who sign up first and share the orders.
    payment_failure_rate
        Share of charges the simulated card provider declines (``PAYMENT_FAILURE_RATE``).
    crash_rate
        Share of event batches whose function process is killed half-way (every consumer).
    slow_rate
        Share of inventory's event batches that run past the function's timeout.
    duplicate_rate
        Share of published events published twice (every publisher).
    outage_s
        How long the users API answers 503, from the start of the orders.
    poison
        Poison events published while the orders run.
    scarce_share
        Share of orders with a line of the scarcest product (which inventory soon refuses).
    faulty_settle_s
        How long the faults stay on after the last order was answered, while the saga works.
    """

    orders: int = 1000
    clients: int = 8
    users: int = 20
    payment_failure_rate: float = 0.1
    crash_rate: float = 0.05
    slow_rate: float = 0.02
    duplicate_rate: float = 0.1
    outage_s: float = 10.0
    poison: int = 10
    scarce_share: float = 0.05
    faulty_settle_s: float = 90.0

    @classmethod
    def small(cls) -> ChaosPlan:
        """The run inside ``make test``: every fault, a few dozen orders, fault rates raised."""
        return cls(
            orders=24,
            clients=4,
            users=4,
            payment_failure_rate=0.2,
            crash_rate=0.2,
            slow_rate=0.1,
            duplicate_rate=0.3,
            outage_s=6.0,
            poison=5,
            scarce_share=0.1,
            faulty_settle_s=20.0,
        )
