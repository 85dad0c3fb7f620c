"""What a load run found, as text for a person and as one JSON document for a script."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .coldstart import GENERATION_VARIABLE
from .stats import TERMINAL_STATUSES, PhaseFigures


@dataclass(frozen=True)
class LoadReport:
    """A run: how it was set up, and each phase's figures.

    Attributes
    ----------
    run_id
        Prefix of every key and correlation id of the run.
    clients
        Clients placing orders at once.
    orders_per_client
        Orders each client placed per phase.
    functions_made_cold
        Functions whose configuration changed before the cold phase.
    generation
        The ``LAMBDAMESH_LOAD_GENERATION`` they were given.
    phases
        The cold phase, then the warm one.
    """

    run_id: str
    clients: int
    orders_per_client: int
    functions_made_cold: int
    generation: int
    phases: list[PhaseFigures] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Every order of every phase accepted and decided."""
        return bool(self.phases) and all(phase.ok for phase in self.phases)


HEADER = (
    f"  {'phase':<6} {'placed':>9} {'orders/s':>9} {'POST p50':>9} {'p90':>8} {'p99':>8}"
    f" {'max':>8} {'errors':>7}  all decided after"
)


def report_lines(report: LoadReport) -> list[str]:
    """The run as a table, a line of details per phase, and the verdict."""
    return [
        "",
        f"load run {report.run_id}: {report.clients} clients x {report.orders_per_client} orders"
        " per phase",
        f"  cold: {report.functions_made_cold} functions made cold first"
        f" ({GENERATION_VARIABLE}={report.generation}); warm: at once after it",
        "",
        HEADER,
        *(_row(phase) for phase in report.phases),
        "",
        *(_details(phase) for phase in report.phases),
        "",
        "every order was accepted and decided"
        if report.ok
        else "SOME ORDERS WERE REFUSED OR NEVER DECIDED",
    ]


def _row(phase: PhaseFigures) -> str:
    latency = phase.latency
    decided = "not all" if phase.terminal_s is None else f"{phase.terminal_s:.1f} s"
    placed = f"{phase.placed}/{phase.orders}"
    errors = sum(phase.errors.values())
    return (
        f"  {phase.name:<6} {placed:>9} {phase.throughput:>9.2f} {latency.p50:>7.2f} s"
        f" {latency.p90:>6.2f} s {latency.p99:>6.2f} s {latency.max:>6.2f} s {errors:>7}  {decided}"
    )


def _details(phase: PhaseFigures) -> str:
    errors = (
        "errors " + ", ".join(f"{outcome} x{n}" for outcome, n in _by_count(phase.errors))
        if phase.errors
        else "no errors"
    )
    decided = ", ".join(
        f"{n} {status}" + ("" if status in TERMINAL_STATUSES else " (undecided)")
        for status, n in _by_count(phase.decisions)
    )
    return f"  {phase.name}: {errors}; decided: {decided or 'nothing placed'}"


def _by_count(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    """Most first, then by name."""
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def report_document(report: LoadReport) -> dict[str, Any]:
    """The run as JSON data (seconds rounded to milliseconds)."""
    return {
        "run_id": report.run_id,
        "clients": report.clients,
        "orders_per_client": report.orders_per_client,
        "functions_made_cold": report.functions_made_cold,
        "generation": report.generation,
        "ok": report.ok,
        "phases": [_phase_document(phase) for phase in report.phases],
    }


def _phase_document(phase: PhaseFigures) -> dict[str, Any]:
    latency = phase.latency
    return {
        "phase": phase.name,
        "ok": phase.ok,
        "orders": phase.orders,
        "placed": phase.placed,
        "errors": dict(phase.errors),
        "placing_s": round(phase.placing_s, 3),
        "orders_per_s": round(phase.throughput, 3),
        "post_latency_s": {
            "p50": round(latency.p50, 3),
            "p90": round(latency.p90, 3),
            "p99": round(latency.p99, 3),
            "max": round(latency.max, 3),
        },
        "terminal_s": None if phase.terminal_s is None else round(phase.terminal_s, 3),
        "decisions": dict(phase.decisions),
        "undecided": phase.undecided,
    }
