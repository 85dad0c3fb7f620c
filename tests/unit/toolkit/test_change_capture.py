"""Change data capture: a stream batch handled in order, poison records dead-lettered with their
reason, an event store's appended events published (moto SQS and SNS)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderConfirmed,
    OrderPaymentRecorded,
    OrderPlaced,
)
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.change_capture import (
    Change,
    MalformedStreamEventError,
    RecordEvent,
    StreamDeadLetters,
    StreamPublisher,
    changes,
    process_in_order,
)
from lambdamesh_toolkit.events.dead_lettering import FAILURE_REASON_ATTRIBUTE, PermanentFailure
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.publishing import (
    OUT_OF_TIME_FAILURE,
    BatchOutcome,
    PreparedEvent,
    Publisher,
)
from lambdamesh_toolkit.events.time_guard import TimeGuard
from tests.support.lambda_context import ManualContext
from tests.support.sqs import subscribe_raw
from tests.support.stream_records import image, stream_event, stream_record

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient


@dataclass
class World:
    """moto's SQS and SNS: a dead-letter queue, and a FIFO topic whose messages a queue keeps."""

    sqs: SQSClient
    sns: SNSClient
    dlq_url: str
    dlq_arn: str
    topic_arn: str
    inbox_url: str

    def dead_letters(self) -> list[Any]:
        return self.sqs.receive_message(
            QueueUrl=self.dlq_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
        ).get("Messages", [])

    def published(self) -> list[dict[str, Any]]:
        """What reached the topic, in order: body, group and deduplication id."""
        found: list[dict[str, Any]] = []
        while batch := self.sqs.receive_message(
            QueueUrl=self.inbox_url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"],
        ).get("Messages", []):
            for message in batch:
                found.append(
                    {
                        "body": json.loads(message["Body"]),
                        "group": message["Attributes"]["MessageGroupId"],
                        "deduplication_id": message["Attributes"]["MessageDeduplicationId"],
                    }
                )
                self.sqs.delete_message(
                    QueueUrl=self.inbox_url, ReceiptHandle=message["ReceiptHandle"]
                )
        return found


