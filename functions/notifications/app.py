"""The notifications service: mails users about their account and their orders.

No API: it listens to ``lambdamesh-notifications-users`` (``user.created``) and
``lambdamesh-notifications-orders.fifo`` (``order.confirmed``, ``order.cancelled``) and
sends one mail per event through SES. ``seed`` asks SES to verify the sender
(``MAIL_FROM``); the deploy step invokes it once per deployment.
"""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import Chalice, SQSEvent

from chalicelib.domain import Notifier
from chalicelib.settings import NotificationsSettings
from chalicelib.wiring import (
    build_mailer,
    build_notifier,
    build_order_events_consumer,
    build_user_events_consumer,
)
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.consuming import EventConsumer
from lambdamesh_toolkit.logging import bind_invocation, get_logger

app = Chalice(app_name="lambdamesh-notifications")
logger = get_logger("notifications")


@functools.cache
def settings() -> NotificationsSettings:
    """The settings, read on first use (``chalice package`` imports this module bare)."""
    return load_settings(NotificationsSettings)


@functools.cache
def notifier() -> Notifier:
    """The notifier, built on first use and kept by the warm container."""
    return build_notifier(settings())


@functools.cache
def user_events() -> EventConsumer:
    """The consumer of the users queue, built on first use."""
    return build_user_events_consumer(settings(), notifier(), logger)


@functools.cache
def order_events() -> EventConsumer:
    """The consumer of the orders queue, built on first use."""
    return build_order_events_consumer(settings(), notifier(), logger)


@app.on_sqs_message(
    queue="lambdamesh-notifications-users", batch_size=10, maximum_batching_window_in_seconds=0
)
def handle_user_events(event: SQSEvent) -> dict[str, Any]:
    """``user.created`` → welcome mail (partial batch response)."""
    return user_events().process(event.to_dict(), event.context)


@app.on_sqs_message(
    queue="lambdamesh-notifications-orders.fifo",
    batch_size=10,
    maximum_batching_window_in_seconds=0,
)
def handle_order_events(event: SQSEvent) -> dict[str, Any]:
    """``order.confirmed`` / ``order.cancelled`` → mail to the buyer (partial batch response)."""
    return order_events().process(event.to_dict(), event.context)


@app.lambda_function(name="seed")
def seed_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Ask SES to verify the sender address; report which address."""
    given = event.get("correlation_id") if isinstance(event, dict) else None
    correlation_id = use_correlation_id(given if isinstance(given, str) else None)
    bind_invocation(logger, correlation_id, getattr(context, "aws_request_id", None))
    build_mailer(settings()).verify_sender()
    logger.info("mail sender verification requested", extra={"sender": settings().mail_from})
    return {"sender": settings().mail_from, "verification": "requested"}
