"""DynamoDB stream records as Lambda hands them to a function, built by hand.

For records no table would write (a malformed image, a write that bypassed a version) and
for exact sequence numbers; ``dynamodb_streams.py`` reads what a table under moto really wrote.
The shape is AWS's (``Records[]``: ``eventID``, ``eventName``, ``eventSource``,
``eventSourceARN``, ``dynamodb``: ``Keys``, ``NewImage``, ``OldImage``, ``SequenceNumber``,
``SizeBytes``, ``StreamViewType``); images are in DynamoDB's attribute-value form.

>>> image(product_id="p-1", stock=3)
{'product_id': {'S': 'p-1'}, 'stock': {'N': '3'}}
>>> record = stream_record("MODIFY", "7", new_image=image(k="a"), old_image=image(k="b"))
>>> record["eventName"], record["dynamodb"]["SequenceNumber"], record["dynamodb"]["Keys"]
('MODIFY', '7', {'k': {'S': 'a'}})
"""

from __future__ import annotations

import json
from typing import Any

STREAM_ARN = (
    "arn:aws:dynamodb:us-east-1:123456789012:table/test-table/stream/2026-01-01T00:00:00.000"
)


def image(**attributes: str | int) -> dict[str, dict[str, str]]:
    """An item in attribute-value form: text as ``S``, whole numbers as ``N``."""
    return {
        name: {"N": str(value)} if isinstance(value, int) else {"S": value}
        for name, value in attributes.items()
    }


def stream_record(
    event_name: str,
    sequence_number: str,
    *,
    new_image: dict[str, Any] | None = None,
    old_image: dict[str, Any] | None = None,
    key_names: tuple[str, ...] | None = None,
    stream_arn: str = STREAM_ARN,
) -> dict[str, Any]:
    """One record of a ``NEW_AND_OLD_IMAGES`` stream (``INSERT``: no old image; ``REMOVE``: no
    new one). ``Keys`` holds ``key_names`` of the image (by default its first attribute)."""
    either = new_image or old_image or {}
    names = key_names or tuple(list(either)[:1])
    body: dict[str, Any] = {
        "ApproximateCreationDateTime": 1767225600,
        "Keys": {name: either[name] for name in names if name in either},
        "SequenceNumber": sequence_number,
        "SizeBytes": len(json.dumps([new_image, old_image])),
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new_image is not None:
        body["NewImage"] = new_image
    if old_image is not None:
        body["OldImage"] = old_image
    return {
        "eventID": f"event-{sequence_number}",
        "eventName": event_name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": body,
        "eventSourceARN": stream_arn,
    }


def stream_event(*records: dict[str, Any]) -> dict[str, Any]:
    """The Lambda event delivering ``records`` as one batch."""
    return {"Records": list(records)}
