"""The catalog functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings, EventFailureSettings


class CatalogSettings(EnvSettings):
    """Where the products table is.

    Attributes
    ----------
    products_table
        ``PRODUCTS_TABLE``.
    """

    products_table: str = Field(alias="PRODUCTS_TABLE", min_length=1)


class StockProjectionSettings(EventFailureSettings):
    """What the consumer of inventory's events needs, besides its failures table.

    It keeps no processed marks: a level is taken only when its version is newer, so a repeat
    changes nothing.

    Attributes
    ----------
    products_table
        ``PRODUCTS_TABLE``: the projected levels live on the products' items.
    """

    products_table: str = Field(alias="PRODUCTS_TABLE", min_length=1)
