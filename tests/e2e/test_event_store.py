"""The toolkit's event store on the embedded runtime's DynamoDB: no event lost under contention."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import pytest

from lambdamesh_toolkit.contracts.events import OrderVoided
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.store import (
    ConcurrencyError,
    EventStore,
    retry_on_conflict,
    table_definition,
)
from tests.e2e.lambda_support import unique_name

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

WRITERS = 8
APPENDS_PER_WRITER = 12


@pytest.fixture
def store(emulator: Any) -> Iterator[EventStore]:
    """An event store table of its own on the emulator, dropped afterwards."""
    dynamodb: DynamoDBClient = emulator.client("dynamodb")
    name = unique_name("event-store")
    dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **table_definition())
    dynamodb.get_waiter("table_exists").wait(
        TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
    )
    yield EventStore(name, client=dynamodb)
    dynamodb.delete_table(TableName=name)


def test_parallel_appenders_never_lose_an_event(store: EventStore) -> None:
    # GIVEN eight writers appending to one stream at once, each reading the stream's version,
    # appending after it, and on a conflict reloading and trying again
    stream = "order-contended"
    refusals: list[int] = []

    def writer(number: int) -> list[str]:
        appended: list[str] = []
        for index in range(APPENDS_PER_WRITER):
            event = new_event(
                OrderVoided.event_type,
                OrderVoided(order_id="contended", reason=f"writer {number} append {index}"),
                source="e2e",
            )

            def read_decide_append(event: Any = event) -> int:
                try:
                    return store.append(
                        stream, [event], expected_version=store.current_version(stream)
                    )
                except ConcurrencyError:
                    refusals.append(number)
                    raise

            retry_on_conflict(read_decide_append, attempts=100, max_pause_s=0.02)
            appended.append(event.id)
        return appended

    # WHEN they have all finished
    with ThreadPoolExecutor(WRITERS) as pool:
        appended = [event_id for ids in pool.map(writer, range(WRITERS)) for event_id in ids]
    # THEN the stream's version is the number of successful appends, versions have no gaps,
    # and every appended event is in it exactly once
    history = store.read(stream)
    assert store.current_version(stream) == len(appended) == WRITERS * APPENDS_PER_WRITER
    assert [stored.version for stored in history] == list(range(1, len(appended) + 1))
    assert sorted(stored.envelope.id for stored in history) == sorted(appended)
    # AND the writers did meet: some appends were refused and retried
    assert refusals
