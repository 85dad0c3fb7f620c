"""Reading the functions' log lines of one correlation id from CloudWatch Logs.

Each deployed function logs to ``/aws/lambda/<function name>``; the function names are what
``lambdamesh deploy`` recorded (``lambdamesh status`` shows them), or, when nothing is
recorded, found by the stacks' name prefix. Every JSON line a service writes carries the
correlation id, so the lines of one request are those that contain it. On AWS the filter
pattern (a quoted term) does the searching; an emulator that ignores it returns every line, and
the same test is made here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from lambdamesh.trace.records import HopRecord, hop_from_log_message

if TYPE_CHECKING:
    from mypy_boto3_logs.client import CloudWatchLogsClient

LOG_GROUP_PREFIX: Final = "/aws/lambda/"
SETTLE_S: Final = 2.0
"""How long the lines found must stay the same before a wait for more ends early."""


@dataclass(frozen=True, order=True)
class LogLine:
    """One log event of a function.

    Attributes
    ----------
    timestamp
        When CloudWatch Logs received it (epoch milliseconds).
    service
        The service whose function wrote it.
    message
        The line.
    """

    timestamp: int
    service: str
    message: str


def log_groups(functions: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Each function's log group, and the service it belongs to.

    Parameters
    ----------
    functions
        Service → logical id → function name, as ``lambdamesh deploy`` records them.

    >>> log_groups({"users": {"APIHandler": "lambdamesh-users-APIHandler-1a2b"}})
    {'/aws/lambda/lambdamesh-users-APIHandler-1a2b': 'users'}
    """
    return {
        f"{LOG_GROUP_PREFIX}{name}": service
        for service, names in functions.items()
        for name in names.values()
    }


def log_groups_by_prefix(logs: CloudWatchLogsClient, prefix: str) -> dict[str, str]:
    """The log groups of the functions whose names start with ``<prefix>-``, each with its
    service: the second part of the name (``lambdamesh-orders-APIHandler-...`` → ``orders``)."""
    found: dict[str, str] = {}
    pages = logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=f"{LOG_GROUP_PREFIX}{prefix}-"
    )
    for page in pages:
        for group in page.get("logGroups", []):
            name = group.get("logGroupName", "")
            function = name.removeprefix(f"{LOG_GROUP_PREFIX}{prefix}-")
            found[name] = function.split("-", 1)[0]
    return found


def lines_for(
    logs: CloudWatchLogsClient,
    groups: Mapping[str, str],
    correlation_id: str,
    *,
    since_ms: int | None = None,
) -> list[LogLine]:
    """Every line of ``groups`` that carries ``correlation_id``, in time order.

    Parameters
    ----------
    logs
        CloudWatch Logs.
    groups
        Log group → service (:func:`log_groups`); a group that does not exist (a function that
        never ran) is skipped.
    correlation_id
        The id (ids are of a safe alphabet: no quote can break the filter pattern).
    since_ms
        Leave out what was logged before this time (epoch milliseconds).
    """
    found: list[LogLine] = []
    paginator = logs.get_paginator("filter_log_events")
    pattern = f'"{correlation_id}"'
    for group, service in groups.items():
        pages = (
            paginator.paginate(logGroupName=group, filterPattern=pattern, startTime=since_ms)
            if since_ms is not None
            else paginator.paginate(logGroupName=group, filterPattern=pattern)
        )
        try:
            for page in pages:
                found += [
                    LogLine(event.get("timestamp", 0), service, event.get("message", "").strip())
                    for event in page.get("events", [])
                    if correlation_id in event.get("message", "")
                ]
        except logs.exceptions.ResourceNotFoundException:
            continue
    return sorted(found)


def hops_in(lines: list[LogLine]) -> list[HopRecord]:
    """The hop records among ``lines``."""
    return [
        hop
        for line in lines
        if (hop := hop_from_log_message(line.message, line.service)) is not None
    ]


def wait_for_lines(
    read: Callable[[], list[LogLine]],
    *,
    wait_s: float,
    settle_s: float = SETTLE_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[LogLine]:
    """Read until the lines found stop changing, or ``wait_s`` has passed.

    Function logs reach CloudWatch Logs a moment after the function wrote them (in batches on
    the emulator); a trace read right after a request may miss its last hops. With
    ``wait_s`` 0, one read.
    """
    deadline = clock() + wait_s
    lines = read()
    stable_since = clock()
    while clock() < deadline:
        if lines and clock() - stable_since >= settle_s:
            break
        sleep(min(0.5, max(0.0, deadline - clock())))
        again = read()
        if again != lines:
            lines, stable_since = again, clock()
    return lines
