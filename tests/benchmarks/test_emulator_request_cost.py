"""Benchmark: LocalStack's own CPU per request, for every kind of request the system makes.

Every AWS request of an order (DynamoDB, SNS, SQS, SES, Lambda) runs through one Python process:
the emulator's handler chain (parse, authorise, dispatch, serialise) and then the service. What a
request costs there bounds how many orders two cores can carry. This benchmark sends each kind of
request the system sends, one at a time, and reads the emulator's CPU time (``/proc``, through
psutil) around each run, its idle CPU over the same wall time taken out. The floor is a request
that goes through the same chain and does next to nothing (the cheapest of
``sts:GetCallerIdentity``, ``lambda:GetAccountSettings`` and an ``sqs:ListQueues`` matching no
queue, measured in the same run): what is above it is the service's own work.

The table has a ``NEW_IMAGE`` stream, as the orders event store has; the topic delivers to one
SQS queue (raw), as every topic of the system does. Figures are printed, never asserted.
``LAMBDAMESH_BENCH_REQUESTS`` sets the requests per kind (default 300).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import count
from typing import Any

import psutil
import pytest

from tests.e2e.lambda_support import create_function, invoke, unique_name

REQUESTS = int(os.environ.get("LAMBDAMESH_BENCH_REQUESTS", "300"))
IDLE_SECONDS = 2.0
SENDER = "shop@example.com"
NOOP = """
    def handler(event, context):
        return None
"""


@dataclass(frozen=True)
class Cost:
    """What one kind of request cost the emulator."""

    label: str
    cpu_ms: float
    """Emulator CPU per request, its idle CPU over the same time taken out."""
    wall_ms: float
    """Client-seen time per request."""


class EmulatorCpu:
    """Reads the emulator's CPU time, and what it spends idle per second."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.idle_per_second = 0.0

    def seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def measure_idle(self) -> None:
        before, started = self.seconds(), time.perf_counter()
        time.sleep(IDLE_SECONDS)
        self.idle_per_second = (self.seconds() - before) / (time.perf_counter() - started)

    def cost(self, label: str, request: Callable[[int], object], requests: int) -> Cost:
        request(-1)  # warm: the first request of a kind builds caches and clients
        before, started = self.seconds(), time.perf_counter()
        for number in range(requests):
            request(number)
        wall = time.perf_counter() - started
        spent = self.seconds() - before - self.idle_per_second * wall
        return Cost(label, spent / requests * 1000, wall / requests * 1000)


@dataclass(frozen=True)
class Resources:
    """What the requests act on: a streamed table, a topic with a queue, a mail identity."""

    table: str
    topic_arn: str
    queue_url: str
    function: str