@pytest.fixture
def world(aws_credentials: None) -> Iterator[World]:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        sns = boto3.client("sns", region_name="us-east-1")
        dlq_url = sqs.create_queue(QueueName="lambdamesh-order-events-dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        topic_arn = sns.create_topic(
            Name="lambdamesh-orders.fifo", Attributes={"FifoTopic": "true"}
        )["TopicArn"]
        inbox_url = sqs.create_queue(
            QueueName="lambdamesh-orders-inbox.fifo", Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        subscribe_raw(sns, sqs, topic_arn, inbox_url)
        yield World(sqs, sns, dlq_url, dlq_arn, topic_arn, inbox_url)


def records(*sequence_numbers: str) -> dict[str, Any]:
    """A batch of ``INSERT`` records with these sequence numbers (the images do not matter)."""
    return stream_event(
        *(stream_record("INSERT", n, new_image=image(key=f"k-{n}")) for n in sequence_numbers)
    )


def failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


# --- in order, at least once ---------------------------------------------------------------


def test_every_record_is_handed_over_in_stream_order_and_nothing_is_reported() -> None:
    # GIVEN a batch of three records
    seen: list[str] = []
    # WHEN it is processed
    response = process_in_order(records("1", "2", "3"), lambda c: seen.append(c.sequence_number))
    # THEN the handler saw each, in order, and no record is reported failed
    assert seen == ["1", "2", "3"]
    assert response == {"batchItemFailures": []}


def test_the_first_failure_stops_the_batch_and_reports_it_and_every_later_record() -> None:
    # GIVEN a handler that fails on the second of four records
    seen: list[str] = []

    def handle(change: Change) -> None:
        seen.append(change.sequence_number)
        if change.sequence_number == "2":
            raise RuntimeError("SNS is unreachable")

    # WHEN the batch is processed
    response = process_in_order(records("1", "2", "3", "4"), handle)
    # THEN the records after the failed one were not handed over (none overtakes it) ...
    assert seen == ["1", "2"]
    # AND the failed one and every later one are reported, so Lambda retries from it
    assert failures(response) == ["2", "3", "4"]


def test_no_record_is_started_near_the_functions_timeout_and_the_shard_resumes_from_it() -> None:
    # GIVEN four records that take 1 s each, and an invocation that has 3 s left
    context = ManualContext(remaining_ms=3000)
    seen: list[str] = []
    ended: list[bool] = []

    def handle(change: Change) -> None:
        seen.append(change.sequence_number)
        context.elapse(1.0)

    def end() -> None:
        ended.append(True)

    # WHEN the batch is processed
    response = process_in_order(records("1", "2", "3", "4"), handle, context=context, end=end)
    # THEN the records started with 1.5 s, and twice the slowest record, or more left were
    # handled; the third, with 1 s left, was not started, and the shard is retried from it
    # with the one after it ...
    assert seen == ["1", "2"]
    assert failures(response) == ["3", "4"]
    # AND what the records handled left for the end of the batch was still done
    assert ended == [True]


def test_a_slow_record_keeps_twice_its_time_in_reserve() -> None:
    # GIVEN records that take 1.2 s each, and an invocation with 4 s left
    context = ManualContext(remaining_ms=4000)
    seen: list[str] = []

    def handle(change: Change) -> None:
        seen.append(change.sequence_number)
        context.elapse(1.2)

    # WHEN the batch is processed
    response = process_in_order(records("1", "2", "3"), handle, guard=TimeGuard(context))
    # THEN the third record was not started with 1.6 s left: more than the 1.5 s floor, less
    # than twice the slowest record (2.4 s); the shard is retried from it
    assert seen == ["1", "2"]
    assert failures(response) == ["3"]


def test_a_permanent_failure_goes_to_the_dead_letter_queue_with_its_reason_and_the_batch_goes_on(
    world: World,
) -> None:
    # GIVEN a handler for which the second of three records can never be handled
    seen: list[str] = []

    def handle(change: Change) -> None:
        if change.sequence_number == "2":
            raise PermanentFailure("not an event store item: no 'stream_id'")
        seen.append(change.sequence_number)

    batch = records("1", "2", "3")
    dead_letters = StreamDeadLetters(world.dlq_arn, client=world.sqs)
    # WHEN the batch is processed with a dead-letter queue
    response = process_in_order(batch, handle, dead_letters=dead_letters)
    # THEN nothing is reported failed and the records around the poison one were handled
    assert response == {"batchItemFailures": []}
    assert seen == ["1", "3"]
    # AND the poison record is in the queue as the stream record's JSON, with the reason and
    # its sequence number beside it
    [letter] = world.dead_letters()
    assert json.loads(letter["Body"]) == batch["Records"][1]
    attributes = letter["MessageAttributes"]
    assert attributes[FAILURE_REASON_ATTRIBUTE]["StringValue"] == (
        "not an event store item: no 'stream_id'"
    )
    assert attributes["sequence_number"]["StringValue"] == "2"


def test_an_address_in_the_reason_is_masked_in_the_dead_letter_queue(world: World) -> None:
    # GIVEN a handler whose reason for a hopeless record quotes an email address
    def handle(change: Change) -> None:
        raise PermanentFailure("mail to ada.lovelace@example.com refused")

    dead_letters = StreamDeadLetters(world.dlq_arn, client=world.sqs)
    # WHEN the record is dead-lettered
    process_in_order(records("1"), handle, dead_letters=dead_letters)
    # THEN the reason people read says why without the address, as the consumers' reasons do
    [letter] = world.dead_letters()
    reason = letter["MessageAttributes"][FAILURE_REASON_ATTRIBUTE]["StringValue"]
    assert "ada.lovelace@example.com" not in reason
    assert reason.startswith("mail to ")
    assert reason.endswith(" refused")


def test_without_a_dead_letter_queue_a_permanent_failure_is_retried_like_any_other() -> None:
    # GIVEN a handler for which the second record can never be handled, and no DLQ
    def handle(change: Change) -> None:
        if change.sequence_number == "2":
            raise PermanentFailure("hopeless")

    # WHEN the batch is processed
    response = process_in_order(records("1", "2", "3"), handle)
    # THEN it and the records after it are reported (the event source's own limits end it)
    assert failures(response) == ["2", "3"]


def test_a_record_that_cannot_be_dead_lettered_is_retried(world: World) -> None:
    # GIVEN a dead-letter queue that no longer exists
    world.sqs.delete_queue(QueueUrl=world.dlq_url)
    dead_letters = StreamDeadLetters(world.dlq_arn, client=world.sqs)

    def handle(change: Change) -> None:
        raise PermanentFailure("hopeless")

    # WHEN a poison record is processed
    response = process_in_order(records("1", "2"), handle, dead_letters=dead_letters)
    # THEN it is not dropped: it and the later record are reported for a retry
    assert failures(response) == ["1", "2"]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Records": "not a list"},
        {"Records": [{"eventName": "INSERT", "dynamodb": {}}]},
        {"Records": ["not a record"]},
    ],
    ids=["no Records", "Records not a list", "no SequenceNumber", "record not an object"],
)
def test_an_invocation_that_is_not_a_stream_batch_is_refused(event: dict[str, Any]) -> None:
    # GIVEN an invocation that is not a DynamoDB stream batch
    # WHEN it is processed  THEN it is refused as a whole, saying what is missing
    with pytest.raises(MalformedStreamEventError, match=r"Records|SequenceNumber"):
        process_in_order(event, lambda change: None)


