"""Builds the storekeeper and its event consumers from settings: the one place that knows
every adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import BaseModel

from lambdamesh_toolkit.consumer import EventConsumer
from lambdamesh_toolkit.contracts.events import (
    EventData,
    EventEnvelope,
    OrderCancelled,
    OrderPlaced,
    PaymentFailed,
)
from lambdamesh_toolkit.events import Publisher

from .domain import SERVICE, Storekeeper
from .store import DynamoInventoryRepository

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient

    from .settings import InventorySettings

EventHandler = Callable[[EventEnvelope, BaseModel], None]


def dynamodb_client() -> DynamoDBClient:
    """A DynamoDB client with short timeouts (a handler must fail fast, not hang)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        config=Config(
            connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 3}
        ),
    )


def build_storekeeper(
    settings: InventorySettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    sns: SNSClient | None = None,
) -> Storekeeper:
    """The storekeeper wired to its tables and the inventory topic."""
    return Storekeeper(
        DynamoInventoryRepository(
            dynamodb or dynamodb_client(), settings.stock_table, settings.reservations_table
        ),
        Publisher(settings.inventory_topic_arn, sns_client=sns),
    )


def build_order_events_consumer(
    settings: InventorySettings, storekeeper: Storekeeper, logger: Logger
) -> EventConsumer:
    """The consumer of ``lambdamesh-inventory-orders.fifo``: ``order.placed`` and ``.cancelled``."""

    def release_cancelled(event: EventEnvelope, data: OrderCancelled) -> EventEnvelope | None:
        return storekeeper.release(event, data.order_id)

    return EventConsumer(
        SERVICE,
        idempotency_table=settings.event_idempotency_table,
        failures_table=settings.event_failures_table,
        handlers=dict(
            [
                typed_handler(OrderPlaced, storekeeper.on_order_placed, logger),
                typed_handler(OrderCancelled, release_cancelled, logger),
            ]
        ),
        fifo=True,
        logger=logger,
    )


def build_payment_events_consumer(
    settings: InventorySettings, storekeeper: Storekeeper, logger: Logger
) -> EventConsumer:
    """The consumer of ``lambdamesh-inventory-payments``: ``payment.failed``."""

    def release_unpaid(event: EventEnvelope, data: PaymentFailed) -> EventEnvelope | None:
        return storekeeper.release(event, data.order_id)

    return EventConsumer(
        SERVICE,
        idempotency_table=settings.event_idempotency_table,
        failures_table=settings.event_failures_table,
        handlers=dict([typed_handler(PaymentFailed, release_unpaid, logger)]),
        fifo=False,
        logger=logger,
    )


def typed_handler[M: EventData](
    model: type[M],
    handle: Callable[[EventEnvelope, M], EventEnvelope | None],
    logger: Logger,
) -> tuple[tuple[str, int], EventHandler]:
    """``handle`` as the consumer calls it (any event data), under its ``(type, version)``.

    It logs what the handler published. The consumer validates ``data`` against the
    model registered for the event's type and version, so the check here only guards
    against a mis-wired table of handlers.
    """

    def run(event: EventEnvelope, data: BaseModel) -> None:
        if not isinstance(data, model):
            raise TypeError(f"{event.type} v{event.version} handed {type(data).__name__}")
        published = handle(event, data)
        logger.info(
            "event handled",
            extra={
                "event_id": event.id,
                "event_type": event.type,
                "published": None if published is None else published.type,
                "published_id": None if published is None else published.id,
            },
        )

    return (model.event_type, model.contract_version), run
