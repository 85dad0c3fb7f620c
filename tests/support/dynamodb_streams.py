"""A table's DynamoDB stream, read from moto, as Lambda hands it to a function.

Unit tests drive the functions that run on a stream (a publisher, a projector) with the records
the table really produced under moto, instead of hand-built ones: ``stream_event(table)`` is the
Lambda event (``{"Records": [...]}``) of every record written since the last call for that
table.
"""

from __future__ import annotations

from typing import Any

import boto3

_positions: dict[str, str] = {}
"""Stream ARN → the sequence number of the last record handed out."""


def stream_event(table_name: str, *, region: str = "us-east-1") -> dict[str, Any]:
    """The records of ``table_name``'s stream not handed out before, as a Lambda event.

    Each record as Lambda delivers it: ``eventID``, ``eventName``, ``eventVersion``,
    ``eventSource``, ``awsRegion``, ``dynamodb`` (keys, images, ``SequenceNumber``, ...) and
    ``eventSourceARN``.
    """
    dynamodb = boto3.client("dynamodb", region_name=region)
    # botocore addresses DynamoDB Streams by account (``<account>.streams-ddb...``) when the
    # ARN names one; moto answers only the regional endpoint.
    streams = boto3.client(
        "dynamodbstreams",
        region_name=region,
        endpoint_url=f"https://streams.dynamodb.{region}.amazonaws.com",
    )
    stream_arn = dynamodb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    shards = streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]["Shards"]
    for shard in shards:
        after = _positions.get(stream_arn)
        if after is None:
            iterator = streams.get_shard_iterator(
                StreamArn=stream_arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
        else:
            iterator = streams.get_shard_iterator(
                StreamArn=stream_arn,
                ShardId=shard["ShardId"],
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                SequenceNumber=after,
            )["ShardIterator"]
        answer = streams.get_records(ShardIterator=iterator)
        for record in answer.get("Records", []):
            records.append({**record, "eventSourceARN": stream_arn})
    if records:
        _positions[stream_arn] = records[-1]["dynamodb"]["SequenceNumber"]
    return {"Records": [_as_lambda_record(record) for record in records]}


def forget_positions() -> None:
    """Start every stream from its beginning again (between tests: moto starts afresh)."""
    _positions.clear()


def _as_lambda_record(record: dict[str, Any]) -> dict[str, Any]:
    """A ``GetRecords`` record in Lambda's shape (timestamps as epoch seconds)."""
    body = dict(record["dynamodb"])
    created = body.get("ApproximateCreationDateTime")
    if created is not None and hasattr(created, "timestamp"):
        body["ApproximateCreationDateTime"] = int(created.timestamp())
    return {**record, "dynamodb": body}
