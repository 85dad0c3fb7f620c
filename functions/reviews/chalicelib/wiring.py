"""Builds the review book from settings: the one place that knows every adapter."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.clients.catalog import CatalogRpcLookup, RpcCaller
from lambdamesh_toolkit.rpc import RpcClient

from .domain import ReviewBook
from .store import DynamoReviewRepository

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from .settings import ReviewsSettings

CATALOG_DEPENDENCY = "catalog-rpc"
"""The catalog RPC's name; orders use the same name, so both share one circuit."""


def build_review_book(
    settings: ReviewsSettings,
    *,
    catalog_rpc: RpcCaller | None = None,
    dynamodb: DynamoDBClient | None = None,
) -> ReviewBook:
    """The review book wired to its adapters.

    Parameters
    ----------
    settings
        The functions' settings.
    catalog_rpc, dynamodb
        Replacements for the default clients (tests pass doubles); by default the catalog
        is reached through the toolkit's RPC client, with its timeout, retries and the
        shared circuit breaker.
    """
    if catalog_rpc is None:
        catalog_rpc = RpcClient(
            settings.catalog_rpc_function, CATALOG_DEPENDENCY, timeout_s=settings.catalog_timeout_s
        )
    return ReviewBook(
        catalog=CatalogRpcLookup(catalog_rpc),
        repository=DynamoReviewRepository(
            dynamodb or clients.dynamodb(clients.REQUEST), settings.reviews_table
        ),
    )
