"""Builds the payment desk and its event consumer from settings: the one place that knows
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
)
from lambdamesh_toolkit.events import Publisher

from .domain import SERVICE, PaymentDesk, PaymentProvider
from .provider import SimulatedProvider
from .store import DynamoPaymentRepository

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient

    from .settings import PaymentsSettings

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


def build_payment_desk(
    settings: PaymentsSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    sns: SNSClient | None = None,
    provider: PaymentProvider | None = None,
) -> PaymentDesk:
    """The payment desk wired to the provider, its table and the payments topic."""
    return PaymentDesk(
        provider
        or SimulatedProvider(
            decline_above_cents=settings.decline_above_cents, failure_rate=settings.failure_rate
        ),
        DynamoPaymentRepository(dynamodb or dynamodb_client(), settings.payments_table),
        Publisher(settings.payments_topic_arn, sns_client=sns),
    )


def build_order_events_consumer(
    settings: PaymentsSettings, desk: PaymentDesk, logger: Logger
) -> EventConsumer:
    """The consumer of ``lambdamesh-payments-orders.fifo``: ``order.placed`` and ``.cancelled``."""
    return EventConsumer(
        SERVICE,
        idempotency_table=settings.event_idempotency_table,
        failures_table=settings.event_failures_table,
        handlers=dict(
            [
                typed_handler(OrderPlaced, desk.on_order_placed, logger),
                typed_handler(OrderCancelled, desk.on_order_cancelled, logger),
            ]
        ),
        fifo=True,
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
