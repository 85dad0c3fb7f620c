"""A phase's figures from its answers and its orders' decisions: plain arithmetic, no I/O.

- **throughput**: orders accepted (``201``) per second, from the first ``POST`` sent to the last
  answer received;
- **latency**: every ``POST /orders``, whatever its answer (a ``503`` after 10 s is 10 s a
  person waited), as nearest-rank percentiles (p50, p90, p99) and the maximum;
- **errors**: every order not accepted, by status (``503``, ``504``, ...) or by what happened
  instead of an answer (``timeout``, ``connection error``);
- **time until terminal**: from the first ``POST`` of the phase until the last of its accepted
  orders was decided (``confirmed`` or ``cancelled``), as the decision event's own time says;
  ``None`` when some order was never decided.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .burst import PostResult

TERMINAL_STATUSES = frozenset({"confirmed", "cancelled"})
"""The statuses of a decided order."""


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest sample with at least ``fraction`` of all
    samples at or below it.

    >>> percentile([4.0, 1.0, 3.0, 2.0], 0.5), percentile([4.0, 1.0, 3.0, 2.0], 0.99)
    (2.0, 4.0)
    >>> percentile([float(n) for n in range(1, 201)], 0.99)
    198.0

    Raises
    ------
    ValueError
        For no samples, or a fraction outside ``(0, 1]``.
    """
    if not samples:
        raise ValueError("no samples")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@dataclass(frozen=True)
class Latency:
    """Percentiles of ``POST /orders``, in seconds."""

    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Latency:
        """The latency of ``samples`` (all zero for none)."""
        if not samples:
            return cls(0.0, 0.0, 0.0, 0.0)
        return cls(
            percentile(samples, 0.5),
            percentile(samples, 0.9),
            percentile(samples, 0.99),
            max(samples),
        )


@dataclass(frozen=True)
class Decision:
    """What became of an accepted order: its status, and when it was decided (epoch seconds;
    ``None`` when undecided or unknown)."""

    status: str
    decided_at: float | None = None

    @property
    def terminal(self) -> bool:
        """Whether the order is decided."""
        return self.status in TERMINAL_STATUSES


@dataclass(frozen=True)
class PhaseFigures:
    """What one phase measured.

    Attributes
    ----------
    name
        ``cold`` or ``warm``.
    orders
        Orders sent (one ``POST`` each).
    placed
        Orders accepted.
    errors
        Outcome → orders not accepted with it (:attr:`PostResult.outcome`).
    placing_s
        From the first ``POST`` sent to the last answer.
    latency
        ``POST /orders`` latency, every answer included.
    terminal_s
        From the first ``POST`` until every accepted order was decided; ``None`` if one never was.
    decisions
        Status → accepted orders with it at the end (``confirmed``, ``cancelled``, or
        whatever an undecided order showed, e.g. ``placed``).
    """

    name: str
    orders: int
    placed: int
    errors: Mapping[str, int] = field(default_factory=dict)
    placing_s: float = 0.0
    latency: Latency = Latency(0.0, 0.0, 0.0, 0.0)
    terminal_s: float | None = None
    decisions: Mapping[str, int] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Orders accepted per second of placing."""
        return self.placed / self.placing_s if self.placing_s > 0 else 0.0

    @property
    def undecided(self) -> int:
        """Accepted orders not decided at the end."""
        return sum(n for status, n in self.decisions.items() if status not in TERMINAL_STATUSES)

    @property
    def ok(self) -> bool:
        """Every order accepted, and every one decided."""
        return self.placed == self.orders and not self.errors and self.terminal_s is not None


def summarise(
    name: str,
    results: Sequence[PostResult],
    decisions: Mapping[str, Decision],
    *,
    seen_decided_at: float | None = None,
) -> PhaseFigures:
    """The figures of a phase.

    Parameters
    ----------
    name
        The phase.
    results
        Every ``POST`` of the phase.
    decisions
        Order id → what became of it, for the accepted orders.
    seen_decided_at
        When every order was seen decided (epoch seconds): the end of the phase when a
        decision's own time is unknown.
    """
    if not results:
        return PhaseFigures(name, 0, 0)
    accepted = [result for result in results if result.accepted]
    first = min(result.started for result in results)
    last_answer = max(result.answered for result in results)
    statuses: Counter[str] = Counter()
    for result in accepted:
        statuses[decisions.get(result.order_id or "", Decision("unknown")).status] += 1
    return PhaseFigures(
        name=name,
        orders=len(results),
        placed=len(accepted),
        errors=dict(Counter(result.outcome for result in results if not result.accepted)),
        placing_s=last_answer - first,
        latency=Latency.of([result.elapsed_s for result in results]),
        terminal_s=_terminal_s(accepted, decisions, first, seen_decided_at),
        decisions=dict(statuses),
    )


def _terminal_s(
    accepted: Sequence[PostResult],
    decisions: Mapping[str, Decision],
    first: float,
    seen_decided_at: float | None,
) -> float | None:
    """Seconds from ``first`` until the last accepted order was decided (``None``: not all were)."""
    moments: list[float] = []
    for result in accepted:
        decision = decisions.get(result.order_id or "")
        if decision is None or not decision.terminal:
            return None
        if decision.decided_at is None:
            if seen_decided_at is None:
                return None
            moments.append(seen_decided_at)
        else:
            moments.append(decision.decided_at)
    return max(moments, default=first) - first
