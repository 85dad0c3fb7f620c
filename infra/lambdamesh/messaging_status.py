"""What ``lambdamesh status`` shows of the messaging: topics, queues and dead-letter queues.

Read from the endpoint itself (``ListTopics``, ``ListQueues``, ``GetQueueAttributes``), so it is
what is there, deployed by ``lambdamesh deploy`` or not. A dead-letter queue holding messages is
flagged, with the command that shows why they failed.

>>> status = MessagingStatus(
...     topics=["lambdamesh-orders.fifo"],
...     queues=[QueueDepth("lambdamesh-orders-outcomes", 2, 1)],
...     dead_letter_queues=[QueueDepth("lambdamesh-orders-outcomes-dlq", 3, 0)],
... )
>>> print("\\n".join(format_messaging(status)))
  topics
    lambdamesh-orders.fifo
  queues                                 waiting  in flight
    lambdamesh-orders-outcomes                 2          1
  dead-letter queues                     waiting  in flight
    lambdamesh-orders-outcomes-dlq             3          0  ← lambdamesh dlq show orders-outcomes
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lambdamesh.dlq.queues import DLQ_SUFFIX, FIFO_SUFFIX, is_dead_letter_name

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient

NAME_WIDTH = 38


@dataclass(frozen=True)
class QueueDepth:
    """A queue's name and how many messages wait in it and are being processed."""

    name: str
    waiting: int
    in_flight: int


@dataclass(frozen=True)
class MessagingStatus:
    """The topics, the queues and the dead-letter queues of one name prefix."""

    topics: list[str] = field(default_factory=list)
    queues: list[QueueDepth] = field(default_factory=list)
    dead_letter_queues: list[QueueDepth] = field(default_factory=list)


def read_messaging(sns: SNSClient, sqs: SQSClient, prefix: str) -> MessagingStatus:
    """The topics and queues whose names start with ``<prefix>-``, with their depths."""
    topics = sorted(
        arn.rsplit(":", 1)[-1]
        for page in sns.get_paginator("list_topics").paginate()
        for arn in (topic["TopicArn"] for topic in page.get("Topics", []))
        if arn.rsplit(":", 1)[-1].startswith(f"{prefix}-")
    )
    queues: list[QueueDepth] = []
    dead_letters: list[QueueDepth] = []
    for url in sorted(sqs.list_queues(QueueNamePrefix=f"{prefix}-").get("QueueUrls", [])):
        attributes = sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        name = url.rsplit("/", 1)[-1]
        depth = QueueDepth(
            name,
            int(attributes.get("ApproximateNumberOfMessages", "0")),
            int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0")),
        )
        (dead_letters if is_dead_letter_name(name, prefix) else queues).append(depth)
    return MessagingStatus(topics, queues, dead_letters)


def _short_name(dlq: str) -> str:
    """What ``lambdamesh dlq show`` takes for a dead-letter queue (``orders-outcomes``)."""
    name = dlq.removesuffix(FIFO_SUFFIX).removesuffix(DLQ_SUFFIX)
    return name.split("-", 1)[1] if "-" in name else name


def format_messaging(status: MessagingStatus) -> list[str]:
    """The lines of the messaging part of ``lambdamesh status``."""
    lines = ["  topics", *(f"    {topic}" for topic in status.topics or ["(none)"])]
    header = f"{'waiting':>7}  {'in flight':>9}"
    names = [depth.name for depth in (*status.queues, *status.dead_letter_queues)]
    width = max([NAME_WIDTH - 2, *(len(name) for name in names)])
    for title, depths, flag in (
        ("queues", status.queues, False),
        ("dead-letter queues", status.dead_letter_queues, True),
    ):
        lines.append(f"  {title:<{width + 2}} {header}")
        if not depths:
            lines.append("    (none)")
        for depth in depths:
            line = f"    {depth.name:<{width}} {depth.waiting:>7}  {depth.in_flight:>9}"
            if flag and depth.waiting + depth.in_flight:
                line += f"  ← lambdamesh dlq show {_short_name(depth.name)}"
            lines.append(line)
    return lines
