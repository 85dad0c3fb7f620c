"""Builds the catalog from settings: the one place that knows every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .domain import Catalog
from .store import DynamoProductRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .settings import CatalogSettings


def dynamodb_client() -> DynamoDBClient:
    """A DynamoDB client with short timeouts (a request must fail fast, not hang)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "dynamodb",
        config=Config(
            connect_timeout=1, read_timeout=3, retries={"mode": "standard", "total_max_attempts": 3}
        ),
    )


def build_catalog(settings: CatalogSettings, *, dynamodb: DynamoDBClient | None = None) -> Catalog:
    """The catalog wired to its table."""
    return Catalog(DynamoProductRepository(dynamodb or dynamodb_client(), settings.products_table))
