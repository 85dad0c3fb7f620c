"""Work done piece by piece in one invocation stops before the function's timeout.

A batch that runs past its function's timeout fails whole: on a queue, every message of it,
handled or not, waits out the queue's visibility timeout (60 s) before it comes again; on a
stream, the whole batch is tried again, then bisected. Under load a FIFO batch of ten took
12-19 s against a 10 s timeout, and a stock stream batch of 100 records, published one at a
time, more still. So a consumer (:mod:`.consuming`) does not start a record, and a stream
function (:mod:`.change_capture`) a record or a publish request, when less time is left than
:data:`MIN_TIME_RESERVE_S` or twice the slowest piece of the invocation so far: what was not
started is reported failed and comes again at once, what was done is acknowledged.

The context is the guard's only clock: a piece's time is how much the remaining time it reports
dropped while the piece ran. On Lambda both are the same wall clock; a context whose time is
told (a test's) decides alone what the guard sees, so a busy machine cannot.

>>> class Context:
...     def __init__(self, left_ms): self.left_ms = left_ms
...     def get_remaining_time_in_millis(self): return self.left_ms
>>> TimeGuard(Context(9_000)).allows_another(), TimeGuard(Context(1_000)).allows_another()
(True, False)
>>> TimeGuard(None).allows_another()  # no Lambda context (a test, a script): no limit
True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: Seconds of the function's time a piece of work is never started with less than.
MIN_TIME_RESERVE_S = 1.5


class TimeGuard:
    """Whether an invocation has time for another piece of work, from its Lambda context's
    ``get_remaining_time_in_millis``: before each piece, and around it to time it.

    Parameters
    ----------
    context : Any
        The Lambda context; without ``get_remaining_time_in_millis`` (``None``, a test's
        stand-in) every piece is allowed.
    """

    def __init__(self, context: Any) -> None:
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        self._remaining_ms: Callable[[], float] | None = (
            remaining_ms if callable(remaining_ms) else None
        )
        self._slowest_s = 0.0

    def allows_another(self) -> bool:
        """Whether at least :data:`MIN_TIME_RESERVE_S`, and twice the slowest piece so far,
        is left."""
        if self._remaining_ms is None:
            return True
        return _left_s(self._remaining_ms) >= max(MIN_TIME_RESERVE_S, 2 * self._slowest_s)

    @contextmanager
    def timing(self) -> Iterator[None]:
        """Time the piece of work done inside (whether it succeeds or not)."""
        remaining_ms = self._remaining_ms
        if remaining_ms is None:
            yield
            return
        left_before = _left_s(remaining_ms)
        try:
            yield
        finally:
            self._slowest_s = max(self._slowest_s, left_before - _left_s(remaining_ms))


def _left_s(remaining_ms: Callable[[], float]) -> float:
    return float(remaining_ms()) / 1000
