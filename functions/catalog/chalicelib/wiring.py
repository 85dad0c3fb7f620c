"""Builds the catalog from settings: the one place that knows every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws import clients

from .domain import Catalog
from .store import DynamoProductRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .settings import CatalogSettings


def build_catalog(settings: CatalogSettings, *, dynamodb: DynamoDBClient | None = None) -> Catalog:
    """The catalog wired to its table."""
    return Catalog(
        DynamoProductRepository(
            dynamodb or clients.dynamodb(clients.REQUEST), settings.products_table
        )
    )