def test_changes_carry_the_images_and_the_whole_record() -> None:
    # GIVEN a MODIFY record and a REMOVE record
    modify = stream_record("MODIFY", "5", new_image=image(k="a", n=2), old_image=image(k="a", n=1))
    remove = stream_record("REMOVE", "6", old_image=image(k="a", n=2))
    # WHEN they are read
    first, second = changes(stream_event(modify, remove))
    # THEN each keeps its type, position and images (an absent image is empty)
    assert (first.event_name, first.sequence_number) == ("MODIFY", "5")
    assert (first.new_image, first.old_image) == (image(k="a", n=2), image(k="a", n=1))
    assert (second.new_image, second.raw) == ({}, remove)


# --- an event store's stream, published ----------------------------------------------------


def order_placed(order_id: str) -> EventEnvelope:
    line = OrderLine(
        product_id="p-1", name="Mug", quantity=1, unit_price_cents=900, line_total_cents=900
    )
    data = OrderPlaced(
        order_id=order_id, user_id="u-1", lines=[line], total_cents=900, currency="EUR"
    )
    return new_event("order.placed", data, source="orders")


def order_confirmed(order_id: str) -> EventEnvelope:
    data = OrderConfirmed(order_id=order_id, user_id="u-1")
    return new_event("order.confirmed", data, source="orders")


def store_item(stream_id: str, version: int, envelope: EventEnvelope) -> dict[str, Any]:
    """An event store item (``events/store.py``'s layout) in attribute-value form."""
    return image(
        stream_id=stream_id,
        version=version,
        event=envelope.model_dump_json(),
        event_id=envelope.id,
        type=envelope.type,
    )


def publisher(world: World) -> StreamPublisher:
    return StreamPublisher(
        Publisher(world.topic_arn, sns_client=world.sns),
        dead_letters=StreamDeadLetters(world.dlq_arn, client=world.sqs),
    )


def test_appended_events_are_published_in_order_grouped_by_their_stream(world: World) -> None:
    # GIVEN the stream of an event store where two orders' events were appended
    use_correlation_id("trace-cdc-1")
    placed_1, placed_2, confirmed_1 = (
        order_placed("o-1"),
        order_placed("o-2"),
        order_confirmed("o-1"),
    )
    batch = stream_event(
        stream_record("INSERT", "1", new_image=store_item("order-o-1", 1, placed_1)),
        stream_record("INSERT", "2", new_image=store_item("order-o-2", 1, placed_2)),
        stream_record("INSERT", "3", new_image=store_item("order-o-1", 2, confirmed_1)),
    )
    # WHEN the batch is published
    response = publisher(world).process(batch)
    # THEN each event reached the FIFO topic as appended, in its stream's message group and
    # under its event id as deduplication id
    assert response == {"batchItemFailures": []}
    assert [(m["body"]["id"], m["group"], m["deduplication_id"]) for m in world.published()] == [
        (placed_1.id, "order-o-1", placed_1.id),
        (placed_2.id, "order-o-2", placed_2.id),
        (confirmed_1.id, "order-o-1", confirmed_1.id),
    ]


