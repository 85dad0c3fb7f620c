"""DynamoDB adapter for ``Idempotency-Key`` records, written with the order's first event.

The keys table, key ``key``: ``fingerprint``, ``order_id`` and ``expires_at`` (the table's
TTL attribute).

Appending an order's ``order.placed`` to its new event stream and putting its key's record
is one transaction, conditioned on the key being free (no record, or one past its
``expires_at``: DynamoDB deletes expired items up to days late), so a key never yields two
orders, even when requests race; the record holding the key comes back with the refusal
(``ReturnValuesOnConditionCheckFailure``), so answering a repeat costs no extra read.

Powertools' idempotency utility was considered and not used: it stores the result after
the function returned, in a write separate from the order's, so a crash between the two
leaves an order whose key is forgotten once the record expires and the retry places a
second order; and it claims the key with a write of its own before the function runs. Here
the order and its key share one write, and the decisions stay in the domain
(``idempotency.py``) where they are tested without AWS.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws.dynamodb import cancellation_reasons, condition_failed
from lambdamesh_toolkit.contracts.events import EventEnvelope
from lambdamesh_toolkit.events.store import ITEM_TRANSACTION_CONFLICT, EventStore

from .idempotency import KeyBusy, KeyRecord
from .order import stream_id

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef


class DynamoKeyRecords:
    """``Idempotency-Key`` records in DynamoDB, each written with the order it placed.

    Parameters
    ----------
    client
        A DynamoDB client.
    idempotency_table
        The keys table (key ``key``, TTL ``expires_at``).
    streams
        The event store the orders' streams are in.
    """

    def __init__(self, client: DynamoDBClient, idempotency_table: str, streams: EventStore) -> None:
        self._client = client
        self._keys = idempotency_table
        self._streams = streams

    def place(self, record: KeyRecord, placed: EventEnvelope, now_s: int) -> KeyRecord | None:
        """Append ``order.placed`` to the new stream of ``record``'s order and put ``record``,
        in one transaction, if its key is free at ``now_s``: ``None``; else the record holding
        the key (nothing stored).

        Raises
        ------
        ConcurrencyError
            When the order's stream already has events (nothing stored).
        KeyBusy
            When another transaction was writing the same key at that moment (DynamoDB
            cancels both sides of such a race: ``TransactionConflict``).
        """
        put: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self._keys,
                "Item": _item(record),
                "ConditionExpression": "attribute_not_exists(#key) OR expires_at <= :now",
                "ExpressionAttributeNames": {"#key": "key"},
                "ExpressionAttributeValues": {":now": {"N": str(now_s)}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }
        try:
            self._streams.append(
                stream_id(record.order_id), [placed], expected_version=0, also=[put]
            )
        except ClientError as error:
            reasons = cancellation_reasons(error) or []
            if any(reason.code == ITEM_TRANSACTION_CONFLICT for reason in reasons):
                raise KeyBusy(record.key) from error
            if not condition_failed(error):
                raise
            held = reasons[-1:]
            if held and held[0].item is not None:
                return _record_from_item(held[0].item)
            # No old image came back with the refusal: read what holds the key.
            holder = self.read(record.key, now_s)
            if holder is None:
                raise
            return holder
        return None

    def read(self, key: str, now_s: int) -> KeyRecord | None:
        """The record holding ``key`` at ``now_s``, if any (an expired one holds nothing)."""
        answer = self._client.get_item(
            TableName=self._keys, Key={"key": {"S": key}}, ConsistentRead=True
        )
        item = answer.get("Item")
        if item is None:
            return None
        record = _record_from_item(item)
        return record if record.expires_at > now_s else None


def _item(record: KeyRecord) -> dict[str, AttributeValueTypeDef]:
    return {
        "key": {"S": record.key},
        "fingerprint": {"S": record.fingerprint},
        "order_id": {"S": record.order_id},
        "expires_at": {"N": str(record.expires_at)},
    }


def _record_from_item(item: Mapping[str, Any]) -> KeyRecord:
    return KeyRecord(
        key=item["key"]["S"],
        fingerprint=item["fingerprint"]["S"],
        order_id=item["order_id"]["S"],
        expires_at=int(item["expires_at"]["N"]),
    )
