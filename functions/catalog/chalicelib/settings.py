"""The catalog functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings, EventBookkeepingSettings


class CatalogSettings(EnvSettings):
    """Where the products table is.

    Attributes
    ----------
    products_table
        ``PRODUCTS_TABLE``.
    """

    products_table: str = Field(alias="PRODUCTS_TABLE", min_length=1)


class StockProjectionSettings(EventBookkeepingSettings):
    """What the consumer of inventory's events needs, besides the event consumer's tables.

    Attributes
    ----------
    products_table
        ``PRODUCTS_TABLE``: the projected levels live on the products' items.
    """

    products_table: str = Field(alias="PRODUCTS_TABLE", min_length=1)
