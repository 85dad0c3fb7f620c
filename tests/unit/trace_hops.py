"""Hop records as the functions log them, for the tests of ``lambdamesh trace``.

:func:`confirmed_order` is the saga of one order, hop by hop: the request the client made, the
calls it caused, the events and their deliveries (one retried), down to the mail.
"""

from __future__ import annotations

import json
from typing import Any

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
"""The client's span: it logs nothing, so the request is the first hop read."""
START_MS = 1796300000000
CORRELATION_ID = "demo-0123456789ab"


def hop_line(
    service: str,
    kind: str,
    peer: str,
    span: str,
    parent: str | None,
    offset_ms: int,
    duration_ms: float,
    outcome: str = "ok",
    status: str | None = None,
    *,
    start_ms: int = START_MS,
    trace_id: str = TRACE,
    correlation_id: str = CORRELATION_ID,
    **details: Any,
) -> dict[str, Any]:
    """One hop record as a function's JSON log line (Powertools' keys, then the hop's)."""
    line: dict[str, Any] = {
        "level": "INFO",
        "location": "_log:233",
        "message": "hop",
        "timestamp": "2026-12-03 10:13:20,000+0000",
        "service": service,
        "correlation_id": correlation_id,
        "request_id": f"req-{span}",
        "hop": kind,
        "peer": peer,
        "outcome": outcome,
        "start_ms": start_ms + offset_ms,
        "duration_ms": duration_ms,
        "trace_id": trace_id,
        "span_id": span,
    }
    if status is not None:
        line["status"] = status
    if parent is not None:
        line["parent_span_id"] = parent
    line.update(details)
    return line


ORDERS_TABLE = "lambdamesh-orders-OrderEventsTable"
PLACED, OUTCOMES = {"event_type": "order.placed"}, "lambdamesh-orders-outcomes"
#: service, hop, peer, span, parent, offset (ms), duration (ms), outcome, status, details
SAGA: list[tuple[str, str, str, str, str, int, float, str, str | None, dict[str, Any]]] = [
    ("orders", "api", "POST /orders", "a1", CLIENT_SPAN, 0, 84.2, "ok", "201", {}),
    ("orders", "http", "users-api", "b1", "a1", 3, 12.0, "ok", "200", {"method": "GET"}),
    ("users", "api", "GET /users/{user_id}", "b2", "b1", 5, 4.1, "ok", "200", {}),
    ("orders", "rpc.call", "catalog", "c1", "a1", 18, 9.5, "ok", None, {"method": "GetProduct"}),
    ("catalog", "rpc.serve", "GetProduct", "c2", "c1", 20, 3.2, "ok", None, {}),
    ("orders", "stream", ORDERS_TABLE, "d1", "a1", 140, 31.0, "ok", None, {}),
    ("orders", "publish", "lambdamesh-orders.fifo", "d2", "d1", 142, 25.3, "ok", None, PLACED),
    ("payments", "consume", "lambdamesh-payments-orders.fifo", "e1", "d2", 190, 40.1, "ok", None,
     {**PLACED, "attempt": 1}),
    ("payments", "publish", "lambdamesh-payments", "e2", "e1", 200, 11.0, "ok", None,
     {"event_type": "payment.processed"}),
    ("inventory", "consume", "lambdamesh-inventory-orders.fifo", "f1", "d2", 195, 3000.4,
     "failed", "TimeoutError", {**PLACED, "attempt": 1}),
    ("inventory", "retry", "lambdamesh-inventory-orders.fifo", "f2", "d2", 4210, 35.0, "ok", None,
     {**PLACED, "attempt": 2}),
    ("inventory", "publish", "lambdamesh-inventory", "f3", "f2", 4230, 9.9, "ok", None,
     {"event_type": "inventory.reserved"}),
    ("orders", "consume", OUTCOMES, "g1", "e2", 260, 22.0, "ok", None,
     {"event_type": "payment.processed", "attempt": 1}),
    ("orders", "consume", OUTCOMES, "g2", "f3", 4290, 48.5, "ok", None,
     {"event_type": "inventory.reserved", "attempt": 1}),
    ("orders", "stream", ORDERS_TABLE, "h1", "g2", 4400, 20.0, "ok", None, {}),
    ("orders", "publish", "lambdamesh-orders.fifo", "h2", "h1", 4402, 14.0, "ok", None,
     {"event_type": "order.confirmed"}),
    ("notifications", "consume", "lambdamesh-notifications-orders.fifo", "h3", "h2", 4460, 61.7,
     "ok", None, {"event_type": "order.confirmed", "attempt": 1}),
]  # fmt: skip


def confirmed_order(**common: Any) -> list[dict[str, Any]]:
    """The hop records of an order placed, paid, reserved (on its second try) and confirmed:
    :data:`SAGA` as log lines (``common``: what :func:`hop_line` takes besides)."""
    return [
        hop_line(service, kind, peer, span, parent, offset, duration, outcome, status,
                 **details, **common)
        for service, kind, peer, span, parent, offset, duration, outcome, status, details in SAGA
    ]  # fmt: skip


def as_messages(lines: list[dict[str, Any]]) -> list[str]:
    """The lines as CloudWatch Logs holds them: one JSON object per message."""
    return [json.dumps(line, separators=(",", ":")) for line in lines]
