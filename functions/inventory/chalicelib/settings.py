"""The inventory functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings


class InventorySettings(EnvSettings):
    """Where inventory's tables, topic and event bookkeeping are.

    Attributes
    ----------
    stock_table
        ``STOCK_TABLE``: stock level per product.
    reservations_table
        ``RESERVATIONS_TABLE``: one item per order (reserved, rejected, released, voided).
    inventory_topic_arn
        ``INVENTORY_TOPIC_ARN``: where ``inventory.*`` events are published.
    event_idempotency_table, event_failures_table
        ``EVENT_IDEMPOTENCY_TABLE`` / ``EVENT_FAILURES_TABLE``: the event consumer's
        bookkeeping (handled event ids, the last error of failed messages).
    """

    stock_table: str = Field(alias="STOCK_TABLE", min_length=1)
    reservations_table: str = Field(alias="RESERVATIONS_TABLE", min_length=1)
    inventory_topic_arn: str = Field(alias="INVENTORY_TOPIC_ARN", min_length=1)
    event_idempotency_table: str = Field(alias="EVENT_IDEMPOTENCY_TABLE", min_length=1)
    event_failures_table: str = Field(alias="EVENT_FAILURES_TABLE", min_length=1)
