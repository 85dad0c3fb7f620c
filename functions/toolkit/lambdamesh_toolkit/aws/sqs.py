"""SQS's addresses: a queue's URL from its ARN.

An ARN names a queue everywhere (event sources, redrive policies); the API wants its URL. The
URL is asked for, not built: its form differs between AWS and the emulator's endpoint
strategies.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


@functools.lru_cache(maxsize=256)
def queue_url(client: SQSClient, queue_arn: str) -> str:
    """The URL of the queue ``arn:aws:sqs:<region>:<account>:<name>``, asked once per client:
    a queue's URL does not change while it exists."""
    *_, account, name = queue_arn.split(":")
    url: str = client.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"]
    return url
