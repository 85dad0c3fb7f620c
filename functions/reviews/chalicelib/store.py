"""DynamoDB adapter for reviews.

Key: ``product_id`` (hash) + ``author_key`` (range), so "one review per author per product"
is a conditional put. The index ``newest`` (``product_id`` + ``created_key``: the UTC time to
the microsecond, then the review id) lists a product's reviews newest first, a page per query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws.dynamodb import put_if_absent, query_page
from lambdamesh_toolkit.contracts.reviews import Review
from lambdamesh_toolkit.paging import time_ordered_key

from .domain import DuplicateReviewError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

NEWEST_INDEX = "newest"
CREATED_KEY = "created_key"
#: What a page token holds: the last review's key in the index (the product is in the path).
PAGE_POSITION = (CREATED_KEY, "author_key")


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
            CREATED_KEY: {"S": created_key(review)},
        }
        # The key is (product_id, author_key): one review per author and product.
        if not put_if_absent(self._client, self._table, item, "product_id"):
            raise DuplicateReviewError(author_key)

    def newest(
        self, product_id: str, *, limit: int, after: str | None
    ) -> tuple[list[Review], str | None]:
        """A page of the product's reviews, newest first, and the next page's token."""
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": NEWEST_INDEX,
            "KeyConditionExpression": "product_id = :product",
            "ExpressionAttributeValues": {":product": {"S": product_id}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        items, next_token = query_page(
            self._client,
            request,
            partition={"product_id": {"S": product_id}},
            position=PAGE_POSITION,
            after=after,
        )
        return [_review_from_item(item) for item in items], next_token


def created_key(review: Review) -> str:
    """The index's sort key: UTC time to the microsecond (sorts as text), then the id."""
    return time_ordered_key(review.created_at, review.id)


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
