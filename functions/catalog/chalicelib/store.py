"""DynamoDB adapter for the catalog: one item per product, key ``id`` (string).

An item holds the product's fields (:class:`~lambdamesh_toolkit.contracts.catalog.Product`)
and, once inventory has announced a level for it, ``stock_version``: the version of the level
``stock`` shows (``chalicelib/availability.py``). The seed writes products without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from lambdamesh_toolkit.aws.dynamodb import condition_failed, put_if_absent, until_processed
from lambdamesh_toolkit.contracts.catalog import Product

from .availability import Projection

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, KeysAndAttributesTypeDef

STOCK_VERSION_ATTRIBUTE = "stock_version"
"""The version (``N``) of the level ``stock`` shows; absent until a level is projected."""

PROJECT_STOCK_CONDITION = (
    f"attribute_exists(#id) AND "
    f"(attribute_not_exists({STOCK_VERSION_ATTRIBUTE}) OR {STOCK_VERSION_ATTRIBUTE} < :version)"
)
"""A level is written on a listed product holding no version or an older one
(:func:`~chalicelib.availability.is_newer`)."""


class DynamoProductRepository:
    """Products in a DynamoDB table.

    Parameters
    ----------
    client
        A DynamoDB client.
    table_name
        The products table (key ``id``).
    """

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get(self, product_id: str) -> Product | None:
        """The product with this id, or ``None``."""
        answer = self._client.get_item(TableName=self._table, Key={"id": {"S": product_id}})
        item = answer.get("Item")
        return None if item is None else _product_from_item(item)

    def get_products(self, product_ids: Sequence[str]) -> list[Product]:
        """The products with these ids that exist, in no particular order: one
        ``BatchGetItem`` (read like :meth:`get`, eventually consistent), then what DynamoDB
        left unprocessed, with backoff.

        ``product_ids`` are distinct and at most 100, ``BatchGetItem``'s limit (the contract
        allows an order's 50).

        Raises
        ------
        UnprocessedItemsError
            When DynamoDB kept leaving keys unread (throttling).
        """
        request: dict[str, KeysAndAttributesTypeDef] = {
            self._table: {"Keys": [{"id": {"S": product_id}} for product_id in product_ids]}
        }
        return [
            _product_from_item(item)
            for answer in until_processed(
                lambda part: self._client.batch_get_item(RequestItems=part),
                request,
                leftover="UnprocessedKeys",
                what=f"products in {self._table}",
            )
            for item in answer.get("Responses", {}).get(self._table, [])
        ]

    def page(self, limit: int, after: str | None) -> tuple[list[Product], str | None]:
        """Up to ``limit`` products after product ``after``, and the id to continue after.

        A scan, in the table's order: a catalog has no query that narrows it, and the
        order is stable for a given set of products, which is what paging needs.
        """
        if after is None:
            answer = self._client.scan(TableName=self._table, Limit=limit)
        else:
            answer = self._client.scan(
                TableName=self._table, Limit=limit, ExclusiveStartKey={"id": {"S": after}}
            )
        products = [_product_from_item(item) for item in answer.get("Items", [])]
        last_key = answer.get("LastEvaluatedKey")
        return products, None if last_key is None else last_key["id"]["S"]

    def add_if_absent(self, product: Product) -> bool:
        """Store the product unless its id exists; whether it was stored."""
        return put_if_absent(self._client, self._table, _item_from_product(product), "id")

    def project_stock(self, product_id: str, available: int, version: int) -> Projection:
        """Show ``available`` at ``version`` on a listed product holding an older version or
        none, in one conditional update; what happened.

        A refusal is read from the item it returns (``ALL_OLD``): there is one when the
        product holds this version or a newer one, none when the catalog does not list it.
        """
        from botocore.exceptions import ClientError  # on first use, not at the API's cold start

        try:
            self._client.update_item(
                TableName=self._table,
                Key={"id": {"S": product_id}},
                UpdateExpression=f"SET stock = :stock, {STOCK_VERSION_ATTRIBUTE} = :version",
                ConditionExpression=PROJECT_STOCK_CONDITION,
                ExpressionAttributeNames={"#id": "id"},
                ExpressionAttributeValues={
                    ":stock": {"N": str(available)},
                    ":version": {"N": str(version)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if not condition_failed(error):
                raise
            return Projection.OUTDATED if error.response.get("Item") else Projection.UNLISTED
        return Projection.APPLIED


def _item_from_product(product: Product) -> dict[str, AttributeValueTypeDef]:
    return {
        "id": {"S": product.id},
        "name": {"S": product.name},
        "description": {"S": product.description},
        "price_cents": {"N": str(product.price_cents)},
        "currency": {"S": product.currency},
        "stock": {"N": str(product.stock)},
    }


def _product_from_item(item: dict[str, AttributeValueTypeDef]) -> Product:
    return Product(
        id=item["id"]["S"],
        name=item["name"]["S"],
        description=item["description"]["S"],
        price_cents=int(item["price_cents"]["N"]),
        currency=item["currency"]["S"],
        stock=int(item["stock"]["N"]),
    )
