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

from lambdamesh.dlq.queues import DLQ_SUFFIX, FIFO_SUFFIX, is_dead_letter_name, queue_name

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

NAME_WIDTH = 38
DEPTHS: tuple[QueueAttributeNameType, ...] = (
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
)
"""The attributes of :class:`QueueDepth`'s counts, in its order."""


@dataclass(frozen=True)
class QueueDepth:
    """A queue's name and how many messages wait in it, are being processed, or are delayed."""

    name: str
    waiting: int
    in_flight: int
    delayed: int = 0

    @property
    def total(self) -> int:
        """Every message the queue still holds, whatever its state."""
        return self.waiting + self.in_flight + self.delayed


@dataclass(frozen=True)
class MessagingStatus:
    """The topics, the queues and the dead-letter queues of one name prefix."""

    topics: list[str] = field(default_factory=list)
    queues: list[QueueDepth] = field(default_factory=list)
    dead_letter_queues: list[QueueDepth] = field(default_factory=list)


def queue_depths(sqs: SQSClient, prefix: str) -> tuple[list[QueueDepth], list[QueueDepth]]:
    """Every ``<prefix>-*`` queue with its depth, by name: the queues, then the DLQs."""
    queues: list[QueueDepth] = []
    dead_letters: list[QueueDepth] = []
    pages = sqs.get_paginator("list_queues").paginate(
        QueueNamePrefix=f"{prefix}-", PaginationConfig={"PageSize": 1000}
    )
    urls = [url for page in pages for url in page.get("QueueUrls", [])]
    for url in sorted(urls, key=queue_name):
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=list(DEPTHS))[
            "Attributes"
        ]
        name = queue_name(url)
        depth = QueueDepth(name, *(int(attributes.get(key, "0")) for key in DEPTHS))
        (dead_letters if is_dead_letter_name(name, prefix) else queues).append(depth)
    return queues, dead_letters


def read_messaging(sns: SNSClient, sqs: SQSClient, prefix: str) -> MessagingStatus:
    """The topics and queues whose names start with ``<prefix>-``, with their depths."""
    topics = sorted(
        arn.rsplit(":", 1)[-1]
        for page in sns.get_paginator("list_topics").paginate()
        for arn in (topic["TopicArn"] for topic in page.get("Topics", []))
        if arn.rsplit(":", 1)[-1].startswith(f"{prefix}-")
    )
    return MessagingStatus(topics, *queue_depths(sqs, prefix))


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
