"""DynamoDB and DynamoDB Streams on the embedded runtime (served by moto, no Java)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError

from tests.e2e.lambda_support import create_function, unique_name, wait_until

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.literals import StreamViewTypeType
    from mypy_boto3_dynamodb.type_defs import StreamSpecificationTypeDef
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_lambda import LambdaClient

DELIVERY_TIMEOUT_SECONDS = 60.0

# Writes every stream record it receives, verbatim, into the sink table, keyed by the
# source item's key: the test reads back exactly what Lambda was given.
RECORDER = """
    import json
    import os

    import boto3

    SINK = boto3.resource("dynamodb").Table(os.environ["SINK_TABLE"])


    def handler(event, context):
        for record in event["Records"]:
            key = record["dynamodb"]["Keys"]["pk"]["S"]
            SINK.put_item(Item={"pk": f"{key}#{record['eventName']}", "record": json.dumps(record)})
"""


@pytest.fixture
def dynamodb(emulator: Any) -> DynamoDBClient:
    client: DynamoDBClient = emulator.client("dynamodb")
    return client


@pytest.fixture
def table(dynamodb: DynamoDBClient) -> Iterator[str]:
    name = _create_table(dynamodb, "items")
    yield name
    dynamodb.delete_table(TableName=name)


def test_conditional_put_on_existing_item_fails_with_conditional_check_failed(
    dynamodb: DynamoDBClient, table: str
) -> None:
    # GIVEN an item exists
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "order-1"}, "state": {"S": "placed"}})

    # WHEN it is written again on condition that it does not exist
    with pytest.raises(ClientError) as raised:
        dynamodb.put_item(
            TableName=table,
            Item={"pk": {"S": "order-1"}, "state": {"S": "overwritten"}},
            ConditionExpression="attribute_not_exists(pk)",
        )

    # THEN the write is refused with ConditionalCheckFailedException and the item is unchanged
    assert raised.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    item = dynamodb.get_item(TableName=table, Key={"pk": {"S": "order-1"}})["Item"]
    assert item["state"] == {"S": "placed"}


def test_transaction_with_a_failing_condition_is_cancelled_with_reasons_and_writes_nothing(
    dynamodb: DynamoDBClient, table: str
) -> None:
    # GIVEN an item whose condition will fail
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "stock-1"}, "count": {"N": "0"}})

    # WHEN a transaction puts a new item and decrements the empty stock on condition count > 0
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "reservation-1"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": "stock-1"}},
                        "UpdateExpression": "SET #c = #c - :one",
                        "ConditionExpression": "#c > :zero",
                        "ExpressionAttributeNames": {"#c": "count"},
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}},
                    }
                },
            ]
        )

    # THEN it is cancelled, with one reason per item, and the first put did not happen
    error = raised.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    reasons = [reason["Code"] for reason in error.get("CancellationReasons", [])]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert "Item" not in dynamodb.get_item(TableName=table, Key={"pk": {"S": "reservation-1"}})


def test_stream_records_read_through_the_streams_api_have_the_aws_shape(
    emulator: Any, dynamodb: DynamoDBClient
) -> None:
    # GIVEN a NEW_AND_OLD_IMAGES stream on a table where an item is inserted, changed, deleted
    streams: DynamoDBStreamsClient = emulator.client("dynamodbstreams")
    source = _create_table(dynamodb, "history", stream_view_type="NEW_AND_OLD_IMAGES")
    key = {"pk": {"S": "cart-7"}}
    dynamodb.put_item(TableName=source, Item={**key, "items": {"N": "1"}})
    dynamodb.put_item(TableName=source, Item={**key, "items": {"N": "2"}})
    dynamodb.delete_item(TableName=source, Key=key)

    # WHEN the shard is read from its oldest record, then once more from where that read ended
    iterator = _oldest_record_iterator(dynamodb, streams, source)
    first = streams.get_records(ShardIterator=iterator)
    second = streams.get_records(ShardIterator=first["NextShardIterator"])

    # THEN the three changes come in order, with only the images AWS sends for each,
    # and the next read is empty but still hands out an iterator (the shard is open)
    changes = [
        (record["eventName"], sorted(record["dynamodb"].keys() & {"NewImage", "OldImage"}))
        for record in first["Records"]
    ]
    assert changes == [
        ("INSERT", ["NewImage"]),
        ("MODIFY", ["NewImage", "OldImage"]),
        ("REMOVE", ["OldImage"]),
    ]
    assert first["Records"][1]["dynamodb"]["OldImage"]["items"] == {"N": "1"}
    assert second["Records"] == []
    assert second["NextShardIterator"]
    dynamodb.delete_table(TableName=source)


def test_stream_records_carry_binary_values_as_written_and_a_write_changing_nothing_makes_none(
    emulator: Any, dynamodb: DynamoDBClient
) -> None:
    # GIVEN a stream on a table where an item with every kind of binary value is put, put
    # again unchanged, updated to the values it has, then changed
    streams: DynamoDBStreamsClient = emulator.client("dynamodbstreams")
    source = _create_table(dynamodb, "binary", stream_view_type="NEW_AND_OLD_IMAGES")
    item: dict[str, Any] = {
        "pk": {"S": "blob-1"},
        "b": {"B": b"\x00\xffbinary"},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "nested": {"M": {"inner": {"B": b"\x10"}, "list": {"L": [{"B": b"\x20"}]}}},
        "n": {"N": "1"},
    }
    dynamodb.put_item(TableName=source, Item=item)
    dynamodb.put_item(TableName=source, Item=item)
    dynamodb.update_item(
        TableName=source,
        Key={"pk": item["pk"]},
        UpdateExpression="SET n = :same",
        ExpressionAttributeValues={":same": {"N": "1"}},
    )
    dynamodb.update_item(
        TableName=source,
        Key={"pk": item["pk"]},
        UpdateExpression="SET n = :two",
        ExpressionAttributeValues={":two": {"N": "2"}},
    )
    # WHEN the shard is read
    iterator = _oldest_record_iterator(dynamodb, streams, source)
    records = streams.get_records(ShardIterator=iterator)["Records"]
    # THEN the two writes that changed nothing made no record
    assert [record["eventName"] for record in records] == ["INSERT", "MODIFY"]
    # AND binary values come back as the bytes written, at every depth
    image = records[0]["dynamodb"]["NewImage"]
    assert image["b"] == {"B": b"\x00\xffbinary"}
    assert sorted(image["bs"]["BS"]) == [b"\x01", b"\x02"]
    assert image["nested"]["M"]["inner"] == {"B": b"\x10"}
    assert image["nested"]["M"]["list"]["L"] == [{"B": b"\x20"}]
    assert records[1]["dynamodb"]["OldImage"]["b"] == {"B": b"\x00\xffbinary"}
    dynamodb.delete_table(TableName=source)


def test_a_malformed_shard_iterator_is_a_validation_error(emulator: Any) -> None:
    # GIVEN an iterator the service never handed out
    streams: DynamoDBStreamsClient = emulator.client("dynamodbstreams")

    # WHEN records are read with it
    with pytest.raises(ClientError) as raised:
        streams.get_records(ShardIterator="not-an-iterator")

    # THEN the request is refused as invalid (not an internal error)
    assert raised.value.response["Error"]["Code"] == "ValidationException"


@dataclass(frozen=True)
class RecordedStream:
    """A table's stream mapped to :data:`RECORDER`, which puts each record it gets in ``sink``."""

    source: str
    sink: str
    stream_arn: str