def test_events_of_a_private_type_stay_in_the_store_and_the_rest_publish_in_order(
    world: World,
) -> None:
    # GIVEN a stream where an order was placed, its payment recorded, then confirmed
    placed, recorded, confirmed = (
        order_placed("o-1"),
        new_event(
            "order.payment_recorded",
            OrderPaymentRecorded(order_id="o-1", outcome="processed"),
            source="orders",
        ),
        order_confirmed("o-1"),
    )
    batch = stream_event(
        stream_record("INSERT", "1", new_image=store_item("order-o-1", 1, placed)),
        stream_record("INSERT", "2", new_image=store_item("order-o-1", 2, recorded)),
        stream_record("INSERT", "3", new_image=store_item("order-o-1", 3, confirmed)),
    )
    # WHEN a publisher that keeps order.payment_recorded private publishes the batch
    private = StreamPublisher(
        Publisher(world.topic_arn, sns_client=world.sns),
        dead_letters=StreamDeadLetters(world.dlq_arn, client=world.sqs),
        private_types={"order.payment_recorded"},
    )
    response = private.process(batch)
    # THEN the batch succeeds and only the placement and the decision reach the topic, in order
    assert response == {"batchItemFailures": []}
    assert [m["body"]["id"] for m in world.published()] == [placed.id, confirmed.id]


def test_only_inserts_are_published_a_modify_or_remove_is_skipped(world: World) -> None:
    # GIVEN an event store item inserted, then modified and removed (an event store only
    # appends: anything else is not a new event)
    placed = order_placed("o-1")
    item = store_item("order-o-1", 1, placed)
    batch = stream_event(
        stream_record("INSERT", "1", new_image=item),
        stream_record("MODIFY", "2", new_image={**item, **image(note="x")}, old_image=item),
        stream_record("REMOVE", "3", old_image=item),
    )
    # WHEN the batch is published
    response = publisher(world).process(batch)
    # THEN the event went out once and nothing failed
    assert response == {"batchItemFailures": []}
    assert [m["body"]["id"] for m in world.published()] == [placed.id]


@pytest.mark.parametrize(
    ("new_image", "reason"),
    [
        (image(stream_id="order-o-1", version=1), "not an event store item: no 'event'"),
        (
            image(stream_id="order-o-1", version="one", event="{}"),
            "not an event store item: no 'version' of type N",
        ),
        (
            image(stream_id="order-o-1", version=1, event="this is not json"),
            "stream order-o-1 version 1: envelope is not valid JSON",
        ),
    ],
    ids=["no event attribute", "version not a number", "event not an envelope"],
)
def test_an_item_that_holds_no_event_is_dead_lettered_and_the_rest_is_published(
    world: World, new_image: dict[str, Any], reason: str
) -> None:
    # GIVEN a batch whose first item holds no event envelope
    placed = order_placed("o-2")
    batch = stream_event(
        stream_record("INSERT", "1", new_image=new_image),
        stream_record("INSERT", "2", new_image=store_item("order-o-2", 1, placed)),
    )
    # WHEN it is published
    response = publisher(world).process(batch)
    # THEN the bad record is in the dead-letter queue with the reason, the good one went out
    assert response == {"batchItemFailures": []}
    [letter] = world.dead_letters()
    assert letter["MessageAttributes"][FAILURE_REASON_ATTRIBUTE]["StringValue"].startswith(reason)
    assert [m["body"]["id"] for m in world.published()] == [placed.id]


def test_an_event_that_breaks_its_contract_is_dead_lettered_naming_it(world: World) -> None:
    # GIVEN an appended envelope whose data breaks its contract (a negative total)
    placed = order_placed("o-1")
    broken = placed.model_copy(update={"data": {**placed.data, "total_cents": -1}})
    batch = stream_event(stream_record("INSERT", "1", new_image=store_item("order-o-1", 1, broken)))
    # WHEN it is published
    response = publisher(world).process(batch)
    # THEN nothing is published and the record waits in the DLQ, naming the event and the field
    assert response == {"batchItemFailures": []}
    assert world.published() == []
    [letter] = world.dead_letters()
    reason = letter["MessageAttributes"][FAILURE_REASON_ATTRIBUTE]["StringValue"]
    assert reason.startswith(f"order.placed {placed.id}: ")
    assert "data.total_cents" in reason


