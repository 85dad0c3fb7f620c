"""Events no consumer can ever process, published where consumers will receive them.

Each kind breaks a different rule a consumer checks: a body that is not JSON, an envelope of a
version nobody knows, data that breaks its contract. Every poison event carries a marker in its
body, so that the run can find each one again in a dead-letter queue, with the reason it failed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient


@dataclass(frozen=True)
class Poison:
    """One poison event: its marker, the topic output it went to, and what is wrong with it."""

    marker: str
    topic: str
    flaw: str


def _envelope(event_type: str, version: int, data: dict[str, Any], correlation_id: str) -> str:
    return json.dumps(
        {
            "id": str(uuid.uuid4()),
            "type": event_type,
            "version": version,
            "source": "chaos",
            "occurred_at": datetime.now(UTC).isoformat(),
            "correlation_id": correlation_id,
            "data": data,
        }
    )


def poison_message(kind: int, marker: str) -> tuple[str, str, str, str]:
    """Poison number ``kind`` (cycling over the kinds): topic output, type, body, flaw.

    >>> [poison_message(k, "m")[3] for k in range(4)]  # doctest: +NORMALIZE_WHITESPACE
    ['a body that is not JSON', 'an event version nobody knows',
     'data that breaks its contract', 'an envelope with no id']
    >>> poison_message(4, "m")[3] == poison_message(0, "m")[3]
    True
    """
    choice = kind % 4
    if choice == 0:
        return "UsersTopicArn", "user.created", f"not JSON {{ {marker}", "a body that is not JSON"
    if choice == 1:
        body = _envelope("inventory.reserved", 99, {"order_id": marker}, marker)
        return "InventoryTopicArn", "inventory.reserved", body, "an event version nobody knows"
    if choice == 2:
        body = _envelope("order.placed", 1, {"order_id": marker, "total_cents": -1}, marker)
        return "OrdersTopicArn", "order.placed", body, "data that breaks its contract"
    body = json.dumps({"type": "payment.processed", "data": {"order_id": marker}})
    return "PaymentsTopicArn", "payment.processed", body, "an envelope with no id"


def publish_poison(
    sns: SNSClient, topics: Mapping[str, str], count: int, run_id: str
) -> list[Poison]:
    """Publish ``count`` poison events to the system's topics (``topics``: output → ARN)."""
    published = []
    for kind in range(count):
        # Fixed width, so that no marker is the start of another (poison-001, poison-010).
        marker = f"{run_id}-poison-{kind:03d}"
        output, event_type, body, flaw = poison_message(kind, marker)
        arn = topics[output]
        attributes: dict[str, Any] = {
            "type": {"DataType": "String", "StringValue": event_type},
            "correlation_id": {"DataType": "String", "StringValue": marker},
        }
        extra: dict[str, Any] = {}
        if arn.endswith(".fifo"):
            extra = {"MessageGroupId": marker, "MessageDeduplicationId": marker}
        sns.publish(TopicArn=arn, Message=body, MessageAttributes=attributes, **extra)
        published.append(Poison(marker, output, flaw))
    return published
