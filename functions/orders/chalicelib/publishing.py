"""What orders need of the orders topic, and who they say they are on it."""

from __future__ import annotations

from lambdamesh_toolkit.events.publishing import EventPublisher

__all__ = ["EVENTS_DEPENDENCY", "SOURCE", "EventPublisher"]

SOURCE = "orders"
"""The ``source`` of every event orders publish."""
EVENTS_DEPENDENCY = "orders-events"
"""The orders topic's name in errors and logs."""
