"""The payments service: charges placed orders, refunds cancelled ones.

No API: it listens to ``lambdamesh-payments-orders.fifo`` (``order.placed`` and
``order.cancelled`` from the orders topic) and publishes ``payment.processed``,
``payment.failed`` and ``payment.refunded`` to the payments topic.
"""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import Chalice, SQSEvent

from chalicelib.settings import PaymentsSettings
from chalicelib.wiring import build_order_events_consumer, build_payment_desk
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.events.consuming import EventConsumer
from lambdamesh_toolkit.logging import get_logger

app = Chalice(app_name="lambdamesh-payments")
logger = get_logger("payments")


@functools.cache
def order_events() -> EventConsumer:
    """The consumer, built on first use and kept by the warm container.

    Built lazily rather than at import so that ``chalice package`` (which imports this
    module to find the handlers) needs no environment.
    """
    settings = load_settings(PaymentsSettings)
    return build_order_events_consumer(settings, build_payment_desk(settings), logger)


@app.on_sqs_message(
    queue="lambdamesh-payments-orders.fifo", batch_size=10, maximum_batching_window_in_seconds=0
)
def handle_order_events(event: SQSEvent) -> dict[str, Any]:
    """``order.placed`` → charge; ``order.cancelled`` → refund (partial batch response)."""
    return order_events().process(event.to_dict(), event.context)
