"""Hop records: one JSON log line at the end of every hop a request makes.

A hop is one crossing of a boundary, timed from its start to its end. Each is a span of the
W3C trace context (:mod:`lambdamesh_toolkit.trace_context`): while it runs it is the current
span, so the ``traceparent`` sent by whatever it calls names it as the parent, and the line
it leaves says which span it was and which span called it. ``lambdamesh trace`` rebuilds a
request's tree from these lines alone.

=============== ========================================================= ======================
``hop``         where it is logged                                        ``peer``
=============== ========================================================= ======================
``api``         ``http_api``: a request API Gateway handed to a route     the route
``http``        ``http_client``: a call to another service's API          the dependency
``rpc.call``    ``rpc``: a call by direct Lambda invocation               the dependency
``rpc.serve``   ``rpc``: a call served                                    the method
``publish``     ``events.publishing``: an event published to SNS (or     the topic
                ``events.change_capture``: one of a batch sent together)
``consume``     ``events.consuming``: an SQS record's first delivery      the queue
``retry``       a later attempt: a call retried (``resilience``), or a    the dependency or
                record delivered again (``attempt``: its receive count)   the queue
``dead_letter`` ``events.consuming``: a record sent to its DLQ at once    the queue it left
``stream``      ``events.change_capture``: a DynamoDB stream record       the table
=============== ========================================================= ======================

The line is the function's own JSON log line (``service``, ``correlation_id``, ``request_id``
and ``timestamp`` come with it) with ``message`` ``hop`` and these keys:

``hop``, ``peer``, ``outcome`` (``ok``; ``refused``: the other side said no, a 4xx, a typed
error, a message no retry can fix; ``failed``: a 5xx, an exception, a timeout), ``status``
(the HTTP status, error code or exception name, when there is one), ``start_ms`` (epoch
milliseconds), ``duration_ms``, ``trace_id``, ``span_id``, ``parent_span_id`` (absent for the
first hop of a trace) and the hop's own details (``method``, ``attempt``, ``event_type``, …).
No hop writes a body, a message or a reason: nothing personal goes into these lines.

>>> from lambdamesh_toolkit.trace_context import current_span
>>> with hop(HTTP, "users-api", parent=None) as call:
...     inside = current_span()
...     call.answered(404)
>>> inside == call.span, call.outcome, call.status
(True, 'refused', '404')
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, Final

from lambdamesh_toolkit.errors import ServiceError
from lambdamesh_toolkit.logging import invocation_logger
from lambdamesh_toolkit.trace_context import (
    SpanContext,
    current_span,
    parse_traceparent,
    using_span,
)

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

HOP_MESSAGE: Final = "hop"
"""The ``message`` of every hop record."""

API: Final = "api"
HTTP: Final = "http"
RPC_CALL: Final = "rpc.call"
RPC_SERVE: Final = "rpc.serve"
PUBLISH: Final = "publish"
CONSUME: Final = "consume"
RETRY: Final = "retry"
DEAD_LETTER: Final = "dead_letter"
STREAM: Final = "stream"
KINDS: Final = (API, HTTP, RPC_CALL, RPC_SERVE, PUBLISH, CONSUME, RETRY, DEAD_LETTER, STREAM)

OK: Final = "ok"
REFUSED: Final = "refused"
FAILED: Final = "failed"


class Hop:
    """One hop under way; what the ``with`` block of :func:`hop` is given.

    The block may say how the hop ended (:meth:`answered`, :meth:`refused`, :meth:`failed`,
    :meth:`ok`) and add details (:meth:`note`); otherwise the hop is ``ok`` when the block
    returns and ``failed`` (or ``refused``, for a typed 4xx error) when it raises.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    peer : str
        What the hop reached or entered.
    span : SpanContext
        Its span: the current span while the block runs.
    parent_span_id : str | None
        The span that caused it; ``None`` for the first hop of a trace.
    outcome, status : str | None
        How it ended, once known.
    details : dict[str, Any]
        More keys for its line.
    """

    __slots__ = ("details", "kind", "outcome", "parent_span_id", "peer", "span", "status")

    def __init__(self, kind: str, peer: str, span: SpanContext, parent_span_id: str | None) -> None:
        self.kind = kind
        self.peer = peer
        self.span = span
        self.parent_span_id = parent_span_id
        self.outcome: str | None = None
        self.status: str | None = None
        self.details: dict[str, Any] = {}

    def ok(self, status: str | None = None) -> None:
        """It succeeded (``status``: how, say ``duplicate``)."""
        self.outcome, self.status = OK, status

    def refused(self, status: str) -> None:
        """The other side said no, or the input can never be handled."""
        self.outcome, self.status = REFUSED, status

    def failed(self, status: str) -> None:
        """It failed: an error, a timeout, a 5xx."""
        self.outcome, self.status = FAILED, status

    def answered(self, status_code: int) -> None:
        """It ended with HTTP ``status_code``: ok below 400, refused below 500, else failed."""
        outcome = OK if status_code < 400 else REFUSED if status_code < 500 else FAILED
        self.outcome, self.status = outcome, str(status_code)

    def failed_with(self, error: BaseException) -> None:
        """It ended with ``error``: a typed error's code (refused under 500), else its class."""
        if isinstance(error, ServiceError):
            (self.refused if error.status < 500 else self.failed)(error.code)
        else:
            self.failed(type(error).__name__)

    def note(self, **details: Any) -> None:
        """Add ``details`` to the line (no personal data: ids, types, counts)."""
        self.details.update(details)


