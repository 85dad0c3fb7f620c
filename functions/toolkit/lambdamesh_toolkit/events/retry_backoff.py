"""How long a failed message stays hidden before its next try: 1, 2, 4, 8 s ...

The consumer sets a failed record's visibility timeout to a short exponential backoff instead
of leaving it to the queue's visibility timeout (which must exceed six function timeouts), so a
poison message reaches its DLQ after ``maxReceiveCount`` receives within seconds, and a
transient fault is retried soon. After its last allowed receive a record is not hidden at all:
SQS moves it to the DLQ at the next receive (the consumer reads ``maxReceiveCount`` from the
queue's ``RedrivePolicy``), 1 + 2 + 4 + 8 = 15 s after its first failure rather than 31 s.

>>> [backoff_delay_s(attempts, 1.0) for attempts in (1, 2, 3, 4, 5)]
[1, 2, 4, 8, 16]
>>> backoff_delay_s(40, 1.0) == MAX_VISIBILITY_TIMEOUT_S
True
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pydantic import Field

from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.aws.sqs import queue_url
from lambdamesh_toolkit.config import EnvSettings

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.type_defs import ChangeMessageVisibilityBatchRequestEntryTypeDef

#: SQS's largest visibility timeout (12 hours).
MAX_VISIBILITY_TIMEOUT_S = 43_200
#: Environment variable of the first retry delay, in seconds (default 1: 1, 2, 4, 8 s ...).
RETRY_BACKOFF_BASE_ENV = "RETRY_BACKOFF_BASE_S"
#: SQS's largest ``ChangeMessageVisibilityBatch``.
MAX_VISIBILITY_BATCH = 10


class RetryBackoffSettings(EnvSettings):
    """The backoff's tunable, read from the environment.

    Attributes
    ----------
    retry_backoff_base_s : float
        ``RETRY_BACKOFF_BASE_S``: visibility delay after a record's first
        failed receive; doubled at each further receive.
    """

    retry_backoff_base_s: float = Field(1.0, alias="RETRY_BACKOFF_BASE_S", ge=0, le=3600)


def backoff_delay_s(attempts: int, base_s: float) -> int:
    """Visibility delay after the ``attempts``-th failed receive: ``base * 2^(attempts-1)``.

    Rounded up to whole seconds (what SQS takes) and capped at SQS's 12 hours.
    """
    exponent = min(max(attempts, 1) - 1, 30)
    delay: int = math.ceil(base_s * 2**exponent)
    return min(MAX_VISIBILITY_TIMEOUT_S, delay)


class VisibilityBackoff:
    """Hides failed messages for their backoff with ``ChangeMessageVisibilityBatch``.

    Parameters
    ----------
    client : SQSClient | None
        A client to use; by default the process's shared consumer client, on first use.
    """

    def __init__(self, client: SQSClient | None = None) -> None:
        self._client = client

    def delay(self, queue_arn: str, entries: list[tuple[str, int]]) -> list[str]:
        """Hide each ``(receipt handle, seconds)``; return the errors (empty when all worked)."""
        client = self._sqs()
        url = queue_url(client, queue_arn)
        errors: list[str] = []
        for start in range(0, len(entries), MAX_VISIBILITY_BATCH):
            chunk: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(start + n), "ReceiptHandle": handle, "VisibilityTimeout": seconds}
                for n, (handle, seconds) in enumerate(entries[start : start + MAX_VISIBILITY_BATCH])
            ]
            answer = client.change_message_visibility_batch(QueueUrl=url, Entries=chunk)
            errors.extend(
                f"{failed.get('Code')}: {failed.get('Message', '')}"
                for failed in answer.get("Failed", [])
            )
        return errors

    def _sqs(self) -> SQSClient:
        return self._client or clients.sqs(clients.CONSUMER)
