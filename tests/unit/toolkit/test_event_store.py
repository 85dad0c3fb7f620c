"""The event store: streams appended with optimistic concurrency and read back, on moto.

The transaction tests run twice: on moto as it is, and with the embedded LocalStack's item
rollback installed (``lambdamesh_localstack.moto_transactions``), since the emulator serves the
store's table through that. The threaded tests serialise moto's requests as the emulator does:
moto's backend is not thread-safe on its own.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, cast

import moto.dynamodb.models as moto_dynamodb_models
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.core.botocore_stubber import BotocoreStubber
from moto.dynamodb.models import DynamoDBBackend

from lambdamesh_localstack import moto_transactions
from lambdamesh_toolkit.contracts.events import (
    EVENT_MODELS,
    EventData,
    InvalidEventError,
    InventoryRejected,
    InventoryReleased,
    InventoryReserved,
    InventoryStockChanged,
    OrderCancelled,
    OrderConfirmed,
    OrderPaymentRecorded,
    OrderPlaced,
    OrderStockRecorded,
    OrderVoided,
    PaymentFailed,
    PaymentProcessed,
    PaymentRefunded,
    UserCreated,
)
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.deadline import use_deadline
from lambdamesh_toolkit.errors import Conflict
from lambdamesh_toolkit.events.envelope import event_data, new_event
from lambdamesh_toolkit.events.store import (
    EVENT_ATTRIBUTE,
    EVENT_ID_ATTRIBUTE,
    MAX_TRANSACTION_ITEMS,
    RECORDED_AT_ATTRIBUTE,
    STREAM_ID_ATTRIBUTE,
    TYPE_ATTRIBUTE,
    VERSION_ATTRIBUTE,
    ConcurrencyError,
    EventStore,
    StoredEvent,
    retry_on_conflict,
    table_definition,
)
from tests.unit.toolkit.conftest import new_dynamodb_client

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

    from lambdamesh_toolkit.contracts.events import EventEnvelope

TABLE = "lambdamesh-orders-events"
STREAM = "order-o-1"
MOTO = "moto's rollback"
EMULATOR = "the emulator's item rollback"
RECORDED_AT = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)


@pytest.fixture
def dynamodb(aws_credentials: None) -> Iterator[DynamoDBClient]:
    """The event store table under moto, created from :func:`table_definition`."""
    with mock_aws():
        client = new_dynamodb_client()
        client.create_table(TableName=TABLE, BillingMode="PAY_PER_REQUEST", **table_definition())
        yield client


@pytest.fixture(params=[MOTO, EMULATOR])
def rollback(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which ``TransactWriteItems`` rollback moto uses: its own, or the emulator's patch."""
    if request.param == EMULATOR:
        monkeypatch.setattr(
            DynamoDBBackend, "transact_write_items", DynamoDBBackend.transact_write_items
        )
        monkeypatch.setattr(moto_dynamodb_models, "copy", moto_dynamodb_models.__dict__["copy"])
        moto_transactions.install()
    return cast(str, request.param)


@pytest.fixture
def serialised_moto(monkeypatch: pytest.MonkeyPatch) -> None:
    """One moto request at a time, as the emulator runs DynamoDB under one lock."""
    lock = threading.Lock()
    process = BotocoreStubber.process_request

    def one_at_a_time(self: BotocoreStubber, request: Any) -> Any:
        with lock:
            return process(self, request)

    monkeypatch.setattr(BotocoreStubber, "process_request", one_at_a_time)


@pytest.fixture
def store(dynamodb: DynamoDBClient) -> EventStore:
    return EventStore(TABLE, client=dynamodb, clock=lambda: RECORDED_AT)


def confirmed(order_id: str = "o-1") -> EventEnvelope:
    return new_event(
        "order.confirmed", OrderConfirmed(order_id=order_id, user_id="u-1"), source="orders"
    )


def ids(stored: list[StoredEvent]) -> list[str]:
    return [event.envelope.id for event in stored]