def test_a_publish_that_fails_for_the_moment_is_retried_from_that_record(world: World) -> None:
    # GIVEN a topic that is gone (SNS refuses), and two appended events
    world.sns.delete_topic(TopicArn=world.topic_arn)
    batch = stream_event(
        stream_record("INSERT", "1", new_image=store_item("order-o-1", 1, order_placed("o-1"))),
        stream_record("INSERT", "2", new_image=store_item("order-o-2", 1, order_placed("o-2"))),
    )
    # WHEN the batch is published
    response = publisher(world).process(batch)
    # THEN both are reported for a retry and nothing was dead-lettered
    assert failures(response) == ["1", "2"]
    assert world.dead_letters() == []


def _count_publish_requests(sns: SNSClient) -> list[str]:
    """The SNS operations the client sends from now on, by name."""
    sent: list[str] = []
    sns.meta.events.register("before-call.sns.*", lambda model, **_: sent.append(model.name))
    return sent


def test_a_batch_of_events_goes_out_ten_to_a_request_in_the_order_appended(world: World) -> None:
    # GIVEN a stream batch of 23 appended events, over three orders
    placed = [order_placed(f"o-{n % 3}") for n in range(23)]
    batch = stream_event(
        *(
            stream_record("INSERT", str(n), new_image=store_item(f"order-o-{n % 3}", n, event))
            for n, event in enumerate(placed, start=1)
        )
    )
    sent = _count_publish_requests(world.sns)
    # WHEN it is published
    response = publisher(world).process(batch)
    # THEN three PublishBatch requests carried every event, in its order's group, in order
    assert response == {"batchItemFailures": []}
    assert sent == ["PublishBatch"] * 3
    published = world.published()
    assert [m["body"]["id"] for m in published] == [event.id for event in placed]
    assert [m["group"] for m in published] == [f"order-o-{n % 3}" for n in range(1, 24)]


def test_events_handled_before_a_failing_record_are_still_published(world: World) -> None:
    # GIVEN a publisher without a dead-letter queue, and a batch whose second record holds no
    # event (a failure it retries) between two appended events
    first, third = order_placed("o-1"), order_placed("o-3")
    batch = stream_event(
        stream_record("INSERT", "1", new_image=store_item("order-o-1", 1, first)),
        stream_record("INSERT", "2", new_image=image(stream_id="order-o-2", version=1)),
        stream_record("INSERT", "3", new_image=store_item("order-o-3", 1, third)),
    )
    without_dlq = StreamPublisher(Publisher(world.topic_arn, sns_client=world.sns))
    # WHEN it is published
    response = without_dlq.process(batch)
    # THEN the event before the failure went out; the shard is retried from the failure
    assert failures(response) == ["2", "3"]
    assert [m["body"]["id"] for m in world.published()] == [first.id]


@dataclass
class RefusingTopic:
    """A topic that takes the first ``takes`` events of a batch, then refuses."""

    takes: int
    topic_name: str = "orders.fifo"
    fifo: bool = True

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        raise AssertionError("events go out in batches")

    def prepare(
        self, envelope: EventEnvelope, *, group_id: str | None = None, traceparent: str | None
    ) -> PreparedEvent:
        return PreparedEvent(envelope, envelope.model_dump_json(), {}, group_id, 1)

    def publish_batch(
        self, events: Sequence[PreparedEvent], *, guard: TimeGuard | None = None
    ) -> BatchOutcome:
        ids = tuple(f"m-{event.envelope.id}" for event in events[: self.takes])
        return BatchOutcome(ids, None if len(events) <= self.takes else "Throttled: slow down")


def test_the_shard_is_retried_from_the_first_event_the_topic_did_not_take() -> None:
    # GIVEN a topic that takes two events of a batch of four, then refuses
    events = [order_placed(f"o-{n}") for n in range(4)]
    batch = stream_event(
        *(
            stream_record("INSERT", str(n), new_image=store_item(f"order-o-{n}", 1, event))
            for n, event in enumerate(events, start=1)
        )
    )
    # WHEN the batch is published
    response = StreamPublisher(RefusingTopic(takes=2)).process(batch)
    # THEN the third record and every one after it are reported for a retry
    assert failures(response) == ["3", "4"]