@contextmanager
def recorded_stream(
    emulator: Any, dynamodb: DynamoDBClient, view_type: StreamViewTypeType, **settings: Any
) -> Iterator[RecordedStream]:
    """A stream of ``view_type`` mapped (with ``settings``) to the recording function, from its
    oldest record; everything removed afterwards."""
    lambda_client: LambdaClient = emulator.client("lambda")
    source = _create_table(dynamodb, "source", stream_view_type=view_type)
    sink = _create_table(dynamodb, "recorded")
    stream_arn = dynamodb.describe_table(TableName=source)["Table"]["LatestStreamArn"]
    function = create_function(
        lambda_client,
        RECORDER,
        name=unique_name("stream-recorder"),
        environment={"SINK_TABLE": sink},
    )
    mapping = lambda_client.create_event_source_mapping(
        FunctionName=function,
        EventSourceArn=stream_arn,
        StartingPosition="TRIM_HORIZON",
        **settings,
    )["UUID"]
    try:
        _wait_until_mapping_enabled(lambda_client, mapping)
        yield RecordedStream(source, sink, stream_arn)
    finally:
        lambda_client.delete_event_source_mapping(UUID=mapping)
        lambda_client.delete_function(FunctionName=function)
        for name in (source, sink):
            dynamodb.delete_table(TableName=name)


