"""Batching function logs for CloudWatch Logs (the embedded LocalStack's log shipping).

Plain Python: no LocalStack needed. The shipping into LocalStack itself is covered by the e2e
tests that read a function's logs back from CloudWatch Logs.
"""

from __future__ import annotations

import logging
import queue
from dataclasses import dataclass

import pytest

from lambdamesh_localstack.function_logs import (
    EVENT_OVERHEAD_BYTES,
    MAX_BYTES_PER_PUT,
    MAX_EVENTS_PER_PUT,
    LogBatch,
    batch_log_items,
    ship_log_items,
    take_queued,
)

NOW_MS = 1_795_000_000_000


@dataclass(frozen=True)
class Item:
    log_group: str
    log_stream: str
    logs: str


def test_items_of_one_stream_become_one_batch_in_order_without_empty_lines() -> None:
    # GIVEN two invocations' logs of one stream and one of another stream
    items = [
        Item("/aws/lambda/f", "s1", "START a\nhello\n\nEND a\n"),
        Item("/aws/lambda/f", "s2", "START b\n"),
        Item("/aws/lambda/f", "s1", "START c\n"),
    ]
    # WHEN they are batched
    batches = batch_log_items(items, NOW_MS)
    # THEN each stream gets one batch, events in order, newlines kept, empty lines dropped
    assert [(batch.log_stream, [e["message"] for e in batch.events]) for batch in batches] == [
        ("s1", ["START a\n", "hello\n", "END a\n", "START c\n"]),
        ("s2", ["START b\n"]),
    ]
    assert {event["timestamp"] for batch in batches for event in batch.events} == {NOW_MS}


def test_a_stream_with_more_than_the_event_limit_is_split() -> None:
    # GIVEN one stream with one event more than a PutLogEvents takes
    logs = "x\n" * (MAX_EVENTS_PER_PUT + 1)
    # WHEN it is batched
    batches = batch_log_items([Item("g", "s", logs)], NOW_MS)
    # THEN it goes in two batches, the first full
    assert [len(batch.events) for batch in batches] == [MAX_EVENTS_PER_PUT, 1]


def test_a_stream_over_the_size_limit_is_split_before_the_event_that_would_exceed_it() -> None:
    # GIVEN events of 0.4 MiB each (with CloudWatch's per-event overhead)
    line = "y" * (400 * 1024 - EVENT_OVERHEAD_BYTES - 1)
    # WHEN three are batched
    batches = batch_log_items([Item("g", "s", f"{line}\n{line}\n{line}\n")], NOW_MS)
    # THEN no batch is over 1 MiB: two events, then one
    assert [len(batch.events) for batch in batches] == [2, 1]
    assert all(batch.size_bytes <= MAX_BYTES_PER_PUT for batch in batches)


def test_take_queued_waits_for_one_item_then_takes_what_is_already_there() -> None:
    # GIVEN a queue holding three items
    log_queue: queue.Queue[int] = queue.Queue()
    for n in range(3):
        log_queue.put(n)
    # WHEN items are taken with a limit of two
    first = take_queued(log_queue, limit=2)
    # THEN two come out, the third is left for the next round
    assert first == [0, 1]
    assert take_queued(log_queue) == [2]


def test_a_failing_batch_is_logged_and_the_other_batches_still_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # GIVEN a put that refuses one stream
    put: list[LogBatch] = []

    def flaky_put(batch: LogBatch) -> None:
        if batch.log_stream == "broken":
            raise RuntimeError("log group is being deleted")
        put.append(batch)

    items = [Item("g", "broken", "a\n"), Item("g", "fine", "b\n")]
    # WHEN the items are shipped
    with caplog.at_level(logging.WARNING):
        ship_log_items(items, flaky_put, timestamp_ms=NOW_MS)
    # THEN the other stream's batch was put, and the failure names the stream and the reason
    assert [batch.log_stream for batch in put] == ["fine"]
    assert "broken" in caplog.text
    assert "log group is being deleted" in caplog.text
