"""Builds the payment desk and its event consumer from settings: the one place that knows
every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.contracts.events import OrderCancelled, OrderPlaced, OrderVoided
from lambdamesh_toolkit.events.consuming import EventConsumer, log_published, typed_handler
from lambdamesh_toolkit.events.publishing import Publisher

from .domain import SERVICE, PaymentDesk, PaymentProvider
from .provider import SimulatedProvider
from .store import DynamoPaymentRepository

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sns import SNSClient

    from .settings import PaymentsSettings


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
        DynamoPaymentRepository(
            dynamodb or clients.dynamodb(clients.CONSUMER), settings.payments_table
        ),
        Publisher(settings.payments_topic_arn, sns_client=sns, profile=clients.CONSUMER),
    )


def build_order_events_consumer(
    settings: PaymentsSettings, desk: PaymentDesk, logger: Logger
) -> EventConsumer:
    """The consumer of ``lambdamesh-payments-orders.fifo``: ``order.placed`` and ``.cancelled``."""
    return EventConsumer(
        SERVICE,
        idempotency_table=None,  # its handlers' conditional writes absorb a repeat
        failures_table=settings.event_failures_table,
        handlers=dict(
            [
                typed_handler(OrderPlaced, desk.on_order_placed, log_published(logger)),
                typed_handler(OrderCancelled, desk.on_order_cancelled, log_published(logger)),
                typed_handler(OrderVoided, desk.on_order_voided, log_published(logger)),
            ]
        ),
        fifo=True,
        logger=logger,
    )
