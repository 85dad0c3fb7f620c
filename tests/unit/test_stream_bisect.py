"""``BisectBatchOnFunctionError`` for stream mappings: the bisecting forwarder, with stand-ins for
LocalStack's forwarding and invocation (no LocalStack here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from lambdamesh_localstack.stream_bisect import BisectingForwarder


class FunctionError(Exception):
    """LocalStack's ``BatchFailureError``: the function failed on the batch."""


class PartialFailureError(Exception):
    """LocalStack's ``PartialBatchFailureError``: the function named failed records."""

    def __init__(self, failed: str | None) -> None:
        super().__init__(failed)
        self.failed = failed


class Shard:
    """A function that fails on any batch holding a poison record, and LocalStack's forwarding
    (retries, then the on-failure destination) as a record of what it was given."""

    def __init__(self, poison: set[str], *, reports_items: bool = False) -> None:
        self.poison = poison
        self.reports_items = reports_items
        self.delivered: list[str] = []
        self.forwarded: list[list[str]] = []
        self.tries: list[list[str]] = []

    def try_once(self, shard_id: str, records: Sequence[dict[str, Any]]) -> None:
        keys = [record["key"] for record in records]
        self.tries.append(keys)
        bad = [key for key in keys if key in self.poison]
        if not bad:
            self.delivered.extend(keys)
            return
        if self.reports_items:
            self.delivered.extend(keys[: keys.index(bad[0])])
            raise PartialFailureError(bad[0])
        raise FunctionError(bad)

    def forward(self, shard_id: str, records: Sequence[dict[str, Any]]) -> None:
        keys = [record["key"] for record in records]
        self.forwarded.append(keys)
        if not any(key in self.poison for key in keys):
            self.delivered.extend(keys)

    def forwarder(self) -> BisectingForwarder:
        return BisectingForwarder(
            forward=self.forward,
            try_once=self.try_once,
            failed_from=lambda error, records: getattr(error, "failed", None),
            sequence_of=lambda record: str(record["key"]),
            function_error=FunctionError,
            partial_failure=PartialFailureError,
        )


def batch(*keys: str) -> list[dict[str, Any]]:
    return [{"key": key} for key in keys]


def test_a_poison_record_is_bisected_down_to_itself_and_the_rest_is_delivered_in_order() -> None:
    # GIVEN a batch of eight records, the sixth a poison the function fails on
    shard = Shard(poison={"r6"})
    records = batch(*(f"r{number}" for number in range(1, 9)))
    # WHEN it is forwarded with bisection
    shard.forwarder()("shard-1", records)
    # THEN every other record reached the function, in order
    assert shard.delivered == ["r1", "r2", "r3", "r4", "r5", "r7", "r8"]
    # AND only the poison record alone went to LocalStack's forwarding (its retries and the
    # on-failure destination), bisected 8 -> 4 -> 2 -> 1
    assert ["r6"] in shard.forwarded
    assert all(len(keys) == 1 for keys in shard.forwarded)
    assert shard.tries[0] == [f"r{number}" for number in range(1, 9)]


def test_a_batch_the_function_takes_is_tried_once_and_not_forwarded_again() -> None:
    # GIVEN a batch without a poison record
    shard = Shard(poison=set())
    # WHEN it is forwarded
    shard.forwarder()("shard-1", batch("a", "b", "c"))
    # THEN it was invoked once, whole
    assert shard.tries == [["a", "b", "c"]]
    assert shard.forwarded == []
    assert shard.delivered == ["a", "b", "c"]


def test_a_reported_record_is_retried_from_itself_without_bisecting() -> None:
    # GIVEN a function that names the records it failed on (ReportBatchItemFailures)
    shard = Shard(poison={"c"}, reports_items=True)
    # WHEN a batch with a failing third record is forwarded
    shard.forwarder()("shard-1", batch("a", "b", "c", "d"))
    # THEN LocalStack's forwarding retries from that record on, as the report asks
    assert shard.forwarded == [["c", "d"]]
    assert shard.delivered[:2] == ["a", "b"]


def test_a_single_record_goes_straight_to_localstacks_forwarding() -> None:
    # GIVEN a batch of one record
    shard = Shard(poison={"x"})
    # WHEN it is forwarded
    shard.forwarder()("shard-1", batch("x"))
    # THEN nothing is tried on the side: LocalStack's retries and destination take it
    assert shard.tries == []
    assert shard.forwarded == [["x"]]