def items_of(client: DynamoDBClient, stream_id: str = STREAM) -> list[dict[str, Any]]:
    items = client.scan(TableName=TABLE, ConsistentRead=True)["Items"]
    return [item for item in items if item[STREAM_ID_ATTRIBUTE]["S"] == stream_id]


def count_queries(client: DynamoDBClient) -> list[str]:
    """Record each Query the client sends."""
    sent: list[str] = []
    client.meta.events.register(
        "before-call.dynamodb.Query", lambda **_: sent.append("Query"), unique_id="count"
    )
    return sent


# --- append and read --------------------------------------------------------------------


def test_a_new_stream_reads_back_the_envelopes_it_was_given(store: EventStore) -> None:
    # GIVEN an event
    event = confirmed()
    # WHEN it is appended to a stream that has no events
    version = store.append(STREAM, [event], expected_version=0)
    # THEN it is the stream's first event, read back equal to what was appended
    assert version == 1
    assert store.read(STREAM) == [StoredEvent(version=1, envelope=event)]
    assert store.current_version(STREAM) == 1


def test_events_appended_together_get_consecutive_versions_in_their_order(
    store: EventStore,
) -> None:
    # GIVEN a stream of three events appended at once
    first = [confirmed() for _ in range(3)]
    assert store.append(STREAM, first, expected_version=0) == 3
    # WHEN two more are appended after them
    second = [confirmed() for _ in range(2)]
    version = store.append(STREAM, second, expected_version=3)
    # THEN the stream numbers them 1 to 5 in the order given
    assert version == 5
    stored = store.read(STREAM)
    assert [event.version for event in stored] == [1, 2, 3, 4, 5]
    assert ids(stored) == [event.id for event in first + second]


def test_each_item_holds_the_envelope_as_published_its_id_type_and_when_it_was_recorded(
    store: EventStore, dynamodb: DynamoDBClient
) -> None:
    # GIVEN an event
    event = confirmed()
    # WHEN it is appended
    store.append(STREAM, [event], expected_version=0)
    # THEN its item holds exactly the documented attributes: the key, the envelope's JSON as
    # the publishers send it, its id and type, and the store's clock
    [item] = items_of(dynamodb)
    assert item == {
        STREAM_ID_ATTRIBUTE: {"S": STREAM},
        VERSION_ATTRIBUTE: {"N": "1"},
        EVENT_ATTRIBUTE: {"S": event.model_dump_json()},
        EVENT_ID_ATTRIBUTE: {"S": event.id},
        TYPE_ATTRIBUTE: {"S": "order.confirmed"},
        RECORDED_AT_ATTRIBUTE: {"S": "2026-03-01T12:30:00+00:00"},
    }


def test_streams_are_separate(store: EventStore) -> None:
    # GIVEN two streams, one of them holding two events
    store.append("order-o-1", [confirmed("o-1"), confirmed("o-1")], expected_version=0)
    other = confirmed("o-2")
    # WHEN the other one is appended to and both are read
    version = store.append("order-o-2", [other], expected_version=0)
    # THEN each has its own versions and events
    assert version == 1
    assert ids(store.read("order-o-2")) == [other.id]
    assert store.current_version("order-o-1") == 2


def test_a_stream_without_events_is_at_version_0_and_reads_empty(store: EventStore) -> None:
    # GIVEN a table without that stream
    # WHEN it is read
    # THEN it has no events and its version is 0
    assert store.read("order-none") == []
    assert store.current_version("order-none") == 0


def test_reading_after_a_version_returns_only_the_later_events(store: EventStore) -> None:
    # GIVEN a stream of four events
    events = [confirmed() for _ in range(4)]
    store.append(STREAM, events, expected_version=0)
    # WHEN it is read after version 2, after its last version, and past it
    later = store.read(STREAM, after_version=2)
    # THEN only versions 3 and 4 come back, then nothing
    assert [(event.version, event.envelope.id) for event in later] == [
        (3, events[2].id),
        (4, events[3].id),
    ]
    assert store.read(STREAM, after_version=4) == []
    assert store.read(STREAM, after_version=9) == []


