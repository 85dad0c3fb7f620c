"""Event contracts and the publisher: envelope, registry, SNS attributes, FIFO, size limit."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    InvalidEventError,
    OrderPlaced,
    PaymentFailed,
    UnknownEventError,
    UserCreated,
    event_model,
)
from lambdamesh_toolkit.contracts.orders import OrderLine
from lambdamesh_toolkit.contracts.schemas import export_json_schemas
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.envelope import event_data, new_event, parse_envelope
from lambdamesh_toolkit.events.publishing import (
    SNS_MAX_MESSAGE_BYTES,
    EventTooLargeError,
    Outbox,
    Publisher,
    UnpublishedEventsError,
)
from lambdamesh_toolkit.trace_context import parse_traceparent
from tests.support.sqs import subscribe_raw

if TYPE_CHECKING:
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType
    from mypy_boto3_sqs.type_defs import MessageTypeDef


def order_placed(order_id: str = "o-1", lines: int = 1) -> OrderPlaced:
    line = OrderLine(
        product_id="p-1", name="Teapot", quantity=2, unit_price_cents=1250, line_total_cents=2500
    )
    return OrderPlaced(
        order_id=order_id,
        user_id="u-1",
        lines=[line] * lines,
        total_cents=2500 * lines,
        currency="EUR",
    )


@dataclass
class Wiring:
    """A topic with one raw-delivery queue subscribed, under moto."""

    sns: SNSClient
    sqs: SQSClient
    topic_arn: str
    queue_url: str

    def received(self) -> list[MessageTypeDef]:
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
        )
        return answer.get("Messages", [])


def wire(name: str, *, fifo: bool) -> Wiring:
    sns = boto3.client("sns", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    suffix = ".fifo" if fifo else ""
    topic_attributes = {"FifoTopic": "true"} if fifo else {}
    queue_attributes: dict[QueueAttributeNameType, str] = {"FifoQueue": "true"} if fifo else {}
    topic_arn = sns.create_topic(Name=f"{name}{suffix}", Attributes=topic_attributes)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"{name}-q{suffix}", Attributes=queue_attributes)[
        "QueueUrl"
    ]
    subscribe_raw(sns, sqs, topic_arn, queue_url)
    return Wiring(sns, sqs, topic_arn, queue_url)


@pytest.fixture
def aws(aws_credentials: None) -> Iterator[None]:
    with mock_aws():
        yield


def test_new_event_wraps_data_with_a_fresh_id_and_the_current_correlation_id() -> None:
    # GIVEN an invocation with a correlation id
    use_correlation_id("req-7")

    # WHEN an event is built
    envelope = new_event("order.placed", order_placed(), source="orders", causation_id="req-7")

    # THEN it carries a uuid4, the model's version, an aware time and the correlation id
    assert uuid.UUID(envelope.id).version == 4
    assert (envelope.type, envelope.version, envelope.source) == ("order.placed", 1, "orders")
    assert envelope.time.tzinfo is not None
    assert envelope.correlation_id == "req-7"
    assert envelope.causation_id == "req-7"
    assert event_data(envelope) == order_placed()
    assert parse_envelope(envelope.model_dump_json()) == envelope


def test_every_event_type_of_the_design_is_registered() -> None:
    # GIVEN / WHEN the registry is asked for each event of the design
    # THEN each has a version 1 model
    for event_type in (
        "user.created",
        "order.placed",
        "order.confirmed",
        "order.cancelled",
        "payment.processed",
        "payment.failed",
        "payment.refunded",
        "inventory.reserved",
        "inventory.rejected",
        "inventory.released",
        "inventory.stock_changed",
    ):
        assert event_model(event_type, 1).event_type == event_type


@pytest.mark.parametrize(("event_type", "version"), [("order.shipped", 1), ("order.placed", 9)])
def test_unknown_type_or_version_is_refused_naming_it(event_type: str, version: int) -> None:
    # GIVEN / WHEN an unregistered event is looked up
    with pytest.raises(UnknownEventError) as raised:
        event_model(event_type, version)

    # THEN the error names it and lists what is known
    assert f"{event_type!r} version {version}" in str(raised.value)
    assert "order.placed v1" in str(raised.value)


def test_data_that_breaks_its_model_is_refused_naming_the_field() -> None:
    # GIVEN an envelope whose order line has quantity 0
    envelope = new_event("order.placed", order_placed(), source="orders")
    data = envelope.model_dump(mode="json")["data"]
    data["lines"][0]["quantity"] = 0
    broken = envelope.model_copy(update={"data": data})

    # WHEN its data is validated
    with pytest.raises(InvalidEventError) as raised:
        event_data(broken)

    # THEN the error names the field inside data
    assert raised.value.field == "data.lines[0].quantity"
    assert "order.placed v1" in str(raised.value)


def test_new_event_refuses_a_model_of_another_type() -> None:
    # GIVEN / WHEN an order.placed event is built from a user's data
    data = UserCreated(user_id="u-1", email="ada@example.com", name="Ada")
    with pytest.raises(InvalidEventError) as raised:
        new_event("order.placed", data, source="orders")

    # THEN the mismatch is named
    assert "OrderPlaced, not UserCreated" in str(raised.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{not json", "envelope is not valid JSON"),
        (json.dumps({"type": "order.placed"}), "envelope: id: Field required"),
    ],
)
def test_malformed_envelopes_are_refused_with_a_clear_reason(body: str, expected: str) -> None:
    # GIVEN / WHEN a malformed body is read as an envelope
    with pytest.raises(InvalidEventError) as raised:
        parse_envelope(body)

    # THEN the reason says what is wrong
    assert str(raised.value).startswith(expected)


def test_event_schemas_are_exported_with_their_type(tmp_path: Path) -> None:
    # GIVEN / WHEN the contracts are exported
    export_json_schemas(tmp_path)

    # THEN the envelope and each event's data are there, data models naming their type
    envelope = json.loads((tmp_path / "events.EventEnvelope.v1.schema.json").read_text())
    placed = json.loads((tmp_path / "events.OrderPlaced.v1.schema.json").read_text())
    assert set(envelope["required"]) >= {"id", "type", "version", "correlation_id", "data"}
    assert placed["event_type"] == "order.placed"
    assert "lines" in placed["required"]


def test_publish_delivers_the_envelope_and_its_attributes_raw_to_the_queue(aws: None) -> None:
    # GIVEN a standard topic with a raw-delivery queue, and a correlation id
    wiring = wire("payments", fifo=False)
    use_correlation_id("corr-1")
    envelope = new_event(
        "payment.failed", PaymentFailed(order_id="o-1", reason="declined"), source="payments"
    )

    # WHEN it is published
    message_id = Publisher(wiring.topic_arn, sns_client=wiring.sns).publish(envelope)

    # THEN SNS confirmed it and the queue received the envelope with its attributes
    assert message_id
    [message] = wiring.received()
    assert parse_envelope(message["Body"]) == envelope
    attributes = {
        name: (value["DataType"], value["StringValue"])
        for name, value in message["MessageAttributes"].items()
    }
    traceparent = attributes.pop("traceparent")
    assert attributes == {
        "type": ("String", "payment.failed"),
        "version": ("String", "1"),
        "correlation_id": ("String", "corr-1"),
    }
    # AND the publish hop's trace context (a new trace: it was published outside any hop)
    assert traceparent[0] == "String"
    assert parse_traceparent(traceparent[1]) is not None


def test_fifo_publish_sets_the_group_and_deduplicates_by_event_id(aws: None) -> None:
    # GIVEN a FIFO topic with a FIFO queue
    wiring = wire("orders", fifo=True)
    publisher = Publisher(wiring.topic_arn, sns_client=wiring.sns)
    envelope = new_event("order.placed", order_placed("o-9"), source="orders")

    # WHEN the same event is published twice (a replay after a lost confirm)
    first = publisher.publish(envelope, group_id="o-9")
    second = publisher.publish(envelope, group_id="o-9")

    # THEN both are confirmed, the queue holds it once, grouped and deduplicated by event id
    assert first
    assert second
    [message] = wiring.received()
    assert message["Attributes"]["MessageGroupId"] == "o-9"
    assert message["Attributes"]["MessageDeduplicationId"] == envelope.id


def test_group_id_is_required_on_fifo_topics_and_refused_on_standard_ones(aws: None) -> None:
    # GIVEN a FIFO and a standard topic
    fifo = Publisher(wire("orders", fifo=True).topic_arn)
    standard = Publisher(wire("users", fifo=False).topic_arn)
    placed = new_event("order.placed", order_placed(), source="orders")
    created = new_event(
        "user.created",
        UserCreated(user_id="u-1", email="a@example.com", name="Ada"),
        source="users",
    )

    # WHEN / THEN a missing or misplaced group id is refused before any call
    with pytest.raises(ValueError, match="needs a group_id"):
        fifo.publish(placed)
    with pytest.raises(ValueError, match="takes no group_id"):
        standard.publish(created, group_id="u-1")


def test_an_event_over_256_kib_is_refused_naming_its_size_and_the_limit(aws: None) -> None:
    # GIVEN an order with so many lines that its event exceeds what SNS takes
    wiring = wire("orders", fifo=True)
    envelope = new_event("order.placed", order_placed(lines=3000), source="orders")

    # WHEN it is published
    with pytest.raises(EventTooLargeError) as raised:
        Publisher(wiring.topic_arn, sns_client=wiring.sns).publish(envelope, group_id="o-1")

    # THEN the error names both sizes and nothing was sent
    assert raised.value.size > SNS_MAX_MESSAGE_BYTES
    assert f"{raised.value.size} bytes" in str(raised.value)
    assert f"{SNS_MAX_MESSAGE_BYTES}-byte limit" in str(raised.value)
    assert wiring.received() == []


def test_publish_refuses_an_envelope_whose_data_breaks_its_model(aws: None) -> None:
    # GIVEN an envelope built by hand with data of the wrong shape
    wiring = wire("payments", fifo=False)
    envelope = EventEnvelope(
        id=str(uuid.uuid4()),
        type="payment.failed",
        version=1,
        source="payments",
        time=dt.datetime.now(dt.UTC),
        correlation_id="corr-2",
        data={"order_id": "o-1"},
    )

    # WHEN it is published
    with pytest.raises(InvalidEventError) as raised:
        Publisher(wiring.topic_arn, sns_client=wiring.sns).publish(envelope)

    # THEN the missing field is named and nothing was sent
    assert raised.value.field == "data.reason"
    assert wiring.received() == []


@dataclass
class RecordingPublisher:
    """Keeps what it was asked to publish."""

    published: list[EventEnvelope]

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        self.published.append(envelope)
        return f"message-{len(self.published)}"


def test_a_redelivered_cause_republishes_its_stored_announcement_and_nothing_else_does() -> None:
    # GIVEN an announcement stored with the state change that order.placed caused
    cause = new_event("order.placed", order_placed(), source="orders")
    stored = new_event(
        "payment.failed",
        PaymentFailed(order_id="o-1", reason="declined"),
        source="payments",
        causation_id=cause.id,
    )
    other = new_event("order.placed", order_placed(), source="orders")
    publisher = RecordingPublisher([])
    # WHEN the same cause is redelivered, then another event finds the same state
    again = Outbox(publisher).republish_if_caused_by(stored, cause)
    unrelated = Outbox(publisher).republish_if_caused_by(stored, other)
    nothing_stored = Outbox(publisher).republish_if_caused_by(None, cause)
    # THEN only the redelivery publishes the stored announcement again, under its own id
    assert again == stored
    assert unrelated is None
    assert nothing_stored is None
    assert publisher.published == [stored]


@dataclass
class FailingAfter:
    """Confirms ``confirmed`` publishes, then fails every one."""

    confirmed: int
    published: list[EventEnvelope]

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        if len(self.published) >= self.confirmed:
            raise ConnectionError("sns unreachable")
        self.published.append(envelope)
        return f"message-{len(self.published)}"


def test_the_outbox_publishes_committed_events_in_order_then_marks_them_published() -> None:
    # GIVEN two events committed with a state change
    first = new_event("order.placed", order_placed(), source="orders")
    second = new_event("order.placed", order_placed(), source="orders")
    publisher, marked = RecordingPublisher([]), []
    # WHEN the outbox publishes them
    Outbox(publisher).publish([first, second], then=lambda: marked.append("done"))
    # THEN both went out in order, and only then were they marked published
    assert publisher.published == [first, second]
    assert marked == ["done"]


def test_an_outbox_publish_that_fails_names_what_is_left_and_marks_nothing() -> None:
    # GIVEN a topic that confirms one event and then fails
    first = new_event("order.placed", order_placed(), source="orders")
    second = new_event("order.placed", order_placed(), source="orders")
    publisher, marked = FailingAfter(1, []), []
    # WHEN the outbox publishes two committed events
    with pytest.raises(UnpublishedEventsError) as raised:
        Outbox(publisher).publish([first, second], then=lambda: marked.append("done"))
    # THEN the unconfirmed one is named with its cause, and the outbox is not cleared
    assert raised.value.events == (second,)
    assert isinstance(raised.value.__cause__, ConnectionError)
    assert second.id in str(raised.value)
    assert marked == []


def test_an_empty_outbox_publishes_nothing_and_marks_nothing() -> None:
    # GIVEN nothing committed
    publisher, marked = RecordingPublisher([]), []
    # WHEN the outbox is flushed
    Outbox(publisher).publish([], then=lambda: marked.append("done"))
    # THEN no request and no write was made
    assert publisher.published == []
    assert marked == []


def test_a_batch_is_sent_in_requests_of_at_most_ten_events_and_256_kib(aws: None) -> None:
    # GIVEN a FIFO topic, twelve small events and three of about 100 KiB
    wiring = wire("orders", fifo=True)
    publisher = Publisher(wiring.topic_arn, sns_client=wiring.sns)
    small = [new_event("order.placed", order_placed(f"o-{n}"), source="orders") for n in range(12)]
    large = [
        new_event("order.placed", order_placed(f"o-l{n}", lines=900), source="orders")
        for n in range(3)
    ]
    events = [*small, *large]
    prepared = [publisher.prepare(e, group_id=e.data["order_id"], traceparent=None) for e in events]
    assert all(80_000 < p.size < 130_000 for p in prepared[12:])
    sent: list[int] = []
    wiring.sns.meta.events.register(
        "provide-client-params.sns.PublishBatch",
        lambda params, **_: sent.append(len(params["PublishBatchRequestEntries"])),
    )

    # WHEN they are published together
    outcome = publisher.publish_batch(prepared)

    # THEN every one was confirmed, in requests of ten at most and under 256 KiB each
    assert outcome.failure is None
    assert len(outcome.message_ids) == len(events)
    assert sent == [10, 4, 1]  # 2 small and 2 large together are under 256 KiB; 3 large not
