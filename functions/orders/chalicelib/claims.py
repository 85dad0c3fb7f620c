"""DynamoDB adapter for ``Idempotency-Key`` claims, completed with the order's first event.

The claims table, key ``key``: ``fingerprint``, ``order_id``, ``status``,
``lease_expires_at``, and ``expires_at`` (the table's TTL attribute).

Claiming a key is a conditional put; appending the order's ``order.placed`` to its new event
stream and completing the claim is one transaction conditioned on the claim still being ours,
so a key never yields two orders, even when requests race or one outlives its lease.

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

from lambdamesh_toolkit.aws.dynamodb import condition_failed, conditional_put, put_if_absent
from lambdamesh_toolkit.contracts.events import EventEnvelope
from lambdamesh_toolkit.events.store import EventStore

from .idempotency import ClaimStatus, IdempotencyClaim
from .order import stream_id

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef

_CLAIM_ATTEMPTS = 3


class DynamoClaims:
    """Idempotency claims in DynamoDB, completed together with the order's first event.

    Parameters
    ----------
    client
        A DynamoDB client.
    idempotency_table
        The claims table (key ``key``, TTL ``expires_at``).
    streams
        The event store the orders' streams are in.
    """

    def __init__(self, client: DynamoDBClient, idempotency_table: str, streams: EventStore) -> None:
        self._client = client
        self._claims = idempotency_table
        self._streams = streams

    def claim(self, claim: IdempotencyClaim) -> IdempotencyClaim | None:
        """Put the claim down if its key is free: ``None``; else the claim holding it."""
        for _ in range(_CLAIM_ATTEMPTS):
            if put_if_absent(self._client, self._claims, _claim_item(claim), "key"):
                return None
            held = self._read_claim(claim.key)
            if held is not None:
                return held
            # The holder released the key between our put and our read: try again.
        raise RuntimeError(f"idempotency key {claim.key!r} keeps changing hands")

    def take_over(self, stale: IdempotencyClaim, claim: IdempotencyClaim) -> bool:
        """Replace ``stale`` by ``claim`` if ``stale`` is still what is stored."""
        return conditional_put(
            self._client,
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

    def complete(self, claim: IdempotencyClaim, placed: EventEnvelope) -> bool:
        """Append ``order.placed`` to the order's new stream and complete the claim, in one
        transaction.

        ``False`` when the claim was lost (nothing stored).

        Raises
        ------
        ConcurrencyError
            When the order's stream already has events (nothing stored).
        """
        completion: TransactWriteItemTypeDef = {
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
        }
        try:
            self._streams.append(
                stream_id(claim.order_id), [placed], expected_version=0, also=[completion]
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
