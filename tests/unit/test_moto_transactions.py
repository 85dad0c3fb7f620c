"""moto's TransactWriteItems with an item-level rollback (the embedded LocalStack's DynamoDB).

Run against the project's own moto in-process: the patch imports moto only. Every test
installs it through ``monkeypatch``, so moto is as it was for the other tests afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import moto.dynamodb.models as moto_dynamodb_models
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.table import Table

from lambdamesh_localstack import moto_transactions

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.type_defs import StreamSpecificationTypeDef

REGION = "us-east-1"
ORDERS = "orders"
LINES = "lines"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto DynamoDB with the patch installed: ``orders`` (hash key) and ``lines``
    (hash + range key), both with streams."""
    monkeypatch.setattr(
        DynamoDBBackend, "transact_write_items", DynamoDBBackend.transact_write_items
    )
    monkeypatch.setattr(moto_dynamodb_models, "copy", moto_dynamodb_models.__dict__["copy"])
    moto_transactions.install()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        streams: StreamSpecificationTypeDef = {
            "StreamEnabled": True,
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        }
        client.create_table(
            TableName=ORDERS,
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=streams,
        )
        client.create_table(
            TableName=LINES,
            KeySchema=[
                {"AttributeName": "order_id", "KeyType": "HASH"},
                {"AttributeName": "line", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "order_id", "AttributeType": "S"},
                {"AttributeName": "line", "AttributeType": "N"},
            ],
            BillingMode="PAY_PER_REQUEST",
            StreamSpecification=streams,
        )
        yield client


def moto_table(name: str) -> Table:
    table: Table = dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables[name]
    return table


def stream_length(name: str) -> int:
    shard = moto_table(name).stream_shard
    assert shard is not None
    return len(shard.items)


def scan(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.scan(TableName=table, ConsistentRead=True)["Items"]
    return sorted(items, key=repr)


def put_order(client: Any, order_id: str, status: str) -> None:
    client.put_item(TableName=ORDERS, Item={"id": {"S": order_id}, "status": {"S": status}})


def test_a_cancelled_transaction_leaves_every_item_and_the_streams_as_they_were(
    dynamodb: Any,
) -> None:
    # GIVEN two orders and a line
    put_order(dynamodb, "o-1", "placed")
    put_order(dynamodb, "o-2", "placed")
    dynamodb.put_item(TableName=LINES, Item={"order_id": {"S": "o-1"}, "line": {"N": "1"}})
    before = {table: scan(dynamodb, table) for table in (ORDERS, LINES)}
    streams = {table: stream_length(table) for table in (ORDERS, LINES)}
    # WHEN a transaction puts a new order and a line in a new partition, updates one order,
    # deletes a line, and its last condition fails
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": ORDERS, "Item": {"id": {"S": "o-3"}}}},
                {
                    "Put": {
                        "TableName": LINES,
                        "Item": {"order_id": {"S": "o-3"}, "line": {"N": "1"}},
                    }
                },
                {
                    "Update": {
                        "TableName": ORDERS,
                        "Key": {"id": {"S": "o-1"}},
                        "UpdateExpression": "SET #s = :s",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "confirmed"}},
                    }
                },
                {
                    "Delete": {
                        "TableName": LINES,
                        "Key": {"order_id": {"S": "o-1"}, "line": {"N": "1"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": ORDERS,
                        "Key": {"id": {"S": "o-2"}},
                        "ConditionExpression": "#s = :s",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {":s": {"S": "cancelled"}},
                    }
                },
            ]
        )
    # THEN DynamoDB's cancellation is raised, naming the failed condition
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    assert "ConditionalCheckFailed" in raised.value.response["Error"]["Message"]
    # AND every item is as it was, with no partition left behind and no stream record written
    assert {table: scan(dynamodb, table) for table in (ORDERS, LINES)} == before
    assert "o-3" not in {str(key.value) for key in moto_table(LINES).items}
    assert {table: stream_length(table) for table in (ORDERS, LINES)} == streams


def test_a_transaction_naming_one_item_twice_is_refused_and_changes_nothing(
    dynamodb: Any,
) -> None:
    # GIVEN an order
    put_order(dynamodb, "o-1", "placed")
    before = scan(dynamodb, ORDERS)
    # WHEN a transaction writes a new order and then names the first one twice
    update = {
        "Update": {
            "TableName": ORDERS,
            "Key": {"id": {"S": "o-1"}},
            "UpdateExpression": "SET #s = :s",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":s": {"S": "confirmed"}},
        }
    }
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": ORDERS, "Item": {"id": {"S": "o-9"}}}},
                update,
                update,
            ]
        )
    # THEN it is a validation error and the table is unchanged
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert scan(dynamodb, ORDERS) == before


def test_a_committed_transaction_writes_every_item_and_its_stream_records(dynamodb: Any) -> None:
    # GIVEN an order
    put_order(dynamodb, "o-1", "placed")
    streams = stream_length(ORDERS)
    # WHEN a transaction whose condition holds confirms it and adds a line
    dynamodb.transact_write_items(
        TransactItems=[
            {
                "Update": {
                    "TableName": ORDERS,
                    "Key": {"id": {"S": "o-1"}},
                    "UpdateExpression": "SET #s = :s",
                    "ConditionExpression": "#s = :placed",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {
                        ":s": {"S": "confirmed"},
                        ":placed": {"S": "placed"},
                    },
                }
            },
            {"Put": {"TableName": LINES, "Item": {"order_id": {"S": "o-1"}, "line": {"N": "1"}}}},
        ]
    )
    # THEN both writes are there, each with its stream record
    order = dynamodb.get_item(TableName=ORDERS, Key={"id": {"S": "o-1"}})["Item"]
    assert order["status"] == {"S": "confirmed"}
    assert len(scan(dynamodb, LINES)) == 1
    assert stream_length(ORDERS) == streams + 1


def test_a_transaction_does_not_copy_the_tables_it_touches(dynamodb: Any) -> None:
    # GIVEN a table that cannot be deep-copied (moto's own rollback point would fail on it)
    moto_table(ORDERS).not_copyable = threading.Lock()  # type: ignore[attr-defined]
    put_order(dynamodb, "o-1", "placed")
    # WHEN a transaction fails and another succeeds on it
    failing = {
        "ConditionCheck": {
            "TableName": ORDERS,
            "Key": {"id": {"S": "o-1"}},
            "ConditionExpression": "attribute_not_exists(id)",
        }
    }
    with pytest.raises(ClientError):
        dynamodb.transact_write_items(
            TransactItems=[{"Put": {"TableName": ORDERS, "Item": {"id": {"S": "o-2"}}}}, failing]
        )
    dynamodb.transact_write_items(
        TransactItems=[{"Put": {"TableName": ORDERS, "Item": {"id": {"S": "o-3"}}}}]
    )
    # THEN both ran to their end without copying it: o-2 rolled back, o-3 written
    assert [item["id"]["S"] for item in scan(dynamodb, ORDERS)] == ["o-1", "o-3"]


def test_installing_twice_wraps_moto_once(dynamodb: Any) -> None:
    # GIVEN the patch installed by the fixture
    installed = DynamoDBBackend.transact_write_items
    # WHEN it is installed again
    moto_transactions.install()
    # THEN the method is the same wrapper, not a wrapper of the wrapper
    assert DynamoDBBackend.transact_write_items is installed
