"""DynamoDB adapter for orders and their idempotency claims.

Two tables:

- orders, key ``id``: ``user_id``, ``created_at``, ``document`` (the order's JSON as
  placed: lines and prices as first answered), the saga's attributes (``status``,
  ``cancel_reason``, ``payment``, ``inventory``, ``saga_version``, ``outbox``; written by
  ``saga_store``, read here so that an order is answered in its current state), and its
  ``order.placed`` event: ``placed_event_id``, ``placed_event`` (the envelope's JSON, to
  publish it again unchanged) and ``placed_published``;
- idempotency claims, key ``key``: ``fingerprint``, ``order_id``, ``status``,
  ``lease_expires_at``, and ``expires_at`` (the table's TTL attribute).

Claiming a key is a conditional put; placing the order and completing its claim is one
transaction conditioned on the claim still being ours, so a key never yields two orders,
even when requests race or one outlives its lease.

Powertools' idempotency utility was considered and not used: it stores the result after
the function returned, in a write separate from the order's, so a crash between the two
leaves an order whose key is forgotten once the record expires and the retry places a
second order. Doing the claim here lets the order and the claim's completion share one
transaction, and the decisions stay in the domain (``idempotency.py``) where they are
tested without AWS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws.dynamodb import condition_failed
from lambdamesh_toolkit.contracts.events import EventEnvelope
from lambdamesh_toolkit.contracts.orders import Order, OrderStatus

from .idempotency import ClaimStatus, IdempotencyClaim

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_CLAIM_NAMES = {"#key": "key", "#status": "status"}
_CLAIM_ATTEMPTS = 3


class DynamoOrderRepository:
    """Orders and idempotency claims in DynamoDB.

    Parameters
    ----------
    client
        A DynamoDB client.
    orders_table
        The orders table (key ``id``).
    idempotency_table
        The claims table (key ``key``, TTL ``expires_at``).
    """

    def __init__(self, client: DynamoDBClient, orders_table: str, idempotency_table: str) -> None:
        self._client = client
        self._orders = orders_table
        self._claims = idempotency_table

    def get(self, order_id: str) -> Order | None:
        """The order with this id, or ``None``."""
        answer = self._client.get_item(
            TableName=self._orders, Key={"id": {"S": order_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return None if item is None else _order_from_item(item)

    def add(self, order: Order, placed: EventEnvelope) -> None:
        """Store an order placed without an idempotency key, with its unpublished event."""
        self._client.put_item(
            TableName=self._orders,
            Item=_order_item(order, placed),
            ConditionExpression="attribute_not_exists(id)",
        )

    def unpublished_placement(self, order_id: str) -> EventEnvelope | None:
        """The order's ``order.placed`` envelope if it was never published, else ``None``."""
        answer = self._client.get_item(
            TableName=self._orders,
            Key={"id": {"S": order_id}},
            ConsistentRead=True,
            ProjectionExpression="placed_event, placed_published",
        )
        item = answer.get("Item")
        if item is None or "placed_event" not in item or item["placed_published"]["BOOL"]:
            return None
        return EventEnvelope.model_validate_json(item["placed_event"]["S"])

    def mark_placement_published(self, order_id: str) -> None:
        """Record that the topic confirmed the order's ``order.placed``."""
        self._client.update_item(
            TableName=self._orders,
            Key={"id": {"S": order_id}},
            UpdateExpression="SET placed_published = :yes",
            ConditionExpression="attribute_exists(id)",
            ExpressionAttributeValues={":yes": {"BOOL": True}},
        )

    def claim(self, claim: IdempotencyClaim) -> IdempotencyClaim | None:
        """Put the claim down if its key is free: ``None``; else the claim holding it."""
        for _ in range(_CLAIM_ATTEMPTS):
            try:
                self._client.put_item(
                    TableName=self._claims,
                    Item=_claim_item(claim),
                    ConditionExpression="attribute_not_exists(#key)",
                    ExpressionAttributeNames={"#key": "key"},
                )
            except ClientError as error:
                if not condition_failed(error):
                    raise
            else:
                return None
            held = self._read_claim(claim.key)
            if held is not None:
                return held
            # The holder released the key between our put and our read: try again.
        raise RuntimeError(f"idempotency key {claim.key!r} keeps changing hands")

    def take_over(self, stale: IdempotencyClaim, claim: IdempotencyClaim) -> bool:
        """Replace ``stale`` by ``claim`` if ``stale`` is still what is stored."""
        try:
            self._client.put_item(
                TableName=self._claims,
                Item=_claim_item(claim),
                ConditionExpression=(
                    "#status = :in_progress AND lease_expires_at = :lease AND order_id = :order"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":in_progress": {"S": ClaimStatus.IN_PROGRESS},
                    ":lease": {"N": str(stale.lease_expires_at)},
                    ":order": {"S": stale.order_id},
                },
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def release(self, claim: IdempotencyClaim) -> None:
        """Drop the claim if it is still this request's and still in progress."""
        try:
            self._client.delete_item(
                TableName=self._claims,
                Key={"key": {"S": claim.key}},
                ConditionExpression=_OURS_IN_PROGRESS,
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_ours_values(claim),
            )
        except ClientError as error:
            if not condition_failed(error):
                raise

    def complete(self, claim: IdempotencyClaim, order: Order, placed: EventEnvelope) -> bool:
        """Store the order (and its event) and complete the claim in one transaction.

        ``False`` when the claim was lost (nothing stored).
        """
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self._orders,
                            "Item": _order_item(order, placed),
                            "ConditionExpression": "attribute_not_exists(id)",
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._claims,
                            "Key": {"key": {"S": claim.key}},
                            "UpdateExpression": "SET #status = :completed",
                            "ConditionExpression": _OURS_IN_PROGRESS,
                            "ExpressionAttributeNames": {"#status": "status"},
                            "ExpressionAttributeValues": {
                                **_ours_values(claim),
                                ":completed": {"S": ClaimStatus.COMPLETED},
                            },
                        }
                    },
                ]
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def _read_claim(self, key: str) -> IdempotencyClaim | None:
        answer = self._client.get_item(
            TableName=self._claims, Key={"key": {"S": key}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return None if item is None else _claim_from_item(item)


_OURS_IN_PROGRESS = "order_id = :order AND #status = :in_progress AND lease_expires_at = :lease"


def _ours_values(claim: IdempotencyClaim) -> dict[str, AttributeValueTypeDef]:
    return {
        ":order": {"S": claim.order_id},
        ":in_progress": {"S": ClaimStatus.IN_PROGRESS},
        ":lease": {"N": str(claim.lease_expires_at)},
    }


def _order_item(order: Order, placed: EventEnvelope) -> dict[str, AttributeValueTypeDef]:
    return {
        "id": {"S": order.id},
        "user_id": {"S": order.user_id},
        "status": {"S": str(order.status)},
        "created_at": {"S": order.created_at.isoformat()},
        "document": {"S": order.model_dump_json()},
        "saga_version": {"N": "0"},
        "placed_event_id": {"S": placed.id},
        "placed_event": {"S": placed.model_dump_json()},
        "placed_published": {"BOOL": False},
    }


def _order_from_item(item: Mapping[str, Any]) -> Order:
    """The order as placed, in the state its saga has brought it to."""
    placed = Order.model_validate_json(item["document"]["S"])
    reason = item.get("cancel_reason", {}).get("S")
    return placed.model_copy(
        update={"status": OrderStatus(item["status"]["S"]), "cancel_reason": reason}
    )


def _claim_item(claim: IdempotencyClaim) -> dict[str, AttributeValueTypeDef]:
    return {
        "key": {"S": claim.key},
        "fingerprint": {"S": claim.fingerprint},
        "order_id": {"S": claim.order_id},
        "status": {"S": claim.status},
        "lease_expires_at": {"N": str(claim.lease_expires_at)},
        "expires_at": {"N": str(claim.expires_at)},
    }


def _claim_from_item(item: Mapping[str, Any]) -> IdempotencyClaim:
    return IdempotencyClaim(
        key=item["key"]["S"],
        fingerprint=item["fingerprint"]["S"],
        order_id=item["order_id"]["S"],
        status=ClaimStatus(item["status"]["S"]),
        lease_expires_at=int(item["lease_expires_at"]["N"]),
        expires_at=int(item["expires_at"]["N"]),
    )
