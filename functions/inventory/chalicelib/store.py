"""DynamoDB adapter for inventory: stock levels and reservations.

Two tables:

- stock, key ``product_id``: ``stock`` (number of units), ``stock_version`` (1 when the
  product was stocked, one more with every write that changes ``stock``: the stream's
  publisher numbers ``inventory.stock_changed`` with it, so consumers keep the newest level)
  ``correlation_id`` (of the request whose write changed ``stock`` last: the event
  carries it on) and ``traceparent`` (of the hop that made that write: the stream's publisher
  continues its trace, :mod:`lambdamesh_toolkit.trace_context`);
- reservations, key ``order_id``: ``status``, ``reservation_id``, ``lines`` (JSON list of
  ``{product_id, quantity}``), and the events announcing it as JSON (``outcome_event``,
  ``release_event``).

A reservation is one transaction: the record, put with ``attribute_not_exists(order_id)``,
and one update per product, ``stock = stock - quantity`` conditioned on ``stock >=
quantity``; so stock never goes negative, and an order never reserves twice. A release is
the reverse, conditioned on the record still being ``reserved``. Every write that changes a
level adds one to its ``stock_version`` in the same update (:data:`NEXT_STOCK_VERSION`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws.dynamodb import (
    CancellationReason,
    cancellation_reasons,
    condition_failed,
    put_if_absent,
)
from lambdamesh_toolkit.contracts.events import EventEnvelope
from lambdamesh_toolkit.correlation import current_correlation_id
from lambdamesh_toolkit.trace_context import TRACEPARENT, current_traceparent

from .domain import Reservation, ReservationStatus, ReserveResult, Shortage, StockLine
from .stock_changes import CORRELATION_ATTRIBUTE
from .stock_changes import VERSION_ATTRIBUTE as STOCK_VERSION_ATTRIBUTE

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef


NEXT_STOCK_VERSION = f"ADD {STOCK_VERSION_ATTRIBUTE} :one"
"""The clause every update of ``stock`` carries (with ``:one`` = 1); ``ADD`` starts a version
that is missing (an item stocked before versions existed) at 1."""

_ONE: AttributeValueTypeDef = {"N": "1"}


class DynamoInventoryRepository:
    """Stock and reservations in DynamoDB.

    Parameters
    ----------
    client
        A DynamoDB client.
    stock_table
        The stock table (key ``product_id``).
    reservations_table
        The reservations table (key ``order_id``).
    """

    def __init__(self, client: DynamoDBClient, stock_table: str, reservations_table: str) -> None:
        self._client = client
        self._stock = stock_table
        self._reservations = reservations_table

    def get(self, order_id: str) -> Reservation | None:
        """The order's reservation record, or ``None``."""
        answer = self._client.get_item(
            TableName=self._reservations, Key={"order_id": {"S": order_id}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return None if item is None else _reservation_from_item(item)

    def reserve(self, reservation: Reservation) -> ReserveResult | Shortage:
        """Take every line's stock and store the record, all or nothing."""
        record: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self._reservations,
                "Item": _item_from_reservation(reservation),
                "ConditionExpression": "attribute_not_exists(order_id)",
            }
        }
        traced, trace_values = _traced_write()
        takes: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self._stock,
                    "Key": {"product_id": {"S": line.product_id}},
                    "UpdateExpression": (
                        f"SET stock = stock - :wanted, {CORRELATION_ATTRIBUTE} = :correlation"
                        f"{traced} {NEXT_STOCK_VERSION}"
                    ),
                    "ConditionExpression": "attribute_exists(product_id) AND stock >= :wanted",
                    "ExpressionAttributeValues": {
                        ":wanted": {"N": str(line.quantity)},
                        ":correlation": {"S": current_correlation_id()},
                        ":one": _ONE,
                        **trace_values,
                    },
                    # The stock level at refusal, to say how much there was.
                    "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                }
            }
            for line in reservation.lines
        ]
        try:
            self._client.transact_write_items(TransactItems=[record, *takes])
        except ClientError as error:
            if not condition_failed(error):
                raise
            return _refusal(cancellation_reasons(error) or [], reservation.lines)
        return ReserveResult.RESERVED

    def add(self, reservation: Reservation) -> bool:
        """Store a record that takes no stock; ``False`` if the order has one already."""
        item = _item_from_reservation(reservation)
        return put_if_absent(self._client, self._reservations, item, "order_id")

    def release(self, reservation: Reservation) -> bool:
        """Mark the reserved record released and give its stock back, all or nothing."""
        record: TransactWriteItemTypeDef = {
            "Put": {
                "TableName": self._reservations,
                "Item": _item_from_reservation(reservation),
                "ConditionExpression": "#status = :reserved",
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": {":reserved": {"S": ReservationStatus.RESERVED}},
            }
        }
        traced, trace_values = _traced_write()
        gives: list[TransactWriteItemTypeDef] = [
            {
                "Update": {
                    "TableName": self._stock,
                    "Key": {"product_id": {"S": line.product_id}},
                    "UpdateExpression": (
                        f"SET stock = stock + :returned, {CORRELATION_ATTRIBUTE} = :correlation"
                        f"{traced} {NEXT_STOCK_VERSION}"
                    ),
                    "ExpressionAttributeValues": {
                        ":returned": {"N": str(line.quantity)},
                        ":correlation": {"S": current_correlation_id()},
                        ":one": _ONE,
                        **trace_values,
                    },
                }
            }
            for line in reservation.lines
        ]
        try:
            self._client.transact_write_items(TransactItems=[record, *gives])
        except ClientError as error:
            if not condition_failed(error):
                raise
            return False
        return True

    def add_product_if_absent(self, product_id: str, stock: int) -> bool:
        """Stock a product unless it is stocked already; whether it was added."""
        item: dict[str, AttributeValueTypeDef] = {
            "product_id": {"S": product_id},
            "stock": {"N": str(stock)},
            STOCK_VERSION_ATTRIBUTE: _ONE,
            CORRELATION_ATTRIBUTE: {"S": current_correlation_id()},
        }
        traceparent = current_traceparent()
        if traceparent is not None:
            item[TRACEPARENT] = {"S": traceparent}
        return put_if_absent(self._client, self._stock, item, "product_id")


