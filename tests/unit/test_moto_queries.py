"""moto's Query on a table's key, reading the asked partition only (the embedded DynamoDB).

Run against the project's own moto in-process: the patch imports moto only. Every test
installs it through ``monkeypatch``, so moto is as it was for the other tests afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.dynamodb.models.table import Table

from lambdamesh_localstack import moto_queries

REGION = "us-east-1"
EVENTS = "events"  # hash + range key, as the event store
CLAIMS = "claims"  # hash key only
INDEXED = "by_owner"  # a global secondary index of EVENTS


def _unpatched(function: Any) -> Any:
    return getattr(function, "__wrapped__", function)


ORIGINAL_QUERY = _unpatched(Table.query)
ORIGINAL_ALL_ITEMS = _unpatched(Table.all_items)


@pytest.fixture
def whole_table_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the tables moto listed whole, spied beneath the patch."""
    reads: list[str] = []

    def spied_all_items(self: Table) -> Any:
        reads.append(self.name)
        return ORIGINAL_ALL_ITEMS(self)

    monkeypatch.setattr(Table, "query", ORIGINAL_QUERY)
    monkeypatch.setattr(Table, "all_items", spied_all_items)
    return reads


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch, whole_table_reads: list[str]) -> Iterator[Any]:
    """A moto DynamoDB with the patch installed: ``events`` (stream + version, an index on
    ``owner``) and ``claims`` (key only)."""
    moto_queries.install()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=EVENTS,
            KeySchema=[
                {"AttributeName": "stream", "KeyType": "HASH"},
                {"AttributeName": "version", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "stream", "AttributeType": "S"},
                {"AttributeName": "version", "AttributeType": "N"},
                {"AttributeName": "owner", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": INDEXED,
                    "KeySchema": [
                        {"AttributeName": "owner", "KeyType": "HASH"},
                        {"AttributeName": "version", "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        client.create_table(
            TableName=CLAIMS,
            KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "key", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def fill(client: Any, streams: dict[str, int]) -> None:
    """``streams[s]`` events in stream ``s`` (versions 1..n, owners alternating) and a claim
    per stream."""
    for stream, length in streams.items():
        client.put_item(TableName=CLAIMS, Item={"key": {"S": stream}, "n": {"N": str(length)}})
        for version in range(1, length + 1):
            client.put_item(
                TableName=EVENTS,
                Item={
                    "stream": {"S": stream},
                    "version": {"N": str(version)},
                    "owner": {"S": f"owner-{version % 2}"},
                    "type": {"S": "even" if version % 2 == 0 else "odd"},
                },
            )


def every_page(client: Any, request: dict[str, Any]) -> list[dict[str, Any]]:
    """Each page's items, count, scanned count and last key, following the pages to the end."""
    pages: list[dict[str, Any]] = []
    while True:
        answer = client.query(**request)
        pages.append({key: answer.get(key) for key in ("Items", "Count", "LastEvaluatedKey")})
        if "LastEvaluatedKey" not in answer:
            return pages
        request = {**request, "ExclusiveStartKey": answer["LastEvaluatedKey"]}


def unpatched(monkeypatch: pytest.MonkeyPatch, run: Callable[[], Any]) -> Any:
    """What ``run`` answers with moto's own query and whole-table listing."""
    with monkeypatch.context() as moto_as_it_is:
        moto_as_it_is.setattr(Table, "query", ORIGINAL_QUERY)
        moto_as_it_is.setattr(Table, "all_items", ORIGINAL_ALL_ITEMS)
        return run()


def test_a_key_query_reads_its_partition_and_answers_what_moto_answers(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, whole_table_reads: list[str]
) -> None:
    # GIVEN a table of many streams
    fill(dynamodb, {f"s-{n}": 3 + n % 4 for n in range(30)})
    request = {
        "TableName": EVENTS,
        "KeyConditionExpression": "#s = :s",
        "ExpressionAttributeNames": {"#s": "stream"},
        "ExpressionAttributeValues": {":s": {"S": "s-7"}},
        "ConsistentRead": True,
    }
    # WHEN one stream is queried
    answer = dynamodb.query(**request)
    # THEN moto did not list the whole table, and the answer is moto's own
    assert whole_table_reads == []
    assert [int(item["version"]["N"]) for item in answer["Items"]] == [1, 2, 3, 4, 5, 6]
    assert answer["Items"] == unpatched(monkeypatch, lambda: dynamodb.query(**request))["Items"]


def test_an_index_query_and_a_scan_still_read_the_whole_table(
    dynamodb: Any, whole_table_reads: list[str]
) -> None:
    # GIVEN a table of a few streams
    fill(dynamodb, {"s-1": 2, "s-2": 3})
    # WHEN its index is queried and the table scanned
    by_owner = dynamodb.query(
        TableName=EVENTS,
        IndexName=INDEXED,
        KeyConditionExpression="#o = :o",
        ExpressionAttributeNames={"#o": "owner"},
        ExpressionAttributeValues={":o": {"S": "owner-1"}},
    )
    scanned = dynamodb.scan(TableName=EVENTS)
    # THEN both read every item, as moto does
    assert whole_table_reads == [EVENTS, EVENTS]
    assert by_owner["Count"] == 3
    assert scanned["Count"] == 5


def test_a_partition_that_does_not_exist_is_empty_and_not_created(dynamodb: Any) -> None:
    # GIVEN a table with one stream
    fill(dynamodb, {"s-1": 2})
    # WHEN a stream that has no events is queried, twice
    for _ in range(2):
        answer = dynamodb.query(
            TableName=EVENTS,
            KeyConditionExpression="#s = :s",
            ExpressionAttributeNames={"#s": "stream"},
            ExpressionAttributeValues={":s": {"S": "s-none"}},
        )
        # THEN it answers nothing
        assert answer["Items"] == []
    # AND the table still holds one partition (moto's defaultdict was not grown by the query)
    scanned = dynamodb.scan(TableName=EVENTS)
    assert {item["stream"]["S"] for item in scanned["Items"]} == {"s-1"}


QUERIES = st.fixed_dictionaries(
    {
        "table": st.sampled_from([EVENTS, CLAIMS]),
        "stream": st.integers(min_value=0, max_value=7),
        "range": st.sampled_from([None, ">= 3", "< 3", "between"]),
        "forward": st.booleans(),
        "limit": st.one_of(st.none(), st.integers(min_value=1, max_value=4)),
        "filter": st.booleans(),
        "projection": st.booleans(),
    }
)


def query_request(spec: dict[str, Any]) -> dict[str, Any]:
    """A Query of one stream (or one claim) as ``spec`` describes it."""
    key = "stream" if spec["table"] == EVENTS else "key"
    condition = "#k = :k"
    names = {"#k": key}
    values: dict[str, Any] = {":k": {"S": f"s-{spec['stream']}"}}
    if spec["table"] == EVENTS and spec["range"] is not None:
        names["#v"] = "version"
        if spec["range"] == "between":
            condition += " AND #v BETWEEN :low AND :high"
            values |= {":low": {"N": "2"}, ":high": {"N": "4"}}
        else:
            operator, bound = spec["range"].split()
            condition += f" AND #v {operator} :bound"
            values[":bound"] = {"N": bound}
    request: dict[str, Any] = {
        "TableName": spec["table"],
        "KeyConditionExpression": condition,
        "ScanIndexForward": spec["forward"],
    }
    if spec["limit"] is not None:
        request["Limit"] = spec["limit"]
    if spec["filter"] and spec["table"] == EVENTS:
        names["#t"] = "type"
        values[":t"] = {"S": "even"}
        request["FilterExpression"] = "#t = :t"
    if spec["projection"]:
        request["ProjectionExpression"] = "#k"
    request["ExpressionAttributeNames"] = names
    request["ExpressionAttributeValues"] = values
    return request


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=QUERIES)
def test_every_key_query_answers_page_for_page_what_moto_answers(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any]
) -> None:
    # GIVEN streams of 0 to 6 events (stream s-7 has none), one claim each
    if not dynamodb.scan(TableName=CLAIMS)["Count"]:
        fill(dynamodb, {f"s-{n}": n for n in range(1, 7)})
    request = query_request(spec)
    # WHEN the query is answered with the patch, and by moto as it is
    patched = every_page(dynamodb, request)
    expected = unpatched(monkeypatch, lambda: every_page(dynamodb, request))
    # THEN every page is the same: items, count and where the next page starts
    assert patched == expected