def test_a_stream_longer_than_a_page_is_read_whole_across_pages(
    store: EventStore, dynamodb: DynamoDBClient
) -> None:
    # GIVEN a stream of events of ≈ 150 KB each, more than DynamoDB's 1 MB page holds
    line = OrderLine(
        product_id="p-1", name="x" * 200, quantity=1, unit_price_cents=1, line_total_cents=1
    )
    placed = OrderPlaced(
        order_id="o-1", user_id="u-1", lines=[line] * 500, total_cents=500, currency="EUR"
    )
    events = [new_event("order.placed", placed, source="orders") for _ in range(9)]
    store.append(STREAM, events, expected_version=0)
    queries = count_queries(dynamodb)
    # WHEN it is read
    stored = store.read(STREAM)
    # THEN every event came back, in order, over more than one query
    assert ids(stored) == [event.id for event in events]
    assert len(queries) > 1


def test_every_registered_event_type_survives_the_round_trip(store: EventStore) -> None:
    # GIVEN one event of every registered type, with text that is not ASCII
    samples: dict[type[EventData], EventData] = {
        UserCreated: UserCreated(user_id="u-1", email="zoe@example.com", name="Zoë «Z» O'Neil"),
        OrderPlaced: OrderPlaced(
            order_id="o-1",
            user_id="u-1",
            lines=[
                OrderLine(
                    product_id="p-1",
                    name='Crème "brûlée" 🍮',
                    quantity=2,
                    unit_price_cents=450,
                    line_total_cents=900,
                )
            ],
            total_cents=900,
            currency="EUR",
        ),
        OrderConfirmed: OrderConfirmed(order_id="o-1", user_id="u-1"),
        OrderCancelled: OrderCancelled(order_id="o-1", user_id="u-1", reason="stock — none"),
        OrderVoided: OrderVoided(order_id="o-1", reason="no such order"),
        OrderPaymentRecorded: OrderPaymentRecorded(
            order_id="o-1", outcome="failed", reason="card declined"
        ),
        OrderStockRecorded: OrderStockRecorded(
            order_id="o-1", outcome="rejected", reason="out", product_id="p-1"
        ),
        PaymentProcessed: PaymentProcessed(
            order_id="o-1", payment_id="pay-1", amount_cents=900, currency="EUR"
        ),
        PaymentFailed: PaymentFailed(order_id="o-1", reason="card declined"),
        PaymentRefunded: PaymentRefunded(order_id="o-1", payment_id="pay-1", amount_cents=900),
        InventoryReserved: InventoryReserved(order_id="o-1", reservation_id="r-1"),
        InventoryRejected: InventoryRejected(order_id="o-1", reason="out", product_id="p-1"),
        InventoryReleased: InventoryReleased(order_id="o-1", reservation_id="r-1"),
        InventoryStockChanged: InventoryStockChanged(
            product_id="p-1", available=3, stock_version=7
        ),
    }
    assert set(samples) == set(EVENT_MODELS), "a registered event type has no sample here"
    events = [
        new_event(model.event_type, data, source="orders", causation_id="req-1")
        for model, data in samples.items()
    ]
    # WHEN they are appended to a stream and read back
    store.append(STREAM, events, expected_version=0)
    stored = store.read(STREAM)
    # THEN each envelope is equal to the one appended, and so is its typed data
    assert [event.envelope for event in stored] == events
    assert [event_data(event.envelope) for event in stored] == list(samples.values())


# --- optimistic concurrency -------------------------------------------------------------


