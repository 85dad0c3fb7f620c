"""DynamoDB stream records as AWS makes them, and stream pollers woken by a write.

No LocalStack here: the announcement, the waiting poller (around a stand-in for LocalStack's
``DynamoDBPoller``) and the record rules are plain Python.
"""

from __future__ import annotations

import doctest
import threading
from typing import Any

import pytest

from lambdamesh_localstack import stream_records, stream_wakeup
from lambdamesh_localstack.stream_records import binary_as_bytes, changes_nothing
from lambdamesh_localstack.stream_wakeup import (
    WakingStreamPoller,
    announce_record,
    generation,
    notifying_add,
    wait_for_record,
)


class Item:
    """moto's ``Item``, as far as the rules read it."""

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes

    def to_json(self) -> dict[str, Any]:
        return {"Attributes": self.attributes}


def test_the_modules_examples_run() -> None:
    # GIVEN the modules' docstring examples  WHEN they run  THEN each gives what it shows
    for module in (stream_records, stream_wakeup):
        assert doctest.testmod(module).failed == 0


def test_a_write_that_changes_nothing_makes_no_record_and_others_are_announced() -> None:
    # GIVEN moto's StreamShard.add wrapped
    made: list[tuple[Any, Any]] = []
    add = notifying_add(lambda shard, old, new: made.append((old, new)))
    before = generation()
    # WHEN an item is put, written again unchanged, changed, then deleted
    item, changed = Item({"k": {"S": "a"}}), Item({"k": {"S": "a"}, "n": {"N": "2"}})
    add(None, None, item)
    add(None, item, Item({"k": {"S": "a"}}))
    add(None, item, changed)
    add(None, changed, None)
    # THEN three records were made (the unchanged write none), each announced
    assert made == [(None, item), (item, changed), (changed, None)]
    assert generation() == before + 3


def test_binary_values_are_handed_over_as_bytes_at_every_depth() -> None:
    # GIVEN an image as moto keeps it: binary values as their base64 text
    image = {
        "b": {"B": "AAEC"},
        "bs": {"BS": ["AQ==", "Ag=="]},
        "m": {"M": {"inner": {"B": "/w=="}}},
        "l": {"L": [{"B": "AA=="}, {"S": "AA=="}]},
        "s": {"S": "AAEC"},
    }
    # WHEN it is readied for LocalStack's serialiser
    ready = {name: binary_as_bytes(value) for name, value in image.items()}
    # THEN binary values are bytes (encoded once on the wire), text stays text
    assert ready == {
        "b": {"B": b"\x00\x01\x02"},
        "bs": {"BS": [b"\x01", b"\x02"]},
        "m": {"M": {"inner": {"B": b"\xff"}}},
        "l": {"L": [{"B": b"\x00"}, {"S": "AA=="}]},
        "s": {"S": "AAEC"},
    }
    assert changes_nothing(Item(image), Item(dict(image)))


def test_a_waiter_wakes_when_a_record_is_announced() -> None:
    # GIVEN a poller's bookmark and a record announced a moment later
    seen = generation()
    threading.Timer(0.05, announce_record).start()
    # WHEN it waits (for up to a minute)
    # THEN it was woken by the announcement, not by its timeout
    assert wait_for_record(seen, timeout=60.0) is True


def test_a_waiter_gives_up_after_its_timeout_or_when_stopped() -> None:
    # GIVEN no record announced, and a mapping that has stopped
    seen = generation()
    stop = threading.Event()
    stop.set()
    # WHEN one waits briefly, and another (for up to a minute) for the stopped mapping
    # THEN both return without a record
    assert wait_for_record(seen, timeout=0.05) is False
    assert wait_for_record(seen, timeout=60.0, stop=stop) is False


class StreamPoller:
    """LocalStack's ``DynamoDBPoller`` as the wrapper uses it: poll_events calls get_records."""

    def __init__(self, batches: list[list[dict[str, Any]]]) -> None:
        self.batches = batches
        self.polls = 0
        self.source_arn = "arn:aws:dynamodb:us-east-1:000000000000:table/t/stream/1"

    def get_records(self, shard_iterator: str) -> dict[str, Any]:
        return {"Records": self.batches.pop(0) if self.batches else []}

    def poll_events(self) -> None:
        self.polls += 1
        self.get_records("iterator")


class Waits:
    """The real wait, its calls and answers recorded."""

    def __init__(self) -> None:
        self.answers: list[bool] = []

    def __call__(self, seen: int, timeout: float, stop: threading.Event | None) -> bool:
        answer = wait_for_record(seen, timeout, stop)
        self.answers.append(answer)
        return answer


@pytest.mark.parametrize(("records", "waited"), [([], [False]), ([{"eventName": "INSERT"}], [])])
def test_the_poller_waits_for_a_write_only_after_an_empty_poll(
    records: list[dict[str, Any]], waited: list[bool]
) -> None:
    # GIVEN a stream poller wrapped, its stream empty or holding a record
    inner = StreamPoller([records])
    waits = Waits()
    poller = WakingStreamPoller(inner, threading.Event(), idle_wait_seconds=0.05, wait=waits)
    # WHEN it polls once
    poller.poll_events()
    # THEN after an empty poll it waited (no write came), after records it did not
    assert inner.polls == 1
    assert waits.answers == waited
    # AND what LocalStack reads from its poller still comes from LocalStack's
    assert poller.source_arn == inner.source_arn


def test_an_idle_poller_polls_again_as_soon_as_a_record_is_written() -> None:
    # GIVEN an idle stream poller that would wait up to a minute
    waits = Waits()
    poller = WakingStreamPoller(
        StreamPoller([]), threading.Event(), idle_wait_seconds=60.0, wait=waits
    )
    threading.Timer(0.05, announce_record).start()
    # WHEN a record is written while it waits
    poller.poll_events()
    # THEN the write ended its wait
    assert waits.answers == [True]
