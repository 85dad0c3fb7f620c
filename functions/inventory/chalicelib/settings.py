"""The inventory functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings, EventFailureSettings


class InventorySettings(EventFailureSettings):
    """Where inventory's tables, topic and event bookkeeping are.

    The event consumers' failures table comes from :class:`EventFailureSettings`; they keep no
    processed marks (the reservations' conditional transactions make a repeat change nothing).

    Attributes
    ----------
    stock_table
        ``STOCK_TABLE``: stock level per product.
    reservations_table
        ``RESERVATIONS_TABLE``: one item per order (reserved, rejected, released, voided).
    inventory_topic_arn
        ``INVENTORY_TOPIC_ARN``: where ``inventory.*`` events are published.
    """

    stock_table: str = Field(alias="STOCK_TABLE", min_length=1)
    reservations_table: str = Field(alias="RESERVATIONS_TABLE", min_length=1)
    inventory_topic_arn: str = Field(alias="INVENTORY_TOPIC_ARN", min_length=1)


class StockChangesSettings(EnvSettings):
    """What the stock stream's publisher (``publish_stock_changes``) needs.

    Attributes
    ----------
    inventory_topic_arn
        ``INVENTORY_TOPIC_ARN``: where ``inventory.stock_changed`` is published.
    dead_letter_queue_arn
        ``STOCK_CHANGES_DEAD_LETTER_QUEUE_ARN``: where stream records that can never be
        published go, with the reason (also the event source's on-failure destination).
    """

    inventory_topic_arn: str = Field(alias="INVENTORY_TOPIC_ARN", min_length=1)
    dead_letter_queue_arn: str = Field(alias="STOCK_CHANGES_DEAD_LETTER_QUEUE_ARN", min_length=1)
