"""The emulator's request counts: counted by service, operation and origin (no LocalStack here)."""

from __future__ import annotations

import doctest
import threading
from types import SimpleNamespace

from lambdamesh_localstack import request_counts
from lambdamesh_localstack.request_counts import COUNTS, RequestCounts, count_request


def test_the_modules_examples_run() -> None:
    # GIVEN the module's docstring examples  WHEN they run  THEN each gives what it shows
    assert doctest.testmod(request_counts).failed == 0


def _context(service: str, operation: str, *, internal: bool) -> SimpleNamespace:
    model = SimpleNamespace(service_name=service)
    return SimpleNamespace(
        operation=SimpleNamespace(name=operation, service_model=model), is_internal_call=internal
    )


def test_every_aws_request_is_counted_by_service_operation_and_origin() -> None:
    # GIVEN the counts reset
    COUNTS.reset()
    # WHEN a client's GetItem twice, LocalStack's own ReceiveMessage once, and a request that
    # is no AWS operation (a health check) go through the response handler
    for context in (
        _context("dynamodb", "GetItem", internal=False),
        _context("dynamodb", "GetItem", internal=False),
        _context("sqs", "ReceiveMessage", internal=True),
        SimpleNamespace(operation=None),
    ):
        count_request(None, context, None)
    # THEN the AWS requests are counted, each by where it came from
    assert COUNTS.snapshot() == [
        {"service": "dynamodb", "operation": "GetItem", "internal": False, "count": 2},
        {"service": "sqs", "operation": "ReceiveMessage", "internal": True, "count": 1},
    ]
    # AND a reset starts from zero
    COUNTS.reset()
    assert COUNTS.snapshot() == []


def test_counts_from_many_threads_add_up() -> None:
    # GIVEN counts taken from eight threads at once
    counts = RequestCounts()

    def count() -> None:
        for _ in range(1000):
            counts.add("sns", "Publish", internal=False)

    threads = [threading.Thread(target=count) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN none is lost
    assert counts.snapshot() == [
        {"service": "sns", "operation": "Publish", "internal": False, "count": 8000}
    ]