def test_stream_insert_reaches_lambda_through_an_event_source_mapping(
    emulator: Any, dynamodb: DynamoDBClient
) -> None:
    # GIVEN a table with a NEW_AND_OLD_IMAGES stream mapped to a function that records
    # every stream record it receives into a sink table
    with recorded_stream(
        emulator, dynamodb, "NEW_AND_OLD_IMAGES", BatchSize=10, MaximumRetryAttempts=2
    ) as stream:
        # WHEN an item is inserted into the source table
        dynamodb.put_item(
            TableName=stream.source, Item={"pk": {"S": "order-42"}, "total": {"N": "1999"}}
        )
        # THEN the function receives the INSERT record with the new image and no old image
        record = _wait_for_recorded(dynamodb, stream.sink, "order-42#INSERT")
        assert record["eventName"] == "INSERT"
        assert record["eventSource"] == "aws:dynamodb"
        assert record["eventSourceARN"] == stream.stream_arn
        assert record["dynamodb"]["Keys"] == {"pk": {"S": "order-42"}}
        assert record["dynamodb"]["NewImage"] == {"pk": {"S": "order-42"}, "total": {"N": "1999"}}
        assert "OldImage" not in record["dynamodb"]
        assert record["dynamodb"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"


def test_a_stream_record_reaches_lambda_in_aws_json_shape_for_every_attribute_type(
    emulator: Any, dynamodb: DynamoDBClient
) -> None:
    # GIVEN a NEW_IMAGE stream mapped to the recording function
    with recorded_stream(emulator, dynamodb, "NEW_IMAGE") as stream:
        # WHEN an item holding every attribute type is put
        dynamodb.put_item(
            TableName=stream.source,
            Item={
                "pk": {"S": "typed-1"},
                "s": {"S": "text ü"},
                "n": {"N": "-12.50"},
                "b": {"B": b"\x00\xffraw"},
                "ss": {"SS": ["a"]},
                "ns": {"NS": ["7"]},
                "bs": {"BS": [b"\x01"]},
                "m": {"M": {"inner": {"B": b"\x10"}, "flag": {"BOOL": True}}},
                "l": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}]},
                "null": {"NULL": True},
                "bool": {"BOOL": False},
            },
        )
        record = _wait_for_recorded(dynamodb, stream.sink, "typed-1#INSERT")
    # THEN the record is the JSON Lambda documents: binary values base64-encoded once, numbers
    # as strings, the record's own fields with their types
    assert record["dynamodb"]["NewImage"] == {
        "pk": {"S": "typed-1"},
        "s": {"S": "text ü"},
        "n": {"N": "-12.50"},
        "b": {"B": base64.b64encode(b"\x00\xffraw").decode()},
        "ss": {"SS": ["a"]},
        "ns": {"NS": ["7"]},
        "bs": {"BS": [base64.b64encode(b"\x01").decode()]},
        "m": {"M": {"inner": {"B": base64.b64encode(b"\x10").decode()}, "flag": {"BOOL": True}}},
        "l": {"L": [{"S": "x"}, {"N": "1"}, {"NULL": True}]},
        "null": {"NULL": True},
        "bool": {"BOOL": False},
    }
    assert record["eventName"] == "INSERT"
    assert record["eventVersion"] == "1.1"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["awsRegion"] == "us-east-1"
    assert isinstance(record["eventID"], str)
    assert record["eventID"]
    change = record["dynamodb"]
    assert change["Keys"] == {"pk": {"S": "typed-1"}}
    assert change["StreamViewType"] == "NEW_IMAGE"
    assert isinstance(change["SequenceNumber"], str)
    assert change["SequenceNumber"].isdigit()
    assert isinstance(change["SizeBytes"], int)
    assert change["SizeBytes"] > 0
    assert isinstance(change["ApproximateCreationDateTime"], (int, float))


