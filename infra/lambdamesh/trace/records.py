"""Hops as read back: a function's hop record (a JSON log line), or a letter in a DLQ.

Pure functions of what was read; nothing here calls AWS.

>>> line = ('{"level": "INFO", "message": "hop", "service": "users", "correlation_id": "c-1",'
...         ' "hop": "api", "peer": "POST /users", "outcome": "ok", "status": "201",'
...         ' "start_ms": 1767225600000, "duration_ms": 12.5, "trace_id": "4bf92f35",'
...         ' "span_id": "00f067aa0ba902b7"}')
>>> hop = hop_from_log_message(line, "users")
>>> hop.kind, hop.service, hop.peer, hop.outcome, hop.status, hop.parent_span_id
('api', 'users', 'POST /users', 'ok', '201', None)
>>> hop_from_log_message('{"message": "order placed"}', "orders") is None
True
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from lambdamesh_toolkit.hops import FAILED, HOP_MESSAGE
from lambdamesh_toolkit.trace_context import parse_traceparent

if TYPE_CHECKING:
    from lambdamesh.dlq.letters import DeadLetter

DEAD_LETTERED: Final = "dlq"
"""The kind of a hop read from a dead-letter queue: a message that waits there."""

DETAIL_KEYS: Final = ("method", "attempt", "event_type", "event_id", "message_id")
"""The keys of a hop record kept as its details (what the tree shows beside the hop)."""

REASON_CHARS: Final = 120
"""How much of a dead letter's reason a hop keeps."""


@dataclass(frozen=True)
class HopRecord:
    """One hop of a request.

    Attributes
    ----------
    kind
        ``api``, ``http``, ``rpc.call``, ``rpc.serve``, ``publish``, ``consume``, ``retry``,
        ``dead_letter``, ``stream`` (:mod:`lambdamesh_toolkit.hops`), or ``dlq`` for a message
        waiting in a dead-letter queue.
    service
        The service whose function logged it (for ``dlq``, the one whose queue it left).
    peer
        What it reached or entered: a dependency, a route, a method, a topic, a queue.
    start_ms
        When it started (epoch milliseconds).
    duration_ms
        How long it took; ``None`` when nobody timed it (a message waiting in a DLQ).
    outcome
        ``ok``, ``refused`` or ``failed``.
    status
        The HTTP status, error code, exception name or reason, when there is one.
    trace_id
        Its W3C trace; ``None`` when it names none (a dead letter without trace context).
    span_id
        Its own span.
    parent_span_id
        The span that caused it; ``None`` for the first hop of a trace.
    details
        What else its record said of it (:data:`DETAIL_KEYS`).
    """

    kind: str
    service: str
    peer: str
    start_ms: int
    duration_ms: float | None
    outcome: str
    status: str | None
    trace_id: str | None
    span_id: str
    parent_span_id: str | None
    details: dict[str, Any] = field(default_factory=dict)


def log_document(message: str) -> dict[str, Any] | None:
    """A log message's JSON object; ``None`` for a line that holds none (``START``, a print).

    Whatever the runtime put before the object (a level, a time, a request id) is skipped.

    >>> log_document('[INFO]\\t2026-01-01T00:00:00Z\\treq-1\\t{"message": "hop"}')
    {'message': 'hop'}
    >>> log_document("START RequestId: req-1") is None
    True
    """
    start = message.find("{")
    if start < 0:
        return None
    try:
        document = json.loads(message[start:])
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def hop_from_log_message(message: str, service: str) -> HopRecord | None:
    """The hop a log message records; ``None`` for any other line.

    Parameters
    ----------
    message
        The CloudWatch Logs event's message.
    service
        The service whose log group it was read from: the hop's service when the line does
        not name its own.
    """
    document = log_document(message)
    if document is None or document.get("message") != HOP_MESSAGE:
        return None
    return hop_from_document(document, service)


def hop_from_document(document: dict[str, Any], service: str) -> HopRecord | None:
    """The hop of a hop record's JSON object; ``None`` when a key it needs is missing."""
    kind, span_id, start_ms = document.get("hop"), document.get("span_id"), document.get("start_ms")
    if not isinstance(kind, str) or not isinstance(span_id, str) or type(start_ms) is not int:
        return None
    duration = document.get("duration_ms")
    return HopRecord(
        kind=kind,
        service=_text(document.get("service")) or service,
        peer=_text(document.get("peer")) or "?",
        start_ms=start_ms,
        duration_ms=float(duration) if isinstance(duration, int | float) else None,
        outcome=_text(document.get("outcome")) or "ok",
        status=_text(document.get("status")),
        trace_id=_text(document.get("trace_id")),
        span_id=span_id,
        parent_span_id=_text(document.get("parent_span_id")),
        details={key: document[key] for key in DETAIL_KEYS if document.get(key) is not None},
    )


def hop_from_dead_letter(letter: DeadLetter, queue: str, prefix: str) -> HopRecord:
    """A message waiting in dead-letter queue ``queue``, as the hop its failure ended in.

    Its parent is the span its ``traceparent`` attribute names: the publish (when SQS moved it
    after its last receive) or the consumer's ``dead_letter`` hop (when it was moved at once).
    Its service is the consumer whose queue it left (``<prefix>-<service>-...-dlq``), its
    status the last reason recorded for it, masked as ``dlq show`` masks it.
    """
    span = parse_traceparent(letter.traceparent)
    reason = letter.last_error.reason if letter.last_error is not None else None
    details: dict[str, Any] = {"attempt": letter.receive_count, "message_id": letter.message_id}
    if letter.event_type:
        details["event_type"] = letter.event_type
    return HopRecord(
        kind=DEAD_LETTERED,
        service=queue.removeprefix(f"{prefix}-").split("-", 1)[0],
        peer=queue,
        start_ms=_epoch_ms(letter.sent_at),
        duration_ms=None,
        outcome=FAILED,
        status=(reason or "waiting")[:REASON_CHARS],
        trace_id=None if span is None else span.trace_id,
        span_id=f"dlq-{letter.message_id}",
        parent_span_id=None if span is None else span.span_id,
        details=details,
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _epoch_ms(iso: str | None) -> int:
    if not iso:
        return 0
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return 0
