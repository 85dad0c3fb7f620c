"""Lambda contexts for tests that depend on the time an invocation has left."""

from __future__ import annotations


class ShrinkingContext:
    """A Lambda context whose remaining time drops by ``step_ms`` at each look."""

    aws_request_id = "req-near-timeout"

    def __init__(self, remaining_ms: int, step_ms: int) -> None:
        self.remaining_ms = remaining_ms
        self.step_ms = step_ms

    def get_remaining_time_in_millis(self) -> int:
        remaining, self.remaining_ms = self.remaining_ms, self.remaining_ms - self.step_ms
        return remaining
