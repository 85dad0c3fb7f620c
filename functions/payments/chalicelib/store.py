"""DynamoDB adapter for payments: one item per order, key ``order_id`` (string).

The first record of an order is put with ``attribute_not_exists(order_id)`` (one charge
per order, ever); a refund is an update conditioned on ``status = processed`` (one refund
per charge). The events announcing them are kept as JSON in ``outcome_event`` and
``refund_event``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from lambdamesh_toolkit.aws.dynamodb import conditional_put, put_if_absent
from lambdamesh_toolkit.contracts.events import EventEnvelope

from .domain import Payment, PaymentStatus

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef


class DynamoPaymentRepository:
    """Payments in a DynamoDB table.

    Parameters
    ----------
    client
        A DynamoDB client.
    table_name
        The payments table (key ``order_id``).
    """

    def __init__(self, client: DynamoDBClient, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def get(self, order_id: str) -> Payment | None:
        """The order's payment, or ``None``."""
        answer = self._client.get_item(
            TableName=self._table, Key={"order_id": {"S": order_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return None if item is None else _payment_from_item(item)

    def add(self, payment: Payment) -> bool:
        """Store the order's first record; ``False`` if it has one already."""
        return put_if_absent(self._client, self._table, _item_from_payment(payment), "order_id")

    def refund(self, payment: Payment) -> bool:
        """Replace a processed payment by ``payment`` (refunded); ``False`` if not processed."""
        return conditional_put(
            self._client,
            TableName=self._table,
            Item=_item_from_payment(payment),
            ConditionExpression="#status = :processed",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={":processed": {"S": PaymentStatus.PROCESSED}},
        )


_OPTIONAL_TEXT = ("payment_id", "decline_reason", "refund_id")


def _item_from_payment(payment: Payment) -> dict[str, AttributeValueTypeDef]:
    item: dict[str, AttributeValueTypeDef] = {
        "order_id": {"S": payment.order_id},
        "status": {"S": payment.status},
        "amount_cents": {"N": str(payment.amount_cents)},
        "currency": {"S": payment.currency},
    }
    for name in _OPTIONAL_TEXT:
        value = getattr(payment, name)
        if value is not None:
            item[name] = {"S": value}
    if payment.outcome_event is not None:
        item["outcome_event"] = {"S": payment.outcome_event.model_dump_json()}
    if payment.refund_event is not None:
        item["refund_event"] = {"S": payment.refund_event.model_dump_json()}
    if payment.updated_at is not None:
        item["updated_at"] = {"S": payment.updated_at.isoformat()}
    return item


def _payment_from_item(item: Mapping[str, Any]) -> Payment:
    def text(name: str) -> str | None:
        value = item.get(name)
        return None if value is None else str(value["S"])

    def envelope(name: str) -> EventEnvelope | None:
        raw = text(name)
        return None if raw is None else EventEnvelope.model_validate_json(raw)

    updated_at = text("updated_at")
    return Payment(
        order_id=item["order_id"]["S"],
        status=PaymentStatus(item["status"]["S"]),
        amount_cents=int(item["amount_cents"]["N"]),
        currency=item["currency"]["S"],
        payment_id=text("payment_id"),
        decline_reason=text("decline_reason"),
        refund_id=text("refund_id"),
        outcome_event=envelope("outcome_event"),
        refund_event=envelope("refund_event"),
        updated_at=None if updated_at is None else datetime.fromisoformat(updated_at),
    )
