"""How many requests the emulator served, by service and operation: ``/_lambdamesh/requests``.

A benchmark that asks what one order costs needs the number of AWS requests it made, the
functions' own and those LocalStack makes to itself (an event source mapping's
``ReceiveMessage`` and ``Invoke``, SNS delivering to SQS). :func:`apply_request_counts`, an
``on_infra_start`` hook, adds a response handler that counts every AWS request by
``(service, operation, internal)`` and serves the counts:

``GET /_lambdamesh/requests``
    ``{"requests": [{"service": ..., "operation": ..., "internal": bool, "count": n}, ...]}``
    since start or the last reset; ``DELETE`` resets them.

Counting is a dictionary increment under a lock per request. Nothing else reads the counts.

>>> counts = RequestCounts()
>>> counts.add("dynamodb", "GetItem", internal=False)
>>> counts.add("dynamodb", "GetItem", internal=False)
>>> counts.add("sqs", "ReceiveMessage", internal=True)
>>> counts.snapshot()
[{'service': 'dynamodb', 'operation': 'GetItem', 'internal': False, 'count': 2}, \
{'service': 'sqs', 'operation': 'ReceiveMessage', 'internal': True, 'count': 1}]
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import Any, Final

LOG = logging.getLogger(__name__)

PATH: Final = "/_lambdamesh/requests"
"""Where the counts are served (``GET``) and reset (``DELETE``)."""


class RequestCounts:
    """Requests counted by ``(service, operation, internal)``; safe across threads."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str, bool]] = Counter()
        self._lock = threading.Lock()

    def add(self, service: str, operation: str, *, internal: bool) -> None:
        """Count one request."""
        with self._lock:
            self._counts[(service, operation, internal)] += 1

    def snapshot(self) -> list[dict[str, Any]]:
        """The counts, most frequent first (then by service and operation)."""
        with self._lock:
            items = list(self._counts.items())
        items.sort(key=lambda item: (-item[1], item[0]))
        return [
            {"service": service, "operation": operation, "internal": internal, "count": count}
            for (service, operation, internal), count in items
        ]

    def reset(self) -> None:
        """Start counting from zero."""
        with self._lock:
            self._counts.clear()


COUNTS: Final = RequestCounts()
"""The emulator's counts."""


def count_request(chain: Any, context: Any, response: Any) -> None:
    """LocalStack response handler: count the request if it was an AWS operation."""
    operation = getattr(context, "operation", None)
    if operation is None:
        return
    COUNTS.add(
        operation.service_model.service_name,
        operation.name,
        internal=bool(getattr(context, "is_internal_call", False)),
    )


def serve_counts(request: Any, **_: Any) -> Any:
    """``GET``: the counts as JSON; ``DELETE``: reset them (204)."""
    from localstack.http import Response  # type: ignore[import-not-found,unused-ignore]

    if request.method == "DELETE":
        COUNTS.reset()
        return Response(status=204)
    return Response.for_json({"requests": COUNTS.snapshot()})


def apply_request_counts() -> None:
    """Count every request and serve the counts (LocalStack's ``on_infra_start`` hook)."""
    from localstack.aws.handlers import (  # type: ignore[import-not-found,unused-ignore]
        run_custom_response_handlers,
    )
    from localstack.services.edge import ROUTER  # type: ignore[import-not-found,unused-ignore]

    run_custom_response_handlers.append(count_request)
    ROUTER.add(PATH, serve_counts, methods=["GET", "DELETE"])
    LOG.info("requests counted by service and operation: %s", PATH)


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_request_counts")(apply_request_counts)
