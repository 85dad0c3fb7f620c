"""In-memory stores of the event consumer's bookkeeping, for tests and benchmarks."""

from __future__ import annotations

from collections.abc import Collection

from lambdamesh_toolkit.events.bookkeeping import RecordFailure


class InMemoryIdempotencyStore:
    """An ``IdempotencyStore`` in a dict."""

    def __init__(self) -> None:
        self.marks: dict[str, int] = {}

    def processed_among(self, keys: Collection[str]) -> set[str]:
        """The marked keys among ``keys``."""
        return {key for key in keys if key in self.marks}

    def mark_processed(self, keys: Collection[str], *, expires_at: int) -> None:
        """Mark every key."""
        for key in keys:
            self.marks[key] = expires_at


class InMemoryFailureStore:
    """A ``FailureStore`` in a dict keyed by message id."""

    def __init__(self) -> None:
        self.failures: dict[str, RecordFailure] = {}

    def record(self, failure: RecordFailure) -> None:
        """Keep ``failure`` as the message's last."""
        self.failures[failure.message_id] = failure
