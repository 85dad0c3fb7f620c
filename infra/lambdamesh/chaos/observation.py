"""Reading what a chaos run left: tables, the payments ledger, mail, queues, dead letters.

The payments ledger is a queue of the run's own, subscribed to the payments topic for the
run's length: it sees every payments event exactly as the services' queues see them, so a
second charge would show as a second ``payment.processed`` with another event id.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import urllib3

from lambdamesh.dlq.letters import read_dead_letters
from lambdamesh.dlq.queues import list_dead_letter_queues
from lambdamesh.messaging_status import queue_depths
from lambdamesh_toolkit.events.bookkeeping import DynamoDbFailureStore

from .invariants import DeadLetterSeen, LedgerEntry
from .shoppers import Shop

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient

MAX_DEAD_LETTERS = 2000


def scan(dynamodb: DynamoDBClient, table: str) -> Iterable[dict[str, Any]]:
    """Every item of ``table`` (strongly consistent)."""
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page.get("Items", [])


def shelves(dynamodb: DynamoDBClient, stock_table: str) -> dict[str, int]:
    """Product → units on the shelf."""
    return {
        item["product_id"]["S"]: int(item["stock"]["N"]) for item in scan(dynamodb, stock_table)
    }


def reservations(dynamodb: DynamoDBClient, table: str) -> tuple[dict[str, str], dict[str, int]]:
    """Order id → reservation status, and product → units held by ``reserved`` reservations."""
    statuses: dict[str, str] = {}
    held: Counter[str] = Counter()
    for item in scan(dynamodb, table):
        status = item["status"]["S"]
        statuses[item["order_id"]["S"]] = status
        if status == "reserved":
            for line in json.loads(item["lines"]["S"]):
                held[line["product_id"]] += int(line["quantity"])
    return statuses, dict(held)


def payments(dynamodb: DynamoDBClient, table: str) -> dict[str, str]:
    """Order id → payment status."""
    return {item["order_id"]["S"]: item["status"]["S"] for item in scan(dynamodb, table)}


def restock(
    dynamodb: DynamoDBClient, stock_table: str, products: Iterable[str], units: int
) -> None:
    """Add ``units`` to each of ``products``' shelves (the warehouse received goods).

    Each write adds 1 to the item's ``stock_version``, as every change of a level does: the
    stock stream's publisher numbers ``inventory.stock_changed`` with it, and refuses a level
    that changed without a new version. The correlation id of the last order is removed: this
    change is not that order's.
    """
    for product in products:
        dynamodb.update_item(
            TableName=stock_table,
            Key={"product_id": {"S": product}},
            UpdateExpression=(
                "SET stock = stock + :units ADD stock_version :one REMOVE correlation_id"
            ),
            ConditionExpression="attribute_exists(product_id)",
            ExpressionAttributeValues={":units": {"N": str(units)}, ":one": {"N": "1"}},
        )


def order_statuses(shop: Shop, order_ids: Iterable[str]) -> dict[str, str]:
    """Order id → status, as the orders API answers it."""

    def status(order_id: str) -> tuple[str, str]:
        code, body, _ = shop.request("GET", f"{shop.orders_url}/orders/{order_id}")
        return order_id, str(body.get("status")) if code == 200 else f"HTTP {code}"

    with ThreadPoolExecutor(shop.clients) as pool:
        return dict(pool.map(status, order_ids))


def in_flight(sqs: SQSClient, prefix: str) -> dict[str, int]:
    """Every source queue of the system (not the DLQs, not the run's own) → messages it holds."""
    queues, _ = queue_depths(sqs, prefix)
    return {queue.name: queue.total for queue in queues if "-chaos-" not in queue.name}


def wait_until_quiet(
    sqs: SQSClient,
    prefix: str,
    *,
    timeout_s: float,
    done: Callable[[], bool] = lambda: True,
    progress: Callable[[str], None] = print,
) -> float:
    """Wait until every source queue stayed empty for a few seconds, then until ``done()``;
    the seconds waited."""
    started = time.monotonic()
    quiet_since: float | None = None
    last_report = started
    while time.monotonic() - started < timeout_s:
        counts = in_flight(sqs, prefix)
        busy = sum(counts.values())
        now = time.monotonic()
        if busy == 0:
            quiet_since = quiet_since or now
            # done() may be costly (the chaos run reads every order): asked once quiet.
            if now - quiet_since >= 3.0 and done():
                break
        else:
            quiet_since = None
        if now - last_report >= 15:
            last_report = now
            progress(f"   {busy} message(s) still queued or in flight after {now - started:.0f} s")
        time.sleep(1.0)
    return time.monotonic() - started


def dead_letters(
    sqs: SQSClient, dynamodb: DynamoDBClient, prefix: str, failures_table: str | None
) -> list[DeadLetterSeen]:
    """Every message of every dead-letter queue, with the reason its consumer recorded."""
    find = (
        None
        if failures_table is None
        else DynamoDbFailureStore(failures_table, client=dynamodb).get_many
    )
    seen = []
    for queue in list_dead_letter_queues(sqs, prefix):
        for letter in read_dead_letters(sqs, queue.url, MAX_DEAD_LETTERS, find):
            seen.append(
                DeadLetterSeen(
                    queue=queue.name,
                    body=letter.body_preview,
                    correlation_id=letter.correlation_id,
                    reason=letter.last_error.reason if letter.last_error else None,
                )
            )
    return seen


def mails_to(
    http: urllib3.PoolManager, endpoint: str, recipients: set[str]
) -> list[tuple[str, str]]:
    """``(recipient, subject)`` of the mail the emulator's SES sent to ``recipients``."""
    response = http.request("GET", f"{endpoint}/_aws/ses")
    messages = json.loads(response.data).get("messages", [])
    return [
        (to, str(message.get("Subject", "")))
        for message in messages
        for to in message.get("Destination", {}).get("ToAddresses", [])
        if to in recipients
    ]


@dataclass
class PaymentsLedger:
    """A queue of the run's own on the payments topic: every payments event, as published.

    Parameters
    ----------
    sqs, sns
        Clients on the target.
    topic_arn
        The payments topic.
    name
        The queue's name.
    """

    sqs: SQSClient
    sns: SNSClient
    topic_arn: str
    name: str
    url: str = ""
    subscription_arn: str = ""

    def open(self) -> None:
        """Create the queue and subscribe it to the topic (raw delivery)."""
        self.url = self.sqs.create_queue(QueueName=self.name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": "sns.amazonaws.com"},
                    "Action": "sqs:SendMessage",
                    "Resource": arn,
                    "Condition": {"ArnEquals": {"aws:SourceArn": self.topic_arn}},
                }
            ],
        }
        self.sqs.set_queue_attributes(QueueUrl=self.url, Attributes={"Policy": json.dumps(policy)})
        self.subscription_arn = self.sns.subscribe(
            TopicArn=self.topic_arn,
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]

    def drain(self, order_ids: set[str]) -> list[LedgerEntry]:
        """Every event received about ``order_ids`` (the queue is emptied)."""
        entries = []
        empty = 0
        while empty < 2:
            messages = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            ).get("Messages", [])
            if not messages:
                empty += 1
                continue
            empty = 0
            for message in messages:
                entry = _ledger_entry(message.get("Body", ""))
                if entry is not None and entry.order_id in order_ids:
                    entries.append(entry)
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(messages)
                ],
            )
        return entries

    def close(self) -> None:
        """Unsubscribe and delete the queue."""
        if self.subscription_arn:
            self.sns.unsubscribe(SubscriptionArn=self.subscription_arn)
        if self.url:
            self.sqs.delete_queue(QueueUrl=self.url)


def _ledger_entry(body: str) -> LedgerEntry | None:
    """A payments event's type, id and order id (``None`` for anything else).

    >>> _ledger_entry('{"id": "e-1", "type": "payment.processed", "data": {"order_id": "o-1"}}')
    LedgerEntry(type='payment.processed', event_id='e-1', order_id='o-1')
    >>> _ledger_entry("not JSON") is None
    True
    """
    try:
        event = json.loads(body)
        return LedgerEntry(str(event["type"]), str(event["id"]), str(event["data"]["order_id"]))
    except (ValueError, KeyError, TypeError):
        return None
