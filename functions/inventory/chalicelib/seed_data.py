"""The stock a fresh deployment starts with.

A copy of the catalog's seed assortment (``functions/catalog/chalicelib/domain.py``,
``SEED_PRODUCTS``: ids and stock), not an import of it: services share contracts, never
each other's code, and each deploys on its own. Keep the two lists in step when the
assortment changes: the catalog shows its own seed numbers until inventory's stock stream
announces these levels (``inventory.stock_changed``, version 1), and from then on inventory's.
"""

from __future__ import annotations

SEED_STOCK: tuple[tuple[str, int], ...] = (
    ("p-espresso-beans", 120),
    ("p-pour-over-kettle", 35),
    ("p-burr-grinder", 12),
    ("p-paper-filters", 400),
    ("p-ceramic-mug", 60),
    ("p-milk-jug", 0),
)
"""``(product id, units in stock)``; the milk jug is out of stock on purpose."""
