"""DynamoDB adapter for reviews.

Key: ``product_id`` (hash) + ``author_key`` (range), so "one review per author per product"
is a conditional put, and a product's reviews are one query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws.dynamodb import put_if_absent
from lambdamesh_toolkit.contracts.reviews import Review

from .domain import DuplicateReviewError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


class DynamoReviewRepository:
    """Reviews in a DynamoDB table.

    Parameters
    ----------
    client
        A DynamoDB client.
    table_name
        The reviews table (keys ``product_id``, ``author_key``).
    """

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def add(self, review: Review, author_key: str) -> None:
        """Store a review unless this author already reviewed the product."""
        item: dict[str, AttributeValueTypeDef] = {
            "product_id": {"S": review.product_id},
            "author_key": {"S": author_key},
            "id": {"S": review.id},
            "author": {"S": review.author},
            "rating": {"N": str(review.rating)},
            "text": {"S": review.text},
            "created_at": {"S": review.created_at.isoformat()},
        }
        # The key is (product_id, author_key): one review per author and product.
        if not put_if_absent(self._client, self._table, item, "product_id"):
            raise DuplicateReviewError(author_key)

    def for_product(self, product_id: str) -> list[Review]:
        """Every review of the product."""
        paginator = self._client.get_paginator("query")
        pages = paginator.paginate(
            TableName=self._table,
            KeyConditionExpression="product_id = :product",
            ExpressionAttributeValues={":product": {"S": product_id}},
        )
        return [_review_from_item(item) for page in pages for item in page.get("Items", [])]


def _review_from_item(item: Mapping[str, AttributeValueTypeDef]) -> Review:
    return Review.model_validate(
        {
            "id": item["id"]["S"],
            "product_id": item["product_id"]["S"],
            "author": item["author"]["S"],
            "rating": int(item["rating"]["N"]),
            "text": item["text"]["S"],
            "created_at": item["created_at"]["S"],
        }
    )
