"""The topology's dead-letter queues: which there are, how deep, and which queue each serves."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient

DLQ_SUFFIX = "-dlq"
FIFO_SUFFIX = ".fifo"


class QueueNotFoundError(LookupError):
    """No dead-letter queue answers to the name given."""


@dataclass(frozen=True)
class DeadLetterQueue:
    """A dead-letter queue and what waits in it.

    Attributes
    ----------
    name
        Queue name (``lambdamesh-orders-outcomes-dlq``).
    url
        Queue URL.
    arn
        Queue ARN.
    messages
        Messages ready to be received (``ApproximateNumberOfMessages``).
    in_flight
        Messages received and not yet deleted or released.
    delayed
        Messages not yet visible.
    sources
        URLs of the queues whose redrive policy names this one.
    """

    name: str
    url: str
    arn: str
    messages: int
    in_flight: int = 0
    delayed: int = 0
    sources: list[str] = field(default_factory=list)

    @property
    def fifo(self) -> bool:
        """Whether it is a FIFO queue (and so are its sources)."""
        return self.name.endswith(FIFO_SUFFIX)

    @property
    def source_names(self) -> list[str]:
        """The source queues' names."""
        return [queue_name(url) for url in self.sources]


def queue_name(url_or_arn: str) -> str:
    """A queue's name from its URL (``.../queue/<region>/<account>/<name>``) or ARN."""
    return re.split(r"[/:]", url_or_arn.rstrip("/"))[-1]


def is_dead_letter_name(name: str, prefix: str) -> bool:
    """Whether ``name`` is one of the topology's dead-letter queues: ``<prefix>-*-dlq[.fifo]``."""
    return name.startswith(f"{prefix}-") and name.removesuffix(FIFO_SUFFIX).endswith(DLQ_SUFFIX)


def candidate_names(given: str, prefix: str) -> list[str]:
    """Queue names ``given`` may stand for, most literal first.

    ``orders-outcomes`` → ``lambdamesh-orders-outcomes-dlq`` (or ``...-dlq.fifo``); a full name
    with or without the prefix is taken as it is.
    """
    bases = [given] if given.startswith(f"{prefix}-") else [f"{prefix}-{given}", given]
    names: list[str] = []
    for base in bases:
        stem = base.removesuffix(FIFO_SUFFIX)
        if stem.endswith(DLQ_SUFFIX):
            names.append(base)
            if not base.endswith(FIFO_SUFFIX):
                names.append(base + FIFO_SUFFIX)
        else:
            names += [stem + DLQ_SUFFIX, stem + DLQ_SUFFIX + FIFO_SUFFIX]
    return list(dict.fromkeys(names))


def resolve_dead_letter_queue(sqs: SQSClient, given: str, prefix: str) -> str:
    """The URL of the dead-letter queue ``given`` names (a URL, a name or a short name).

    Raises
    ------
    QueueNotFoundError
        When no candidate name exists.
    """
    if given.startswith(("http://", "https://")):
        return given
    tried = candidate_names(given, prefix)
    for name in tried:
        try:
            return sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as error:
            if not _is_missing_queue(error):
                raise
    raise QueueNotFoundError(
        f"no dead-letter queue named {given!r} (tried {', '.join(tried)}); "
        "`lambdamesh dlq list` shows them"
    )


def _is_missing_queue(error: ClientError) -> bool:
    code = error_code(error)
    return "NonExistentQueue" in code or code == "QueueDoesNotExist"


def source_queue_urls(sqs: SQSClient, dlq_url: str, redrive_allow_policy: str | None) -> list[str]:
    """The queues that dead-letter into ``dlq_url``.

    ``ListDeadLetterSourceQueues`` first; when it names none (some endpoints do not implement
    it), the queues the dead-letter queue's ``RedriveAllowPolicy`` admits.
    """
    try:
        urls = list(sqs.list_dead_letter_source_queues(QueueUrl=dlq_url).get("queueUrls", []))
    except ClientError:
        urls = []
    if urls or not redrive_allow_policy:
        return urls
    arns = json.loads(redrive_allow_policy).get("sourceQueueArns", [])
    found: list[str] = []
    for arn in arns:
        try:
            found.append(sqs.get_queue_url(QueueName=queue_name(arn))["QueueUrl"])
        except ClientError as error:
            if not _is_missing_queue(error):
                raise
    return found


def describe_dead_letter_queue(sqs: SQSClient, url: str) -> DeadLetterQueue:
    """The dead-letter queue at ``url``: depth and source queues."""
    # "All" rather than a list: moto rejects RedriveAllowPolicy as an attribute name.
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return DeadLetterQueue(
        name=queue_name(url),
        url=url,
        arn=attributes.get("QueueArn", ""),
        messages=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        delayed=int(attributes.get("ApproximateNumberOfMessagesDelayed", 0)),
        sources=source_queue_urls(sqs, url, attributes.get("RedriveAllowPolicy")),
    )


def list_dead_letter_queues(sqs: SQSClient, prefix: str) -> list[DeadLetterQueue]:
    """Every ``<prefix>-*-dlq[.fifo]`` queue with its depth, by name."""
    urls: list[str] = []
    pages = sqs.get_paginator("list_queues").paginate(
        QueueNamePrefix=f"{prefix}-", PaginationConfig={"PageSize": 1000}
    )
    for page in pages:
        urls += [
            url for url in page.get("QueueUrls", []) if is_dead_letter_name(queue_name(url), prefix)
        ]
    return [describe_dead_letter_queue(sqs, url) for url in sorted(urls, key=queue_name)]
