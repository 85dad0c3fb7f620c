"""Builds the notifier and its event consumers from settings: the one place that knows
every adapter."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderConfirmed,
    UserCreated,
)
from lambdamesh_toolkit.events.consuming import EventConsumer, typed_handler

from .domain import Notifier
from .ses import SesMailer
from .store import DynamoContactBook, DynamoMailLog

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ses import SESClient

    from .settings import NotificationsSettings

SERVICE = "notifications"


def build_mailer(settings: NotificationsSettings, *, ses: SESClient | None = None) -> SesMailer:
    """The SES mailer, sending from ``MAIL_FROM``."""
    return SesMailer(ses or clients.ses(clients.CONSUMER), settings.mail_from)


def build_notifier(
    settings: NotificationsSettings,
    *,
    dynamodb: DynamoDBClient | None = None,
    ses: SESClient | None = None,
) -> Notifier:
    """The notifier wired to its tables and SES."""
    client = dynamodb or clients.dynamodb(clients.CONSUMER)
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
        idempotency_table=None,  # the mail log, keyed by event id, absorbs a repeat
        failures_table=settings.event_failures_table,
        handlers=dict(
            [
                typed_handler(OrderConfirmed, notifier.on_order_confirmed, log_mail(logger)),
                typed_handler(OrderCancelled, notifier.on_order_cancelled, log_mail(logger)),
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
        idempotency_table=None,  # the mail log, keyed by event id, absorbs a repeat
        failures_table=settings.event_failures_table,
        handlers=dict([typed_handler(UserCreated, notifier.on_user_created, log_mail(logger))]),
        fifo=False,
        logger=logger,
    )


def log_mail(logger: Logger) -> Callable[[EventEnvelope, str | None], None]:
    """A report for ``typed_handler``: logs whether a mail went out.

    The notifier's handlers return the SES message id, or ``None`` when the mail had
    gone out before (a redelivered event).
    """

    def report(event: EventEnvelope, message_id: str | None) -> None:
        logger.info(
            "mail sent" if message_id is not None else "mail already sent",
            extra={"event_id": event.id, "event_type": event.type, "message_id": message_id},
        )

    return report