def test_an_append_after_a_stale_version_raises_and_writes_nothing_of_the_batch(
    store: EventStore, dynamodb: DynamoDBClient, rollback: str
) -> None:
    # GIVEN a stream at version 2
    store.append(STREAM, [confirmed(), confirmed()], expected_version=0)
    before = items_of(dynamodb)
    # WHEN three events are appended after version 1: version 2 is taken, 3 and 4 are free
    with pytest.raises(ConcurrencyError) as raised:
        store.append(STREAM, [confirmed() for _ in range(3)], expected_version=1)
    # THEN the refusal names the stream, the version expected and the one found, and comes
    # from DynamoDB's cancelled transaction
    error = raised.value
    assert (error.stream_id, error.expected_version, error.actual_version) == (STREAM, 1, 2)
    assert isinstance(error.__cause__, ClientError)
    assert error.__cause__.response["Error"]["Code"] == "TransactionCanceledException"
    # AND not even the free versions were written
    assert items_of(dynamodb) == before
    assert store.current_version(STREAM) == 2


def test_of_two_writers_that_read_the_same_version_exactly_one_appends(
    dynamodb: DynamoDBClient, rollback: str
) -> None:
    # GIVEN two writers, each with its own client (two warm containers), on a stream at 1
    first = EventStore(TABLE, client=new_dynamodb_client())
    second = EventStore(TABLE, client=new_dynamodb_client())
    first.append(STREAM, [confirmed()], expected_version=0)
    # WHEN both read the stream's version, decide, then append after it
    seen_by_first, seen_by_second = first.current_version(STREAM), second.current_version(STREAM)
    winner = confirmed()
    assert first.append(STREAM, [winner], expected_version=seen_by_first) == 2
    with pytest.raises(ConcurrencyError) as raised:
        second.append(STREAM, [confirmed(), confirmed()], expected_version=seen_by_second)
    # THEN the second is refused, told where the stream is now, and only the first's event
    # follows version 1
    assert raised.value.actual_version == 2
    assert ids(first.read(STREAM, after_version=1)) == [winner.id]


def test_racing_threads_with_the_same_expected_version_append_exactly_once(
    dynamodb: DynamoDBClient, serialised_moto: None
) -> None:
    # GIVEN eight writers on their own threads and clients, released together on a new stream
    writers = 8
    start = threading.Barrier(writers)
    outcomes: dict[str, str] = {}

    def write() -> None:
        writer = EventStore(TABLE, client=new_dynamodb_client())
        event = confirmed()
        start.wait()
        try:
            writer.append(STREAM, [event], expected_version=0)
            outcomes[event.id] = "appended"
        except ConcurrencyError:
            outcomes[event.id] = "refused"

    # WHEN each appends its event as the stream's first
    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly one appended, every other was refused, and the stream holds the winner's
    appended = [event_id for event_id, outcome in outcomes.items() if outcome == "appended"]
    assert len(outcomes) == writers
    assert len(appended) == 1
    assert ids(EventStore(TABLE, client=dynamodb).read(STREAM)) == appended


