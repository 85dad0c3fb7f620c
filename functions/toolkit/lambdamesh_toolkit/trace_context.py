"""W3C trace context: the ``traceparent`` that travels beside the correlation id.

A ``traceparent`` (https://www.w3.org/TR/trace-context/) names a trace and the span that made
the call: ``00-<trace id: 32 hex>-<parent id: 16 hex>-<flags: 2 hex>``. The correlation id
says which request of the business a line belongs to; the traceparent says which hop caused
which. It travels in the ``traceparent`` HTTP header, the RPC envelope's ``traceparent``
field, a ``traceparent`` message attribute on SNS and SQS, and a ``traceparent`` attribute of
an event store item (read back from the table's stream).

Every hop (:mod:`lambdamesh_toolkit.hops`) is a span: it takes the caller's trace id, gets a
span id of its own, and is the current span while it runs, so that what it calls names it as
their parent. A request that arrives without a valid traceparent starts a new trace.

>>> span = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
>>> span.trace_id, span.span_id, span.sampled
('4bf92f3577b34da6a3ce929d0e0e4736', '00f067aa0ba902b7', True)
>>> span.traceparent()
'00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'
>>> child = span.child()
>>> child.trace_id == span.trace_id, child.span_id != span.span_id
(True, True)
>>> parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01") is None
True
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

TRACEPARENT: Final = "traceparent"
"""Its name everywhere: HTTP header, RPC envelope field, message attribute, item attribute."""

VERSION: Final = "00"
SAMPLED_FLAG: Final = 0x01
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16
# Version 00 is exactly four fields; a later version may append fields after a dash, which a
# version-00 reader ignores (the specification's rule for forward compatibility).
_TRACEPARENT: Final = re.compile(
    r"^(?P<version>[0-9a-f]{2})-(?P<trace>[0-9a-f]{32})-(?P<span>[0-9a-f]{16})"
    r"-(?P<flags>[0-9a-f]{2})(?P<rest>-.*)?$"
)


@dataclass(frozen=True, slots=True)
class SpanContext:
    """A span as the trace context names it: its trace, its own id and the trace flags.

    Attributes
    ----------
    trace_id : str
        32 lower-case hex digits, not all zero.
    span_id : str
        16 lower-case hex digits, not all zero.
    flags : int
        The trace flags; bit 0 is ``sampled``.
    """

    trace_id: str
    span_id: str
    flags: int = SAMPLED_FLAG

    @property
    def sampled(self) -> bool:
        """Whether the caller recorded (or asks to record) this trace."""
        return bool(self.flags & SAMPLED_FLAG)

    def traceparent(self) -> str:
        """This span as the ``traceparent`` of what it calls."""
        return f"{VERSION}-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def child(self) -> SpanContext:
        """A new span of the same trace, with the same flags."""
        return SpanContext(self.trace_id, new_span_id(), self.flags)

    @classmethod
    def new_trace(cls) -> SpanContext:
        """The first span of a new trace (sampled)."""
        return cls(new_trace_id(), new_span_id(), SAMPLED_FLAG)


def new_trace_id() -> str:
    """16 random bytes as 32 hex digits (never all zero)."""
    while (value := os.urandom(16).hex()) == _ZERO_TRACE:  # pragma: no cover - 2**-128
        pass
    return value


def new_span_id() -> str:
    """8 random bytes as 16 hex digits (never all zero)."""
    while (value := os.urandom(8).hex()) == _ZERO_SPAN:  # pragma: no cover - 2**-64
        pass
    return value


def parse_traceparent(value: object) -> SpanContext | None:
    """The span a ``traceparent`` names; ``None`` when it is missing or not valid.

    Invalid per the specification: another shape, upper-case hex, version ``ff``, a version-00
    value with anything after its flags, an all-zero trace or parent id. An invalid value is
    dropped, never repaired: the hop then starts a new trace.

    >>> parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01") is None
    True
    >>> parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x").sampled
    False
    """
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id = match["version"], match["trace"], match["span"]
    if version == "ff" or (version == VERSION and match["rest"] is not None):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return SpanContext(trace_id, span_id, int(match["flags"], 16))


_current: ContextVar[SpanContext | None] = ContextVar("lambdamesh_current_span", default=None)


def current_span() -> SpanContext | None:
    """The span of the hop running now; ``None`` outside any hop."""
    return _current.get()


def current_traceparent() -> str | None:
    """The ``traceparent`` what is called now must carry; ``None`` outside any hop."""
    span = _current.get()
    return None if span is None else span.traceparent()


@contextmanager
def using_span(span: SpanContext) -> Iterator[SpanContext]:
    """Make ``span`` the current span for the ``with`` block, then restore the one before."""
    token = _current.set(span)
    try:
        yield span
    finally:
        _current.reset(token)