def test_no_publish_request_is_sent_near_the_timeout_and_the_shard_resumes_from_its_first_event(
    world: World,
) -> None:
    # GIVEN a stream batch of 25 appended events, and an invocation with 3.5 s left whose
    # publish requests (ten events each) take 1 s each
    placed = [order_placed(f"o-{n}") for n in range(25)]
    batch = stream_event(
        *(
            stream_record("INSERT", str(n), new_image=store_item(f"order-o-{n}", 1, event))
            for n, event in enumerate(placed, start=1)
        )
    )
    sent = _count_publish_requests(world.sns)
    context = ManualContext(remaining_ms=3500)
    world.sns.meta.events.register("before-call.sns.PublishBatch", lambda **_: context.elapse(1.0))
    # WHEN it is published
    response = publisher(world).process(batch, context)
    # THEN two requests went, with 3.5 s and 2.5 s left; the third, with 1.5 s (less than
    # twice the slowest request), did not
    assert sent == ["PublishBatch"] * 2
    assert [m["body"]["id"] for m in world.published()] == [event.id for event in placed[:20]]
    # AND the shard is retried from the first event not sent
    assert failures(response) == [str(n) for n in range(21, 26)]


def test_a_publish_batch_without_time_left_sends_nothing_and_says_why(world: World) -> None:
    # GIVEN a prepared event, and an invocation with 1 s left
    topic = Publisher(world.topic_arn, sns_client=world.sns)
    prepared = topic.prepare(order_placed("o-1"), group_id="o-1", traceparent=None)
    guard = TimeGuard(ManualContext(remaining_ms=1000))
    # WHEN it is published with that time
    outcome = topic.publish_batch([prepared], guard=guard)
    # THEN nothing went, and the outcome says why
    assert outcome == BatchOutcome((), OUT_OF_TIME_FAILURE)
    assert world.published() == []


class AnnouncedKey(StreamPublisher):
    """A publisher of its own events: every ``MODIFY`` announces an ``order.confirmed`` of
    the item's ``key``."""

    def event_of(self, change: Change) -> RecordEvent | None:
        if change.event_name != "MODIFY":
            return None
        key = change.new_image["key"]["S"]
        return RecordEvent(order_confirmed(key), key, {"key": key})


def test_a_publisher_of_its_own_events_publishes_them_in_their_keys_groups(world: World) -> None:
    # GIVEN a publisher that says which event a record announces, and a batch where two
    # records announce one and a third none
    batch = stream_event(
        stream_record("MODIFY", "1", new_image=image(key="o-1"), old_image=image(key="o-1")),
        stream_record("INSERT", "2", new_image=image(key="o-2")),
        stream_record("MODIFY", "3", new_image=image(key="o-3"), old_image=image(key="o-3")),
    )
    announcing = AnnouncedKey(
        Publisher(world.topic_arn, sns_client=world.sns), group_of=lambda key: f"group-{key}"
    )
    # WHEN the batch is published
    response = announcing.process(batch)
    # THEN the two events went out in stream order, each in its key's group
    assert response == {"batchItemFailures": []}
    assert [(m["body"]["data"]["order_id"], m["group"]) for m in world.published()] == [
        ("o-1", "group-o-1"),
        ("o-3", "group-o-3"),
    ]


def test_each_batched_event_carries_the_traceparent_of_its_own_publish_span(world: World) -> None:
    # GIVEN two appended events, their items written under two traces
    events = [order_placed("o-1"), order_placed("o-2")]
    parents = ["00-" + f"{n:032x}" + "-00f067aa0ba902b7-01" for n in (1, 2)]
    batch = stream_event(
        *(
            stream_record(
                "INSERT",
                str(n),
                new_image={**store_item(f"order-o-{n}", 1, event), **image(traceparent=parent)},
            )
            for n, (event, parent) in enumerate(zip(events, parents, strict=True), start=1)
        )
    )
    # WHEN they are published together
    publisher(world).process(batch)
    # THEN each message's traceparent continues the trace its item was written in
    found = world.sqs.receive_message(
        QueueUrl=world.inbox_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
    )["Messages"]
    traces = [m["MessageAttributes"]["traceparent"]["StringValue"].split("-")[1] for m in found]
    assert traces == [f"{n:032x}" for n in (1, 2)]