def _traced_write() -> tuple[str, dict[str, AttributeValueTypeDef]]:
    """What a write of ``stock`` adds to its ``SET`` clause, and the values that go with it:
    the ``traceparent`` of the hop making it; outside any hop, none is kept (``REMOVE``)."""
    traceparent = current_traceparent()
    if traceparent is None:
        return f" REMOVE {TRACEPARENT}", {}
    return f", {TRACEPARENT} = :traceparent", {":traceparent": {"S": traceparent}}


def _refusal(
    reasons: list[CancellationReason], lines: tuple[StockLine, ...]
) -> ReserveResult | Shortage:
    """What a cancelled reservation means; ``reasons`` align with ``[record, *lines]``."""
    if reasons and reasons[0].condition_failed:
        return ReserveResult.ALREADY_RECORDED
    for line, reason in zip(lines, reasons[1:], strict=False):
        if reason.condition_failed:
            available = None if not reason.item else int(reason.item["stock"]["N"])
            return Shortage(line.product_id, line.quantity, available)
    raise RuntimeError(f"reservation cancelled without a failed condition: {reasons}")


def _item_from_reservation(reservation: Reservation) -> dict[str, AttributeValueTypeDef]:
    item: dict[str, AttributeValueTypeDef] = {
        "order_id": {"S": reservation.order_id},
        "status": {"S": reservation.status},
        "reservation_id": {"S": reservation.reservation_id},
        "lines": {
            "S": json.dumps(
                [
                    {"product_id": line.product_id, "quantity": line.quantity}
                    for line in reservation.lines
                ]
            )
        },
    }
    if reservation.outcome_event is not None:
        item["outcome_event"] = {"S": reservation.outcome_event.model_dump_json()}
    if reservation.release_event is not None:
        item["release_event"] = {"S": reservation.release_event.model_dump_json()}
    return item


def _reservation_from_item(item: Mapping[str, Any]) -> Reservation:
    def envelope(name: str) -> EventEnvelope | None:
        value = item.get(name)
        return None if value is None else EventEnvelope.model_validate_json(value["S"])

    return Reservation(
        order_id=item["order_id"]["S"],
        status=ReservationStatus(item["status"]["S"]),
        reservation_id=item["reservation_id"]["S"],
        lines=tuple(
            StockLine(str(line["product_id"]), int(line["quantity"]))
            for line in json.loads(item["lines"]["S"])
        ),
        outcome_event=envelope("outcome_event"),
        release_event=envelope("release_event"),
    )
