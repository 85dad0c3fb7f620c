"""The catalog functions' settings, read from the environment on first use."""

from __future__ import annotations

from pydantic import Field

from lambdamesh_toolkit.config import EnvSettings


class CatalogSettings(EnvSettings):
    """Where the products table is.

    Attributes
    ----------
    products_table
        ``PRODUCTS_TABLE``.
    """

    products_table: str = Field(alias="PRODUCTS_TABLE", min_length=1)