# Records what it receives, as RECORDER does, but fails the whole batch while it holds a
# record whose key starts with "poison".
_POISON_CHECK = """
        keys = [r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]]
        if any(key.startswith("poison") for key in keys):
            raise RuntimeError("poison record")"""
FAILING_RECORDER = RECORDER.replace(
    "def handler(event, context):", "def handler(event, context):" + _POISON_CHECK
)


@dataclass
class PoisonedStream:
    """A stream on a table, a function recording what it gets (failing on any batch holding a
    poison record) and an SQS queue as on-failure destination; :meth:`map` connects them."""

    emulator: Any
    dynamodb: DynamoDBClient
    source: str
    sink: str
    stream_arn: str
    function: str
    destination_url: str
    destination_arn: str
    mappings: list[str] = field(default_factory=list)

    def write(self, *keys: str) -> None:
        for key in keys:
            self.dynamodb.put_item(TableName=self.source, Item={"pk": {"S": key}})

    def map(self, **settings: Any) -> None:
        lambda_client: LambdaClient = self.emulator.client("lambda")
        mapping = lambda_client.create_event_source_mapping(
            FunctionName=self.function,
            EventSourceArn=self.stream_arn,
            StartingPosition="TRIM_HORIZON",
            DestinationConfig={"OnFailure": {"Destination": self.destination_arn}},
            **settings,
        )["UUID"]
        self.mappings.append(mapping)
        _wait_until_mapping_enabled(lambda_client, mapping)

    def failure(self) -> dict[str, Any]:
        """The first failure the destination describes (waits for it)."""
        sqs = self.emulator.client("sqs")

        def described() -> dict[str, Any] | None:
            answer = sqs.receive_message(QueueUrl=self.destination_url, WaitTimeSeconds=1)
            messages = answer.get("Messages", [])
            return json.loads(messages[0]["Body"]) if messages else None

        failure: dict[str, Any] = wait_until(described, timeout_s=DELIVERY_TIMEOUT_SECONDS)
        return failure


