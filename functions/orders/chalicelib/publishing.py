"""What orders need of the orders topic, and who they say they are on it."""

from __future__ import annotations

from typing import Protocol

from lambdamesh_toolkit.contracts.events import EventEnvelope

SOURCE = "orders"
"""The ``source`` of every event orders publish."""
EVENTS_DEPENDENCY = "orders-events"
"""The orders topic's name in errors and logs."""


class EventPublisher(Protocol):
    """The orders topic (``lambdamesh_toolkit.events.Publisher``)."""

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        """Publish ``envelope``; the message id once the topic has accepted it."""
        ...
