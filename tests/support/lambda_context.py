"""Lambda contexts for tests that depend on the time an invocation has left."""

from __future__ import annotations


class ManualContext:
    """A Lambda context whose time passes only when a test says so (:meth:`elapse`).

    ``TimeGuard`` reads the context both for the time left and to time each piece of work,
    so a test's handler that calls ``elapse(1.0)`` is a piece that took one second.
    """

    aws_request_id = "req-near-timeout"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms

    def elapse(self, seconds: float) -> None:
        """Let ``seconds`` of the invocation's time pass."""
        self.remaining_ms -= round(seconds * 1000)