@pytest.fixture
def poisoned(emulator: Any, dynamodb: DynamoDBClient) -> Iterator[PoisonedStream]:
    lambda_client: LambdaClient = emulator.client("lambda")
    sqs = emulator.client("sqs")
    source = _create_table(dynamodb, "poisoned", stream_view_type="NEW_IMAGE")
    sink = _create_table(dynamodb, "survivors")
    destination_url = sqs.create_queue(QueueName=unique_name("stream-failures"))["QueueUrl"]
    stream = PoisonedStream(
        emulator=emulator,
        dynamodb=dynamodb,
        source=source,
        sink=sink,
        stream_arn=dynamodb.describe_table(TableName=source)["Table"]["LatestStreamArn"],
        function=create_function(lambda_client, FAILING_RECORDER, environment={"SINK_TABLE": sink}),
        destination_url=destination_url,
        destination_arn=sqs.get_queue_attributes(
            QueueUrl=destination_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"],
    )
    yield stream
    for mapping in stream.mappings:
        lambda_client.delete_event_source_mapping(UUID=mapping)
    lambda_client.delete_function(FunctionName=stream.function)
    sqs.delete_queue(QueueUrl=destination_url)
    for name in (source, sink):
        dynamodb.delete_table(TableName=name)


def test_a_stream_record_that_keeps_failing_goes_to_the_on_failure_destination_after_its_retries(
    poisoned: PoisonedStream,
) -> None:
    # GIVEN a stream mapped to a function that fails on a poison record, one record a batch,
    # with two retries and an SQS queue as on-failure destination
    poisoned.map(BatchSize=1, MaximumRetryAttempts=2)
    # WHEN a poison record is written, then a good one
    poisoned.write("poison-1", "good-1")
    # THEN after its retries the poison record's batch is described in the destination
    described = poisoned.failure()
    batch = described["DDBStreamBatchInfo"]
    assert batch["batchSize"] == 1
    assert batch["streamArn"] == poisoned.stream_arn
    assert described["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert described["requestContext"]["approximateInvokeCount"] == 3
    # AND the shard moved on: the good record reached the function
    record = _wait_for_recorded(poisoned.dynamodb, poisoned.sink, "good-1#INSERT")
    assert record["dynamodb"]["Keys"] == {"pk": {"S": "good-1"}}


def test_a_bisected_batch_sends_only_its_poison_record_to_the_on_failure_destination(
    poisoned: PoisonedStream,
) -> None:
    # GIVEN five records in a stream, the third a poison, written before the mapping starts
    # (one batch from TRIM_HORIZON)
    keys = ["good-1", "good-2", "poison-3", "good-4", "good-5"]
    poisoned.write(*keys)
    # WHEN the stream is mapped with BisectBatchOnFunctionError, batches of up to ten records
    # and one retry
    poisoned.map(BatchSize=10, MaximumRetryAttempts=1, BisectBatchOnFunctionError=True)
    # THEN every good record reached the function
    for key in keys:
        if key.startswith("good"):
            _wait_for_recorded(poisoned.dynamodb, poisoned.sink, f"{key}#INSERT")
    # AND the destination describes a batch of the poison record alone
    batch = poisoned.failure()["DDBStreamBatchInfo"]
    assert batch["batchSize"] == 1
    assert batch["startSequenceNumber"] == batch["endSequenceNumber"]


def _oldest_record_iterator(
    dynamodb: DynamoDBClient, streams: DynamoDBStreamsClient, table: str
) -> str:
    """A shard iterator at the oldest record of the table's stream (its one shard)."""
    stream_arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"][0]
    iterator: str = streams.get_shard_iterator(
        StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    return iterator


def _create_table(
    dynamodb: DynamoDBClient, prefix: str, stream_view_type: StreamViewTypeType | None = None
) -> str:
    name = unique_name(prefix)
    stream: StreamSpecificationTypeDef = (
        {"StreamEnabled": True, "StreamViewType": stream_view_type}
        if stream_view_type
        else {"StreamEnabled": False}
    )
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification=stream,
    )
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    return name


def _wait_until_mapping_enabled(lambda_client: LambdaClient, mapping: str) -> None:
    def enabled() -> bool | None:
        state = lambda_client.get_event_source_mapping(UUID=mapping).get("State")
        return True if state == "Enabled" else None

    wait_until(enabled, timeout_s=60.0)


def _wait_for_recorded(dynamodb: DynamoDBClient, sink: str, key: str) -> dict[str, Any]:
    def recorded() -> dict[str, Any] | None:
        item = dynamodb.get_item(TableName=sink, Key={"pk": {"S": key}}, ConsistentRead=True)
        if "Item" not in item:
            return None
        record: dict[str, Any] = json.loads(item["Item"]["record"]["S"])
        return record

    return wait_until(recorded, timeout_s=DELIVERY_TIMEOUT_SECONDS, interval_s=0.2)
