"""DynamoDB adapter for the order saga: its state lives on the order's own item.

Attributes of the orders table's item (see ``store``): ``status``, ``cancel_reason``,
``payment``, ``inventory``, ``saga_version`` (a number, 0 when placed) and ``outbox`` (a
list of event envelopes as JSON, decided but not yet published).

Every change is an ``UpdateItem`` conditioned on ``saga_version`` being the version the
change was decided from, and writes the next version: of two outcomes handled at once
for one order, one wins and the other decides again from the winner's state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws.dynamodb import condition_failed
from lambdamesh_toolkit.contracts.events import EventEnvelope
from lambdamesh_toolkit.contracts.orders import OrderStatus

from .outcomes import SagaRecord
from .saga import InventoryOutcome, PaymentOutcome, SagaState

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

_SAGA_ATTRIBUTES = "id, user_id, #status, cancel_reason, payment, inventory, saga_version, outbox"


class DynamoSagaRepository:
    """Saga states and outboxes on the orders' items.

    Parameters
    ----------
    client
        A DynamoDB client.
    orders_table
        The orders table (key ``id``).
    """

    def __init__(self, client: DynamoDBClient, orders_table: str) -> None:
        self._client = client
        self._orders = orders_table

    def load_saga(self, order_id: str) -> SagaRecord | None:
        """The order's saga, or ``None`` when there is no such order."""
        answer = self._client.get_item(
            TableName=self._orders,
            Key={"id": {"S": order_id}},
            ConsistentRead=True,
            ProjectionExpression=_SAGA_ATTRIBUTES,
            ExpressionAttributeNames={"#status": "status"},
        )
        item = answer.get("Item")
        return None if item is None else _record_from_item(item)

    def save_saga(self, record: SagaRecord) -> bool:
        """Store ``record`` as the next version, if the stored one is still ``state.version``."""
        state = record.state
        values: dict[str, AttributeValueTypeDef] = {
            ":status": {"S": str(state.status)},
            ":next": {"N": str(state.version + 1)},
            ":expected": {"N": str(state.version)},
            ":outbox": {"L": [{"S": envelope.model_dump_json()} for envelope in record.outbox]},
        }
        assignments = ["#status = :status", "saga_version = :next", "outbox = :outbox"]
        removals = []
        for name, value in (
            ("payment", state.payment),
            ("inventory", state.inventory),
            ("cancel_reason", state.cancel_reason),
        ):
            if value is None:
                removals.append(name)
            else:
                assignments.append(f"{name} = :{name}")
                values[f":{name}"] = {"S": str(value)}
        update = "SET " + ", ".join(assignments)
        if removals:
            update += " REMOVE " + ", ".join(removals)
        try:
            self._client.update_item(
                TableName=self._orders,
                Key={"id": {"S": state.order_id}},
                UpdateExpression=update,
                ConditionExpression="saga_version = :expected",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def clear_outbox(self, order_id: str, version: int) -> None:
        """Empty the outbox if the state is still at ``version``.

        If it moved on, the newer state's outbox holds everything this one did and
        whoever wrote it publishes it; publishing twice is harmless (same event ids).
        """
        try:
            self._client.update_item(
                TableName=self._orders,
                Key={"id": {"S": order_id}},
                UpdateExpression="SET outbox = :empty",
                ConditionExpression="saga_version = :version",
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":version": {"N": str(version)},
                },
            )
        except ClientError as error:
            if not condition_failed(error):
                raise


def _record_from_item(item: Mapping[str, Any]) -> SagaRecord:
    payment = item.get("payment", {}).get("S")
    inventory = item.get("inventory", {}).get("S")
    state = SagaState(
        order_id=item["id"]["S"],
        user_id=item["user_id"]["S"],
        status=OrderStatus(item["status"]["S"]),
        payment=None if payment is None else PaymentOutcome(payment),
        inventory=None if inventory is None else InventoryOutcome(inventory),
        cancel_reason=item.get("cancel_reason", {}).get("S"),
        version=int(item.get("saga_version", {}).get("N", "0")),
    )
    outbox = tuple(
        EventEnvelope.model_validate_json(entry["S"])
        for entry in item.get("outbox", {}).get("L", [])
    )
    return SagaRecord(state=state, outbox=outbox)
