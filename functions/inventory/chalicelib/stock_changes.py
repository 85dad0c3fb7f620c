"""``inventory.stock_changed`` from the stock table's stream: what other services see of stock.

Change data capture: the stock table's stream (``NEW_AND_OLD_IMAGES``) hands every write to a
function, which publishes the new level of each product whose ``stock`` changed. Nothing is
published by the writes themselves, so a level that was committed is published (at least
once, in order per product: :func:`~lambdamesh_toolkit.events.change_capture.process_in_order`)
and a level that was not never is.

Which records make an event
    ``INSERT`` (a product stocked) and ``MODIFY`` whose ``stock`` differs from the old image's.
    A ``MODIFY`` that leaves ``stock`` as it was and a ``REMOVE`` publish nothing.

The event
    ``{product_id, available, stock_version}``, under an id derived from the product and its
    ``stock_version``: the same write read again (a retried batch, a repeated record) gives the
    same event, which consumers drop by its id. Its correlation id is the one the write stored
    with the level (the request that reserved or released), a new one when there is none;
    :func:`stock_changed` makes it the current one, so the logs that follow carry it.

What is dead-lettered (:class:`~lambdamesh_toolkit.events.dead_lettering.PermanentFailure`)
    A new image without ``product_id`` (S), ``stock`` (N) or ``stock_version`` (N), or with a
    level the contract refuses (below zero); and a level that changed while its
    ``stock_version`` did not grow: a write that bypassed the versioning, whose event would
    carry the id of an earlier one and be dropped as a repeat.

>>> from lambdamesh_toolkit.events.change_capture import Change
>>> image = {"product_id": {"S": "p-mug"}, "stock": {"N": "4"}, "stock_version": {"N": "3"}}
>>> old = {**image, "stock": {"N": "5"}, "stock_version": {"N": "2"}}
>>> changed = stock_changed(Change("MODIFY", "100", image, old, {}))
>>> changed.type, changed.data
('inventory.stock_changed', {'product_id': 'p-mug', 'available': 4, 'stock_version': 3})
>>> stock_changed(Change("MODIFY", "101", image, {**image, "correlation_id": {"S": "c"}}, {}))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lambdamesh_toolkit.contracts.events import EventEnvelope, EventError, InventoryStockChanged
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.change_capture import (
    INSERT,
    MODIFY,
    Change,
    RecordEvent,
    StreamPublisher,
)
from lambdamesh_toolkit.events.dead_lettering import PermanentFailure
from lambdamesh_toolkit.events.envelope import derived_event_id, invalid_event_from, new_event
from lambdamesh_toolkit.logging import get_logger

from .domain import SERVICE

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

    from lambdamesh_toolkit.events.change_capture import StreamDeadLetters
    from lambdamesh_toolkit.events.publishing import BatchEventPublisher

PRODUCT_ATTRIBUTE = "product_id"
"""The stock item's key (``S``); the stock table's layout is ``store.py``'s."""
STOCK_ATTRIBUTE = "stock"
"""Units on the shelf (``N``)."""
VERSION_ATTRIBUTE = "stock_version"
"""The item's version (``N``): 1 when stocked, one more with every write that changes
``stock``."""
CORRELATION_ATTRIBUTE = "correlation_id"
"""The correlation id (``S``) of the request whose write changed ``stock`` last."""


def stock_changed(change: Change) -> EventEnvelope | None:
    """The ``inventory.stock_changed`` a stock table's stream record announces; ``None`` when
    the record changed no level.

    Raises
    ------
    PermanentFailure
        When the new image is not a stock item, or its level changed without a higher
        ``stock_version`` (see the module's description).
    """
    if change.event_name not in (INSERT, MODIFY):
        return None
    product_id = _text(change.new_image, PRODUCT_ATTRIBUTE)
    available = _number(change.new_image, STOCK_ATTRIBUTE)
    version = _number(change.new_image, VERSION_ATTRIBUTE)
    if product_id is None or available is None or version is None:
        raise PermanentFailure(
            f"not a stock item: {PRODUCT_ATTRIBUTE} (S), {STOCK_ATTRIBUTE} (N) and "
            f"{VERSION_ATTRIBUTE} (N) are needed in the new image"
        )
    if change.old_image:
        if _number(change.old_image, STOCK_ATTRIBUTE) == available:
            return None
        old_version = _number(change.old_image, VERSION_ATTRIBUTE)
        if old_version is not None and version <= old_version:
            raise PermanentFailure(
                f"stock of {product_id} changed while its {VERSION_ATTRIBUTE} went from "
                f"{old_version} to {version}: a write that does not add 1 to it"
            )
    use_correlation_id(_text(change.new_image, CORRELATION_ATTRIBUTE))
    what = f"stock of {product_id} at version {version}"
    try:
        data = InventoryStockChanged(
            product_id=product_id, available=available, stock_version=version
        )
        return new_event(
            InventoryStockChanged.event_type,
            data,
            source=SERVICE,
            event_id=derived_event_id(InventoryStockChanged.event_type, product_id, str(version)),
        )
    except ValidationError as error:
        raise PermanentFailure(str(invalid_event_from(error, what=what))) from None
    except EventError as error:
        raise PermanentFailure(f"{what}: {error}") from None


def _text(image: Mapping[str, Any], name: str) -> str | None:
    value = image.get(name)
    text = value.get("S") if isinstance(value, Mapping) else None
    return text if isinstance(text, str) else None


def _number(image: Mapping[str, Any], name: str) -> int | None:
    """An integer attribute (``N``) of a stream image; ``None`` when absent.

    Raises
    ------
    PermanentFailure
        When it is there but not a whole number.
    """
    value = image.get(name)
    if value is None:
        return None
    number = value.get("N") if isinstance(value, Mapping) else None
    try:
        return int(str(number))
    except ValueError:
        raise PermanentFailure(f"{name} is not a whole number (N): {value!r}") from None


class StockChangePublisher(StreamPublisher):
    """Publishes ``inventory.stock_changed`` for every stream record that changed a level,
    a batch's events together, ten to a ``PublishBatch``, in stream order
    (:class:`~lambdamesh_toolkit.events.change_capture.StreamPublisher`).

    Parameters
    ----------
    publisher : BatchEventPublisher
        The inventory topic (a standard topic: no message group).
    dead_letters : StreamDeadLetters | None
        Where records that can never be published go, with the reason (the event source's
        on-failure destination); without it they are retried.
    logger : Logger | None
        The function's logger.
    """

    def __init__(
        self,
        publisher: BatchEventPublisher,
        *,
        dead_letters: StreamDeadLetters | None = None,
        logger: Logger | None = None,
    ) -> None:
        super().__init__(
            publisher,
            dead_letters=dead_letters,
            logger=logger or get_logger(SERVICE),
            fifo=False,
        )

    def event_of(self, change: Change) -> RecordEvent | None:
        """The record's ``inventory.stock_changed`` (:func:`stock_changed`), if it changed a
        level."""
        envelope = stock_changed(change)
        if envelope is None:
            return None
        return RecordEvent(envelope, envelope.data["product_id"], envelope.data)
