"""DynamoDB stream records as AWS makes them, where moto makes them otherwise.

Pure functions, used by :mod:`lambdamesh_localstack.dynamodb_moto` (records read through
``GetRecords``) and :mod:`lambdamesh_localstack.stream_wakeup` (records written), tested without
LocalStack:

* a write that changes nothing makes no record (:func:`changes_nothing`): moto records every put
  and update, DynamoDB Streams only those that changed the item;
* binary attributes reach the client once encoded (:func:`binary_as_bytes`).
"""

from __future__ import annotations

import base64
from typing import Any


def changes_nothing(old: Any, new: Any) -> bool:
    """Whether a write from item ``old`` to item ``new`` (moto ``Item`` s) changed nothing.

    >>> class Item:
    ...     def __init__(self, attributes): self.attributes = attributes
    ...     def to_json(self): return {"Attributes": self.attributes}
    >>> changes_nothing(Item({"n": {"N": "1"}}), Item({"n": {"N": "1"}}))
    True
    >>> changes_nothing(Item({"n": {"N": "1"}}), Item({"n": {"N": "2"}}))
    False
    >>> changes_nothing(None, Item({}))
    False
    """
    if old is None or new is None:
        return False
    return bool(old.to_json()["Attributes"] == new.to_json()["Attributes"])


def binary_as_bytes(value: Any) -> Any:
    """An attribute value with its binary parts as bytes, as LocalStack's serialiser wants them.

    moto keeps ``B`` and ``BS`` values as the base64 text they arrived as; handed over as text,
    LocalStack's serialiser would encode them in base64 a second time. Nested in ``M`` and
    ``L`` too.

    >>> binary_as_bytes({"B": "AAE="}), binary_as_bytes({"M": {"x": {"BS": ["AQ=="]}}})
    ({'B': b'\\x00\\x01'}, {'M': {'x': {'BS': [b'\\x01']}}})
    >>> binary_as_bytes({"S": "AAE="})
    {'S': 'AAE='}
    """
    if not isinstance(value, dict):
        return value
    if isinstance(value.get("B"), str):
        return {"B": base64.b64decode(value["B"])}
    if isinstance(value.get("BS"), list):
        return {
            "BS": [
                base64.b64decode(item) if isinstance(item, str) else item for item in value["BS"]
            ]
        }
    if isinstance(value.get("M"), dict):
        return {"M": {key: binary_as_bytes(item) for key, item in value["M"].items()}}
    if isinstance(value.get("L"), list):
        return {"L": [binary_as_bytes(item) for item in value["L"]]}
    return value
