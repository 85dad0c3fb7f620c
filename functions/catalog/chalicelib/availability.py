"""What the catalog shows as available: its projection of inventory's stock levels.

Inventory owns the stock. Whenever a level changes it publishes ``inventory.stock_changed``
(product, units on the shelf, ``stock_version``) from its stock table's stream; the catalog
keeps on each product the level of the highest ``stock_version`` it has seen (``stock``, the
level ``GET /products`` and ``GetProduct`` show), so what it shows as available is what
inventory had, up to the events' lag. Plain Python: the product table is a port
(:class:`StockLevels`) that an adapter implements.

The newest version wins
    The events come at least once and, through a standard queue, in any order. A level is
    taken only when its version is higher than the one the product holds, or the product
    holds none yet (the seed's level); an older or a repeated one changes nothing and is
    handled, not failed (:func:`is_newer`). Out-of-order delivery therefore ends at the
    newest level whatever the order, and a repeat never moves a level back.

A product the catalog does not list
    Its level is dropped as handled, with a warning in the log: the catalog sells only what it
    lists, and no placeholder product (without name or price) is made for it. A product the
    seed adds later starts at its seed level and takes the next change's.

>>> is_newer(None, 1), is_newer(3, 4), is_newer(4, 4), is_newer(5, 4)
(True, True, False, False)
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

from lambdamesh_toolkit.contracts.events import EventEnvelope, InventoryStockChanged


class Projection(StrEnum):
    """What applying one stock level did."""

    APPLIED = "applied"
    """The product shows this level now."""
    OUTDATED = "outdated"
    """The product holds this version or a newer one: nothing changed."""
    UNLISTED = "unlisted"
    """The catalog does not list the product: dropped."""


class StockLevels(Protocol):
    """Where the products' shown levels live."""

    def project_stock(self, product_id: str, available: int, version: int) -> Projection:
        """Set the product's level to ``available`` at ``version`` if :func:`is_newer` says so
        of the version it holds, in one conditional write; what happened."""
        ...


def is_newer(held_version: int | None, version: int) -> bool:
    """Whether a level at ``version`` replaces the one a product holds at ``held_version``
    (``None``: a level that came with the product, never projected)."""
    return held_version is None or held_version < version


class Availability:
    """Takes inventory's stock levels into the catalog.

    Parameters
    ----------
    levels
        The products' shown levels.
    """

    def __init__(self, levels: StockLevels) -> None:
        self._levels = levels

    def on_stock_changed(self, event: EventEnvelope, data: InventoryStockChanged) -> Projection:
        """Show ``data.available`` for the product, unless a newer level is shown already or
        the catalog does not list it; safe to run again for the same event."""
        return self._levels.project_stock(data.product_id, data.available, data.stock_version)
