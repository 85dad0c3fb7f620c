"""The words on the topology's edges: filter policies, batch sizes, redrive and failure limits.

Each is short enough to sit beside a connector, and the same whichever way the facts were read
(a filter policy is sorted, so the order SNS or a template keeps it in does not matter).

>>> filter_policy_label({"type": ["order.placed", "order.cancelled"]}, raw=True)
'type: order.cancelled, order.placed; raw'
>>> batch_label(10)
'batch 10'
>>> redrive_label(5)
'maxReceiveCount 5'
>>> on_failure_label(10)
'on failure, after 10 retries'
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

BODY_SCOPE = "MessageBody"
"""A subscription's ``FilterPolicyScope`` that filters on the message's body, not attributes."""

OR_KEY = "$or"


def _condition(value: Any) -> str:
    """One condition of a filter policy's list: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _conditions(values: Any) -> str:
    listed = values if isinstance(values, list) else [values]
    return ", ".join(sorted(_condition(value) for value in listed))


def _clauses(policy: Mapping[str, Any], path: str = "") -> list[str]:
    """``key: conditions`` for every key, nested keys (a body policy) joined with dots."""
    clauses: list[str] = []
    for key in sorted(policy):
        value = policy[key]
        if key == OR_KEY and isinstance(value, list):
            alternatives = [
                " and ".join(_clauses(item, path)) for item in value if isinstance(item, Mapping)
            ]
            clauses.append("(" + " | ".join(alternatives) + ")")
        elif isinstance(value, Mapping):
            clauses += _clauses(value, f"{path}{key}.")
        else:
            clauses.append(f"{path}{key}: {_conditions(value)}")
    return clauses


def filter_policy_label(
    policy: Mapping[str, Any] | None, *, scope: str | None = None, raw: bool = False
) -> str:
    """A subscription's filter policy in one line, and whether delivery is raw.

    Parameters
    ----------
    policy
        The parsed ``FilterPolicy``; ``None`` or empty: every message is delivered.
    scope
        ``FilterPolicyScope``; ``MessageBody`` is said (``body``), attributes are the default.
    raw
        ``RawMessageDelivery``.

    >>> filter_policy_label(None)
    'every message'
    >>> filter_policy_label({"data": {"kind": [{"prefix": "gift"}]}}, scope="MessageBody")
    'body data.kind: {"prefix":"gift"}'
    >>> filter_policy_label({"$or": [{"type": ["a"]}, {"source": ["b"]}]})
    '(type: a | source: b)'
    """
    text = "; ".join(_clauses(policy)) if policy else "every message"
    if policy and scope == BODY_SCOPE:
        text = f"body {text}"
    return f"{text}; raw" if raw else text


def parse_policy(policy: Any) -> dict[str, Any] | None:
    """A filter policy as SNS answers it (a JSON string) or as a template holds it (an object).

    >>> parse_policy('{"type": ["user.created"]}')
    {'type': ['user.created']}
    >>> parse_policy("") is None
    True
    """
    if isinstance(policy, str):
        policy = json.loads(policy) if policy.strip() else None
    return dict(policy) if isinstance(policy, Mapping) else None


def is_true(value: Any) -> bool:
    """A boolean attribute as SNS answers it (``"true"``) or as a template holds it.

    >>> [is_true(value) for value in ("true", "False", True, None)]
    [True, False, True, False]
    """
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def batch_label(size: int | None) -> str:
    """An event source mapping's batch size (``batch 10``); empty when unknown."""
    return f"batch {size}" if size is not None else ""


def redrive_label(max_receive_count: int) -> str:
    """A redrive policy: after how many receives a message moves to the dead-letter queue."""
    return f"maxReceiveCount {max_receive_count}"


def on_failure_label(retries: int | None) -> str:
    """A stream mapping's on-failure destination, after its retries (``-1``: until expiry).

    >>> on_failure_label(-1)
    'on failure'
    """
    if retries is None or retries < 0:
        return "on failure"
    return f"on failure, after {retries} retries"
