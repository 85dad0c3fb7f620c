"""Builds the notifier and its event consumers from settings: the one place that knows
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
    OrderConfirmed,
    UserCreated,
)

from .domain import Notifier
from .ses import SesMailer
from .store import DynamoContactBook, DynamoMailLog

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ses import SESClient

    from .settings import NotificationsSettings

SERVICE = "notifications"
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


def ses_client() -> SESClient:
    """An SES client with short timeouts."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ses",
        config=Config(
            connect_timeout=1, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3}
        ),
    )


def build_mailer(settings: NotificationsSettings, *, ses: SESClient | None = None) -> SesMailer:
    """The SES mailer, sending from ``MAIL_FROM``."""
    return SesMailer(ses or ses_client(), settings.mail_from)


def build_notifier(
    settings: NotificationsSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    ses: SESClient | None = None,
) -> Notifier:
    """The notifier wired to its tables and SES."""
    client = dynamodb or dynamodb_client()
    return Notifier(
        DynamoContactBook(client, settings.contacts_table),
        DynamoMailLog(client, settings.sent_mail_table),
        build_mailer(settings, ses=ses),
    )


def build_order_events_consumer(
    settings: NotificationsSettings, notifier: Notifier, logger: Logger
) -> EventConsumer:
    """The consumer of ``lambdamesh-notifications-orders.fifo``: order outcomes."""
    return EventConsumer(
        SERVICE,
        idempotency_table=settings.event_idempotency_table,
        failures_table=settings.event_failures_table,
        handlers=dict(
            [
                typed_handler(OrderConfirmed, notifier.on_order_confirmed, logger),
                typed_handler(OrderCancelled, notifier.on_order_cancelled, logger),
            ]
        ),
        fifo=True,
        logger=logger,
    )


def build_user_events_consumer(
    settings: NotificationsSettings, notifier: Notifier, logger: Logger
) -> EventConsumer:
    """The consumer of ``lambdamesh-notifications-users``: ``user.created``."""
    return EventConsumer(
        SERVICE,
        idempotency_table=settings.event_idempotency_table,
        failures_table=settings.event_failures_table,
        handlers=dict([typed_handler(UserCreated, notifier.on_user_created, logger)]),
        fifo=False,
        logger=logger,
    )


def typed_handler[M: EventData](
    model: type[M],
    handle: Callable[[EventEnvelope, M], str | None],
    logger: Logger,
) -> tuple[tuple[str, int], EventHandler]:
    """``handle`` as the consumer calls it (any event data), under its ``(type, version)``.

    It logs whether a mail went out (``None``: it had gone out before). The consumer
    validates ``data`` against the model registered for the event's type and version, so
    the check here only guards against a mis-wired table of handlers.
    """

    def run(event: EventEnvelope, data: BaseModel) -> None:
        if not isinstance(data, model):
            raise TypeError(f"{event.type} v{event.version} handed {type(data).__name__}")
        message_id = handle(event, data)
        logger.info(
            "mail sent" if message_id is not None else "mail already sent",
            extra={"event_id": event.id, "event_type": event.type, "message_id": message_id},
        )

    return (model.event_type, model.contract_version), run
