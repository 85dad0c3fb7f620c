"""Builds the catalog and the consumer of inventory's events from settings: the one place
that knows every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.contracts.events import EventEnvelope, InventoryStockChanged
from lambdamesh_toolkit.events.consuming import EventConsumer, typed_handler

from .availability import Availability, Projection
from .domain import Catalog
from .store import DynamoProductRepository

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_dynamodb import DynamoDBClient

    from .settings import CatalogSettings, StockProjectionSettings

SERVICE = "catalog"


def build_catalog(settings: CatalogSettings, *, dynamodb: DynamoDBClient | None = None) -> Catalog:
    """The catalog wired to its table."""
    return Catalog(
        DynamoProductRepository(
            dynamodb or clients.dynamodb(clients.REQUEST), settings.products_table
        )
    )


def build_availability(
    settings: StockProjectionSettings, *, dynamodb: DynamoDBClient | None = None
) -> Availability:
    """The stock projection wired to the products table (a consumer's client profile)."""
    return Availability(
        DynamoProductRepository(
            dynamodb or clients.dynamodb(clients.CONSUMER), settings.products_table
        )
    )


def build_inventory_events_consumer(
    settings: StockProjectionSettings, availability: Availability, logger: Logger
) -> EventConsumer:
    """The consumer of ``lambdamesh-catalog-inventory``: ``inventory.stock_changed``."""

    def report(event: EventEnvelope, projection: Projection) -> None:
        data = event.data
        where = {"event_id": event.id, "projection": projection, **data}
        if projection is Projection.UNLISTED:
            logger.warning(
                "stock level of a product the catalog does not list: dropped", extra=where
            )
        else:
            logger.info("stock level taken in", extra=where)

    return EventConsumer(
        SERVICE,
        idempotency_table=None,  # its handlers' conditional writes absorb a repeat
        failures_table=settings.event_failures_table,
        handlers=dict(
            [typed_handler(InventoryStockChanged, availability.on_stock_changed, report)]
        ),
        fifo=False,
        logger=logger,
    )