@pytest.fixture(scope="module")
def resources(emulator: Any) -> Resources:
    dynamodb, sns, sqs = emulator.client("dynamodb"), emulator.client("sns"), emulator.client("sqs")
    table = unique_name("cost")
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        BillingMode="PAY_PER_REQUEST",
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    )
    dynamodb.get_waiter("table_exists").wait(TableName=table)
    topic_arn = sns.create_topic(Name=unique_name("cost"))["TopicArn"]
    queue_url = sqs.create_queue(QueueName=unique_name("cost"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=topic_arn,
        Protocol="sqs",
        Endpoint=queue_arn["Attributes"]["QueueArn"],
        Attributes={"RawMessageDelivery": "true"},
    )
    emulator.client("ses").verify_email_identity(EmailAddress=SENDER)
    function = create_function(emulator.client("lambda"), NOOP)
    return Resources(table, topic_arn, queue_url, function)


def _requests(emulator: Any, where: Resources) -> dict[str, Callable[[int], object]]:
    """Each kind of request, as a function of a running number (fresh keys where it matters)."""
    dynamodb, sns, sqs = emulator.client("dynamodb"), emulator.client("sns"), emulator.client("sqs")
    ses, sts, lambda_ = emulator.client("ses"), emulator.client("sts"), emulator.client("lambda")
    table, fresh = where.table, count()

    def item(partition: str, sort: int) -> dict[str, Any]:
        return {"pk": {"S": partition}, "sk": {"N": str(sort)}, "body": {"S": "x" * 400}}

    for sort in range(5):
        dynamodb.put_item(TableName=table, Item=item("read", sort))

    def receive_and_delete(_: int) -> object:
        sqs.send_message(QueueUrl=where.queue_url, MessageBody="{}")
        messages = sqs.receive_message(QueueUrl=where.queue_url, MaxNumberOfMessages=1)
        for message in messages.get("Messages", []):
            sqs.delete_message(QueueUrl=where.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return messages

    return {
        "sts GetCallerIdentity": lambda _: sts.get_caller_identity(),
        "lambda GetAccountSettings": lambda _: lambda_.get_account_settings(),
        "sqs ListQueues (none match)": lambda _: sqs.list_queues(QueueNamePrefix="no-such-"),
        "dynamodb GetItem": lambda n: dynamodb.get_item(
            TableName=table, Key={"pk": {"S": "read"}, "sk": {"N": str(n % 5)}}
        ),
        "dynamodb Query (5 items)": lambda _: dynamodb.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "read"}},
            ConsistentRead=True,
        ),
        "dynamodb BatchGetItem (5 keys)": lambda _: dynamodb.batch_get_item(
            RequestItems={
                table: {"Keys": [{"pk": {"S": "read"}, "sk": {"N": str(s)}} for s in range(5)]}
            }
        ),
        "dynamodb PutItem (conditional)": lambda _: dynamodb.put_item(
            TableName=table,
            Item=item("put", next(fresh)),
            ConditionExpression="attribute_not_exists(pk)",
        ),
        "dynamodb UpdateItem (ADD)": lambda n: dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": "counter"}, "sk": {"N": str(n % 10)}},
            UpdateExpression="ADD hits :one",
            ExpressionAttributeValues={":one": {"N": "1"}},
        ),
        "dynamodb TransactWriteItems (2 puts)": lambda _: dynamodb.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": table,
                        "Item": item("tx", next(fresh)),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
                for _ in range(2)
            ]
        ),
        "sns Publish (one SQS subscriber)": lambda _: sns.publish(
            TopicArn=where.topic_arn, Message="{}"
        ),
        "sqs Send + Receive + Delete (÷3)": receive_and_delete,
        "ses SendEmail": lambda n: ses.send_email(
            Source=SENDER,
            Destination={"ToAddresses": [f"customer-{n}@example.com"]},
            Message={"Subject": {"Data": "order"}, "Body": {"Text": {"Data": "confirmed"}}},
        ),
        "lambda Invoke (no-op function)": lambda _: invoke(lambda_, where.function),
    }


FLOOR_LABELS = ("sts GetCallerIdentity", "lambda GetAccountSettings", "sqs ListQueues (none match)")
PER_CALL = {"sqs Send + Receive + Delete (÷3)": 3}
"""Kinds whose one call makes more than one request: their figures are per request."""


def test_emulator_cpu_per_request(emulator: Any, resources: Resources) -> None:
    if emulator.pid is None:
        pytest.skip("the emulator's CPU is read from its process: an embedded LocalStack only")
    cpu = EmulatorCpu(emulator.pid)
    cpu.measure_idle()
    costs = []
    for label, request in _requests(emulator, resources).items():
        cost = cpu.cost(label, request, REQUESTS)
        calls = PER_CALL.get(label, 1)
        costs.append(Cost(label, cost.cpu_ms / calls, cost.wall_ms / calls))
    floor = min((c for c in costs if c.label in FLOOR_LABELS), key=lambda c: c.cpu_ms)
    print(f"\n[emulator requests] LocalStack CPU per request, {REQUESTS} sequential per kind "
          f"(idle {cpu.idle_per_second * 100:.1f} % of a core taken out)")  # fmt: skip
    print(f"  {'request':<38} {'CPU ms':>7} {'x floor':>8} {'wall ms':>8}")
    for cost in costs:
        ratio = cost.cpu_ms / floor.cpu_ms if floor.cpu_ms > 0 else float("nan")
        mark = "  ← floor" if cost is floor else ""
        print(f"  {cost.label:<38} {cost.cpu_ms:7.2f} {ratio:8.2f} {cost.wall_ms:8.2f}{mark}")
