"""What ``lambdamesh status`` shows of the emulator's permission audit: calls checked, denied.

The embedded emulator checks every AWS call signed by a role (a function's own, and Lambda's
pollers with it) against that role's policies and keeps the decisions at
``/_lambdamesh/permissions``; AWS would refuse a denied one with ``AccessDenied``. A LocalStack
without the lambdamesh plugins has no audit: nothing is shown then.

>>> summary = PermissionSummary(checked=120, denied=[{"session": "lambdamesh-users-APIHandler-1",
...     "action": "dynamodb:UpdateItem", "resource": "arn:aws:dynamodb:r:1:table/u", "count": 2}])
>>> print("\\n".join(format_permissions(summary)))
  IAM (calls signed by a role, checked against it; AWS refuses a denied one)
    checked 120, denied 1
    denied  lambdamesh-users-APIHandler-1: dynamodb:UpdateItem on arn:aws:dynamodb:r:1:table/u (x2)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import urllib3

PATH = "/_lambdamesh/permissions"
SHOWN_DENIALS = 10
"""At most this many denied calls are listed; the count says how many there are."""


@dataclass(frozen=True)
class PermissionSummary:
    """The audit's decisions in short.

    Attributes
    ----------
    checked : int
        Calls checked since the emulator started (every count summed).
    denied : list[dict[str, Any]]
        The denied decisions: ``session``, ``role``, ``action``, ``resource``, ``count``.
    """

    checked: int
    denied: list[dict[str, Any]] = field(default_factory=list)


def read_decisions(endpoint: str, *, timeout_s: float = 5.0) -> list[dict[str, Any]] | None:
    """Every decision of the audit of the emulator at ``endpoint`` (``role``, ``session``,
    ``action``, ``resource``, ``allowed``, ``count``); ``None`` when it has none (or cannot
    answer)."""
    try:
        answer = urllib3.PoolManager(retries=False).request(
            "GET", endpoint.rstrip("/") + PATH, timeout=timeout_s
        )
    except urllib3.exceptions.HTTPError:
        return None
    if answer.status != 200:
        return None
    try:
        decisions: list[dict[str, Any]] = json.loads(answer.data)["decisions"]
    except (ValueError, KeyError, TypeError):
        return None
    return decisions


def read_permissions(endpoint: str, *, timeout_s: float = 5.0) -> PermissionSummary | None:
    """The audit of the emulator at ``endpoint`` in short; ``None`` when it has none."""
    decisions = read_decisions(endpoint, timeout_s=timeout_s)
    if decisions is None:
        return None
    return PermissionSummary(
        checked=sum(int(d.get("count", 0)) for d in decisions),
        denied=[d for d in decisions if not d.get("allowed")],
    )


def format_permissions(summary: PermissionSummary) -> list[str]:
    """The lines of the permission part of ``lambdamesh status``."""
    lines = [
        "  IAM (calls signed by a role, checked against it; AWS refuses a denied one)",
        f"    checked {summary.checked}, denied {len(summary.denied)}",
    ]
    for decision in summary.denied[:SHOWN_DENIALS]:
        lines.append(
            f"    denied  {decision.get('session')}: {decision.get('action')} on "
            f"{decision.get('resource') or 'its resource'} (x{decision.get('count')})"
        )
    if len(summary.denied) > SHOWN_DENIALS:
        lines.append(f"    ... and {len(summary.denied) - SHOWN_DENIALS} more (status --json)")
    return lines
