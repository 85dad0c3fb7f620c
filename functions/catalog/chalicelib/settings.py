"""The catalog functions' settings, read from the environment on first use."""

from __future__ import annotations

from lambdamesh_toolkit.config import EnvSettings
from pydantic import Field


class CatalogSettings(EnvSettings):
    """Where the products table is.

    Attributes
    ----------
    products_table
        ``PRODUCTS_TABLE``.
    """

    products_table: str = Field(alias="PRODUCTS_TABLE", min_length=1)