def test_parallel_appenders_that_retry_on_conflict_lose_no_event(
    dynamodb: DynamoDBClient, serialised_moto: None
) -> None:
    # GIVEN six writers on their own threads, each to append one event to the same stream
    writers = 6
    start = threading.Barrier(writers)
    events = [confirmed() for _ in range(writers)]
    versions: list[int] = []

    def write(event: EventEnvelope) -> None:
        writer = EventStore(TABLE, client=new_dynamodb_client())
        start.wait()

        def reload_and_append() -> int:
            return writer.append(STREAM, [event], expected_version=writer.current_version(STREAM))

        versions.append(retry_on_conflict(reload_and_append, attempts=writers + 1))

    # WHEN each reloads and appends until it is not refused
    threads = [threading.Thread(target=write, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN the stream's version is the number of appends, each event stored once
    assert sorted(versions) == list(range(1, writers + 1))
    stored = EventStore(TABLE, client=dynamodb).read(STREAM)
    assert sorted(ids(stored)) == sorted(event.id for event in events)
    assert [event.version for event in stored] == list(range(1, writers + 1))


def test_an_expected_version_ahead_of_the_stream_is_refused_and_leaves_no_gap(
    store: EventStore, dynamodb: DynamoDBClient, rollback: str
) -> None:
    # GIVEN a stream at version 1
    store.append(STREAM, [confirmed()], expected_version=0)
    # WHEN an event is appended after version 3, which the stream never reached
    with pytest.raises(ConcurrencyError) as raised:
        store.append(STREAM, [confirmed()], expected_version=3)
    # THEN it is refused, naming where the stream is, and nothing was written past it
    assert raised.value.actual_version == 1
    assert str(raised.value) == "stream 'order-o-1' is at version 1, not 3 as expected"
    assert len(items_of(dynamodb)) == 1


def test_a_refused_append_is_a_conflict_that_answers_409(store: EventStore) -> None:
    # GIVEN a stream at version 1
    store.append(STREAM, [confirmed()], expected_version=0)
    # WHEN an append after version 0 is refused
    with pytest.raises(ConcurrencyError) as raised:
        store.append(STREAM, [confirmed()], expected_version=0)
    # THEN the error is the toolkit's Conflict: an API route left with it answers 409
    assert isinstance(raised.value, Conflict)
    assert raised.value.to_body()["error"]["code"] == "conflict"


def test_a_repeated_append_is_recognised_by_its_event_ids(store: EventStore) -> None:
    # GIVEN two events appended to a new stream, whose answer the writer did not get
    events = [confirmed(), confirmed()]
    store.append(STREAM, events, expected_version=0)
    # WHEN the writer appends them again after the same version
    with pytest.raises(ConcurrencyError):
        store.append(STREAM, events, expected_version=0)
    # THEN the stream is seen to hold exactly those events there, and other events are not
    assert store.already_appended(STREAM, events, expected_version=0)
    assert store.already_appended(STREAM, events[:1], expected_version=0)
    assert not store.already_appended(STREAM, events[::-1], expected_version=0)
    assert not store.already_appended(STREAM, [confirmed()], expected_version=0)
    assert not store.already_appended(STREAM, events, expected_version=1)
    assert store.already_appended(STREAM, [], expected_version=2)
    # AND the stream is unchanged
    assert store.current_version(STREAM) == 2


class RefusingClient:
    """A DynamoDB client whose transactions are cancelled with the given reasons."""

    def __init__(self, reasons: list[str], *, version: int | None) -> None:
        self.reasons = reasons
        self.version = version

    def transact_write_items(self, **_: Any) -> None:
        raise ClientError(
            {
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": [{"Code": code} for code in self.reasons],
            },
            "TransactWriteItems",
        )

    def query(self, **_: Any) -> dict[str, Any]:
        if self.version is None:
            raise ClientError({"Error": {"Code": "ThrottlingException"}}, "Query")
        return {"Items": [{VERSION_ATTRIBUTE: {"N": str(self.version)}}]}


def refusing_store(reasons: list[str], *, version: int | None) -> EventStore:
    client = cast("DynamoDBClient", RefusingClient(reasons, version=version))
    return EventStore(TABLE, client=client)


def test_an_append_another_transaction_was_writing_is_a_conflict_too() -> None:
    # GIVEN DynamoDB cancelling the append because another append held its item (on AWS, the
    # loser of two racing appends may hear this instead of a failed condition)
    store = refusing_store(["TransactionConflict"], version=4)
    # WHEN an event is appended after version 3
    # THEN it is a ConcurrencyError: reload and retry fits it as well
    with pytest.raises(ConcurrencyError) as raised:
        store.append(STREAM, [confirmed()], expected_version=3)
    assert raised.value.actual_version == 4


def test_a_conflict_whose_version_cannot_be_read_still_raises_as_a_conflict() -> None:
    # GIVEN a refused append, and the read of the stream's version after it failing
    store = refusing_store(["None", "ConditionalCheckFailed"], version=None)
    # WHEN an append is refused
    with pytest.raises(ConcurrencyError) as raised:
        store.append(STREAM, [confirmed(), confirmed()], expected_version=0)
    # THEN the conflict is raised, its actual version unknown
    assert raised.value.actual_version is None
    assert str(raised.value) == "stream 'order-o-1' is ahead, not 0 as expected"


def test_a_transaction_cancelled_for_another_reason_is_not_a_conflict() -> None:
    # GIVEN DynamoDB cancelling an append for throttling
    store = refusing_store(["ThrottlingError"], version=0)
    # WHEN an event is appended
    # THEN DynamoDB's error propagates as it came
    with pytest.raises(ClientError) as raised:
        store.append(STREAM, [confirmed()], expected_version=0)
    assert not isinstance(raised.value, ConcurrencyError)


def test_other_refusals_propagate_as_they_came(dynamodb: DynamoDBClient) -> None:
    # GIVEN a store on a table that does not exist
    store = EventStore("no-such-table", client=dynamodb)
    # WHEN an event is appended
    # THEN DynamoDB's refusal is raised, not a ConcurrencyError
    with pytest.raises(ClientError) as raised:
        store.append(STREAM, [confirmed()], expected_version=0)
    assert not isinstance(raised.value, ConcurrencyError)


# --- what an append refuses before sending ----------------------------------------------


def test_appending_no_events_sends_nothing_and_returns_the_expected_version() -> None:
    # GIVEN a store whose client would fail any call
    store = refusing_store(["ConditionalCheckFailed"], version=None)
    # WHEN nothing is appended after version 3
    # THEN nothing is sent and the version is unchanged
    assert store.append(STREAM, [], expected_version=3) == 3


def test_an_append_of_more_than_a_transaction_holds_is_refused_naming_the_limit(
    store: EventStore, dynamodb: DynamoDBClient
) -> None:
    # GIVEN a hundred and one events, and a stream at version 1
    events = [confirmed() for _ in range(MAX_TRANSACTION_ITEMS + 1)]
    store.append("order-o-2", [confirmed()], expected_version=0)
    # WHEN 101 are appended to a new stream, or 100 after version 1 (one more item checks it)
    # THEN both are refused naming DynamoDB's limit, and nothing is written
    with pytest.raises(ValueError, match="at most 100 items"):
        store.append(STREAM, events, expected_version=0)
    with pytest.raises(ValueError, match="at most 100 items"):
        store.append("order-o-2", events[:100], expected_version=1)
    assert items_of(dynamodb) == []
    assert store.current_version("order-o-2") == 1
    # AND a hundred to a new stream fit in one transaction
    assert store.append(STREAM, events[:100], expected_version=0) == 100


def test_an_event_whose_data_breaks_its_contract_is_refused_before_anything_is_written(
    store: EventStore,
) -> None:
    # GIVEN a valid event and one whose data its model refuses
    broken = confirmed().model_copy(update={"data": {"order_id": "o-1"}})
    # WHEN both are appended together
    # THEN the broken one is named and the stream stays empty
    with pytest.raises(InvalidEventError, match="user_id"):
        store.append(STREAM, [confirmed(), broken], expected_version=0)
    assert store.current_version(STREAM) == 0


def test_an_event_id_repeated_in_one_append_is_refused(store: EventStore) -> None:
    # GIVEN the same event twice
    event = confirmed()
    # WHEN both are appended at once
    # THEN it is refused (consumers would drop the second as already handled)
    with pytest.raises(ValueError, match="repeated"):
        store.append(STREAM, [event, event], expected_version=0)


@pytest.mark.parametrize(
    ("stream_id", "version"), [("", 0), (STREAM, -1), (STREAM, True)], ids=repr
)
def test_an_empty_stream_id_or_a_negative_version_is_refused(
    store: EventStore, stream_id: str, version: int
) -> None:
    # GIVEN / WHEN a stream is appended to or read with an impossible argument
    # THEN it is refused before anything is sent
    with pytest.raises(ValueError, match=r"stream_id|version"):
        store.append(stream_id, [confirmed()], expected_version=version)
    with pytest.raises(ValueError, match=r"stream_id|version"):
        store.read(stream_id, after_version=version)


# --- reload and retry -------------------------------------------------------------------


def test_retry_on_conflict_reloads_and_succeeds_on_the_second_attempt(
    store: EventStore, dynamodb: DynamoDBClient
) -> None:
    # GIVEN a writer whose first append is overtaken by another writer's, between its read and
    # its append
    other = EventStore(TABLE, client=new_dynamodb_client())
    theirs, mine = confirmed(), confirmed()
    reads: list[int] = []
    pauses: list[float] = []

    def reload_decide_append() -> int:
        version = store.current_version(STREAM)
        reads.append(version)
        if len(reads) == 1:
            other.append(STREAM, [theirs], expected_version=version)
        return store.append(STREAM, [mine], expected_version=version)

    # WHEN it runs under retry_on_conflict
    version = retry_on_conflict(reload_decide_append, sleep=pauses.append)
    # THEN the second run read the new version and appended after it, after one short pause
    assert version == 2
    assert reads == [0, 1]
    assert len(pauses) == 1
    assert 0 <= pauses[0] <= 0.05
    assert ids(store.read(STREAM)) == [theirs.id, mine.id]


def test_retry_on_conflict_gives_up_after_its_attempts_with_the_last_conflict(
    store: EventStore,
) -> None:
    # GIVEN an operation that another writer overtakes every time
    other = EventStore(TABLE, client=new_dynamodb_client())
    runs: list[int] = []
    pauses: list[float] = []

    def always_overtaken() -> int:
        version = store.current_version(STREAM)
        runs.append(version)
        other.append(STREAM, [confirmed()], expected_version=version)
        return store.append(STREAM, [confirmed()], expected_version=version)

    # WHEN it runs with three attempts
    with pytest.raises(ConcurrencyError) as raised:
        retry_on_conflict(always_overtaken, attempts=3, max_pause_s=0.2, sleep=pauses.append)
    # THEN it ran three times, paused twice, and the last refusal is raised
    assert runs == [0, 1, 2]
    assert len(pauses) == 2
    assert all(0 <= pause <= 0.2 for pause in pauses)
    assert (raised.value.expected_version, raised.value.actual_version) == (2, 3)


def test_retry_on_conflict_raises_anything_else_at_once() -> None:
    # GIVEN an operation that fails for another reason
    runs: list[str] = []

    def broken() -> None:
        runs.append("run")
        raise RuntimeError("not a conflict")

    # WHEN it runs under retry_on_conflict
    # THEN the error is raised after one run
    with pytest.raises(RuntimeError, match="not a conflict"):
        retry_on_conflict(broken, sleep=lambda _: None)
    assert runs == ["run"]


def test_retry_on_conflict_starts_no_retry_after_the_deadline() -> None:
    # GIVEN a request whose deadline has passed, and an operation always refused
    runs: list[str] = []

    def refused() -> None:
        runs.append("run")
        raise ConcurrencyError(STREAM, 1, 2)

    use_deadline(time.time() - 1)
    try:
        # WHEN it runs under retry_on_conflict
        with pytest.raises(ConcurrencyError):
            retry_on_conflict(refused, attempts=5, sleep=lambda _: None)
    finally:
        use_deadline(None)
    # THEN it ran once
    assert runs == ["run"]


def test_retry_on_conflict_needs_at_least_one_attempt() -> None:
    # GIVEN / WHEN no attempt is allowed THEN it is refused before running anything
    operation = cast(Callable[[], None], lambda: pytest.fail("ran"))
    with pytest.raises(ValueError, match="attempts"):
        retry_on_conflict(operation, attempts=0)
