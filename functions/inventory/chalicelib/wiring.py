"""Builds the storekeeper, its event consumers and the stock stream's publisher from
settings: the one place that knows every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderPlaced,
    OrderVoided,
    PaymentFailed,
)
from lambdamesh_toolkit.events.change_capture import StreamDeadLetters
from lambdamesh_toolkit.events.consuming import EventConsumer, log_published, typed_handler
from lambdamesh_toolkit.events.publishing import Publisher

from .domain import SERVICE, Storekeeper
from .stock_changes import StockChangePublisher
from .store import DynamoInventoryRepository

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_sqs import SQSClient

    from .settings import InventorySettings, StockChangesSettings


def build_storekeeper(
    settings: InventorySettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    sns: SNSClient | None = None,
) -> Storekeeper:
    """The storekeeper wired to its tables and the inventory topic."""
    return Storekeeper(
        DynamoInventoryRepository(
            dynamodb or clients.dynamodb(clients.CONSUMER),
            settings.stock_table,
            settings.reservations_table,
        ),
        Publisher(settings.inventory_topic_arn, sns_client=sns, profile=clients.CONSUMER),
    )


def build_order_events_consumer(
    settings: InventorySettings, storekeeper: Storekeeper, logger: Logger
) -> EventConsumer:
    """The consumer of ``lambdamesh-inventory-orders.fifo``: ``order.placed`` and ``.cancelled``."""

    def release_cancelled(event: EventEnvelope, data: OrderCancelled) -> EventEnvelope | None:
        return storekeeper.release(event, data.order_id)

    def release_voided(event: EventEnvelope, data: OrderVoided) -> EventEnvelope | None:
        return storekeeper.release(event, data.order_id)

    return EventConsumer(
        SERVICE,
        idempotency_table=None,  # its handlers' conditional writes absorb a repeat
        failures_table=settings.event_failures_table,
        handlers=dict(
            [
                typed_handler(OrderPlaced, storekeeper.on_order_placed, log_published(logger)),
                typed_handler(OrderCancelled, release_cancelled, log_published(logger)),
                typed_handler(OrderVoided, release_voided, log_published(logger)),
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
        idempotency_table=None,  # its handlers' conditional writes absorb a repeat
        failures_table=settings.event_failures_table,
        handlers=dict([typed_handler(PaymentFailed, release_unpaid, log_published(logger))]),
        fifo=False,
        logger=logger,
    )


def build_stock_change_publisher(
    settings: StockChangesSettings,
    logger: Logger,
    *,
    sns: SNSClient | None = None,
    sqs: SQSClient | None = None,
) -> StockChangePublisher:
    """The stock stream's publisher: the inventory topic, and its dead-letter queue."""
    return StockChangePublisher(
        Publisher(settings.inventory_topic_arn, sns_client=sns, profile=clients.CONSUMER),
        dead_letters=StreamDeadLetters(settings.dead_letter_queue_arn, client=sqs),
        logger=logger,
    )