@contextmanager
def hop(
    kind: str,
    peer: str,
    *,
    parent: SpanContext | None,
    logger: Logger | None = None,
    **details: Any,
) -> Iterator[Hop]:
    """Run the ``with`` block as a hop, a child span of ``parent``; log its record at the end.

    Parameters
    ----------
    kind : str
        One of :data:`KINDS`.
    peer : str
        What it reaches or enters (see the table above).
    parent : SpanContext | None
        The span that caused it; ``None`` starts a new trace.
    logger : Logger | None
        Where its line goes; by default the logger the invocation was bound to
        (:func:`~lambdamesh_toolkit.logging.invocation_logger`). Without either, no line is
        written (say, in the CLI), but the hop is still the current span.
    **details : Any
        More keys for its line.

    Yields
    ------
    Hop
        The hop; its span is the current span until the block ends.
    """
    span = parent.child() if parent is not None else SpanContext.new_trace()
    current = Hop(kind, peer, span, None if parent is None else parent.span_id)
    current.details.update(details)
    start_ms = time.time_ns() // 1_000_000
    started = time.perf_counter()
    try:
        with using_span(span):
            yield current
    except Exception as error:
        if current.outcome is None:
            current.failed_with(error)
        raise
    finally:
        _log(logger or invocation_logger(), current, start_ms, time.perf_counter() - started)


def outbound_hop(kind: str, peer: str, **details: Any) -> AbstractContextManager[Hop]:
    """A hop that the current one causes (a call, a publish, a retry): :func:`hop` with the
    current span as parent (a new trace outside any hop), logged on the invocation's logger.

    Returns
    -------
    AbstractContextManager[Hop]
        As :func:`hop`.
    """
    return hop(kind, peer, parent=current_span(), **details)


def planned_hop(kind: str, peer: str, **details: Any) -> Hop:
    """A hop whose work runs later, together with others' (messages sent in one batch).

    Its span, a child of the current one, exists now, so the ``traceparent`` it gives can travel
    with its message; it does not become the current span. :func:`log_hop` writes its line
    once the work has ended (its outcome set).

    >>> planned = planned_hop(PUBLISH, "orders-topic", event_type="order.placed")
    >>> planned.parent_span_id is None, planned.span.traceparent() != ""
    (True, True)
    """
    parent = current_span()
    span = parent.child() if parent is not None else SpanContext.new_trace()
    planned = Hop(kind, peer, span, None if parent is None else parent.span_id)
    planned.details.update(details)
    return planned


def log_hop(done: Hop, start_ms: int, seconds: float, *, logger: Logger | None = None) -> None:
    """Write the line of a :func:`planned_hop` whose work started at ``start_ms`` (epoch
    milliseconds) and took ``seconds``; to the invocation's logger by default."""
    _log(logger or invocation_logger(), done, start_ms, seconds)


def inbound_hop(
    kind: str, peer: str, traceparent: object, *, logger: Logger | None, **details: Any
) -> AbstractContextManager[Hop]:
    """A hop that enters a function (a request, a call served, a record delivered): :func:`hop`
    with the caller's ``traceparent`` as parent, or a new trace when it is missing or invalid.

    Returns
    -------
    AbstractContextManager[Hop]
        As :func:`hop`.
    """
    return hop(kind, peer, parent=parse_traceparent(traceparent), logger=logger, **details)


def _log(logger: Logger | None, done: Hop, start_ms: int, seconds: float) -> None:
    if logger is None:
        return
    record: dict[str, Any] = {
        "hop": done.kind,
        "peer": done.peer,
        "outcome": done.outcome or OK,
        "start_ms": start_ms,
        "duration_ms": round(seconds * 1000, 1),
        "trace_id": done.span.trace_id,
        "span_id": done.span.span_id,
    }
    if done.status is not None:
        record["status"] = done.status
    if done.parent_span_id is not None:
        record["parent_span_id"] = done.parent_span_id
    record.update(done.details)
    logger.info(HOP_MESSAGE, extra=record)
