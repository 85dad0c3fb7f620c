"""The inventory service: reserves stock for placed orders, releases it when they fail.

No API: it listens to ``lambdamesh-inventory-orders.fifo`` (``order.placed``,
``order.cancelled``) and ``lambdamesh-inventory-payments`` (``payment.failed``), and
publishes ``inventory.reserved``, ``inventory.rejected`` and ``inventory.released`` to the
inventory topic. ``publish_stock_changes`` reads the stock table's stream and publishes
``inventory.stock_changed`` for every level that changed (change data capture). ``seed``
stocks the starting assortment (the deploy step invokes it once per deployment; it never
overwrites a stock level, so running it again is harmless).
"""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import Chalice, SQSEvent

from chalicelib.domain import Storekeeper
from chalicelib.settings import InventorySettings, StockChangesSettings
from chalicelib.stock_changes import StockChangePublisher
from chalicelib.wiring import (
    build_order_events_consumer,
    build_payment_events_consumer,
    build_stock_change_publisher,
    build_storekeeper,
)
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.consuming import EventConsumer
from lambdamesh_toolkit.logging import bind_invocation, get_logger

app = Chalice(app_name="lambdamesh-inventory")
logger = get_logger("inventory")


@functools.cache
def settings() -> InventorySettings:
    """The settings, read on first use (``chalice package`` imports this module bare)."""
    return load_settings(InventorySettings)


@functools.cache
def storekeeper() -> Storekeeper:
    """The storekeeper, built on first use and kept by the warm container."""
    return build_storekeeper(settings())


@functools.cache
def order_events() -> EventConsumer:
    """The consumer of the orders queue, built on first use."""
    return build_order_events_consumer(settings(), storekeeper(), logger)


@functools.cache
def payment_events() -> EventConsumer:
    """The consumer of the payments queue, built on first use."""
    return build_payment_events_consumer(settings(), storekeeper(), logger)


@app.on_sqs_message(
    queue="lambdamesh-inventory-orders.fifo", batch_size=10, maximum_batching_window_in_seconds=0
)
def handle_order_events(event: SQSEvent) -> dict[str, Any]:
    """``order.placed`` → reserve; ``order.cancelled`` → release (partial batch response)."""
    return order_events().process(event.to_dict(), event.context)


@app.on_sqs_message(
    queue="lambdamesh-inventory-payments", batch_size=10, maximum_batching_window_in_seconds=0
)
def handle_payment_events(event: SQSEvent) -> dict[str, Any]:
    """``payment.failed`` → release (partial batch response)."""
    return payment_events().process(event.to_dict(), event.context)


@functools.cache
def stock_changes() -> StockChangePublisher:
    """The stock stream's publisher, built on first use."""
    return build_stock_change_publisher(load_settings(StockChangesSettings), logger)


@app.lambda_function(name="publish_stock_changes")
def publish_stock_changes(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The stock table's stream → ``inventory.stock_changed`` (partial batch response)."""
    return stock_changes().process(event, context)


@app.lambda_function(name="seed")
def seed_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Stock the seed products that are missing; report what was added and what was there."""
    given = event.get("correlation_id") if isinstance(event, dict) else None
    correlation_id = use_correlation_id(given if isinstance(given, str) else None)
    bind_invocation(logger, correlation_id, getattr(context, "aws_request_id", None))
    report = storekeeper().seed()
    logger.info("stock seeded", extra={"added": report.added, "present": report.present})
    return {"added": list(report.added), "present": list(report.present)}
