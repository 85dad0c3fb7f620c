"""The event consumer: partial batch failures, idempotency, poison records, FIFO, correlation."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Collection
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.stub import Stubber

from lambdamesh_toolkit.aws.dynamodb import UnprocessedItemsError
from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderPlaced,
    UnknownEventError,
    UserCreated,
)
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.bookkeeping import (
    EVENT_TABLE_KEY,
    EVENT_TABLE_TTL_ATTRIBUTE,
    DynamoDbIdempotencyStore,
)
from lambdamesh_toolkit.events.consuming import FIFO_SKIPPED_REASON
from lambdamesh_toolkit.events.publishing import Publisher
from lambdamesh_toolkit.events.retry_backoff import backoff_delay_s
from lambdamesh_toolkit.logging import get_logger
from tests.support.event_bookkeeping import InMemoryFailureStore, InMemoryIdempotencyStore
from tests.support.lambda_context import ManualContext
from tests.unit.toolkit.consumer_world import (
    IDEMPOTENCY_TABLE,
    SERVICE,
    World,
    failed_ids,
    message_id_of,
    order_placed,
    user_created,
)

if TYPE_CHECKING:
    pass


def test_one_failing_record_of_three_is_the_only_one_reported(world: World) -> None:
    # GIVEN three users created, the handler failing on the second
    publisher = Publisher(world.standard.topic_arn, sns_client=world.sns)
    for user_id in ("u-1", "u-2", "u-3"):
        publisher.publish(user_created(user_id))
    handled: list[str] = []

    def on_user(envelope: EventEnvelope, data: UserCreated) -> None:
        if data.user_id == "u-2":
            raise RuntimeError("mail server said no")
        handled.append(data.user_id)

    consumer = world.consumer({("user.created", 1): on_user})
    event = world.receive(world.standard)

    # WHEN the batch is processed
    response = consumer.process(event, None)

    # THEN only the failed record is reported, with its reason recorded
    bad = message_id_of(event, "u-2")
    assert failed_ids(response) == [bad]
    assert sorted(handled) == ["u-1", "u-3"]
    failure = world.failure(bad)
    assert failure.reason == "RuntimeError: mail server said no"
    assert (failure.service, failure.event_type, failure.attempts) == (SERVICE, "user.created", 1)
    assert failure.queue == "lambdamesh-users-notifications"


def test_a_redelivered_event_is_acknowledged_without_running_the_handler_again(
    world: World,
) -> None:
    # GIVEN one event published twice (a publisher replay: two messages, one event id)
    publisher = Publisher(world.standard.topic_arn, sns_client=world.sns)
    envelope = user_created("u-1")
    publisher.publish(envelope)
    publisher.publish(envelope)
    calls: list[str] = []
    consumer = world.consumer({("user.created", 1): lambda env, data: calls.append(env.id)})

    # WHEN both deliveries are processed, in one batch and then again in another
    first = consumer.process(world.receive(world.standard), None)
    publisher.publish(envelope)
    second = consumer.process(world.receive(world.standard), None)

    # THEN the handler ran once, every delivery was acknowledged, the mark expires in 7 days
    assert calls == [envelope.id]
    assert failed_ids(first) == failed_ids(second) == []
    item = world.dynamodb.get_item(
        TableName=IDEMPOTENCY_TABLE, Key={EVENT_TABLE_KEY: {"S": f"{SERVICE}#{envelope.id}"}}
    )["Item"]
    expires_in = int(item[EVENT_TABLE_TTL_ATTRIBUTE]["N"]) - time.time()
    assert 6.9 * 86400 < expires_in <= 7 * 86400


def test_a_consumer_without_marks_runs_each_delivery_and_asks_dynamodb_nothing(
    world: World,
) -> None:
    # GIVEN a consumer that keeps no marks, and one event published twice in one batch
    publisher = Publisher(world.standard.topic_arn, sns_client=world.sns)
    envelope = user_created("u-1")
    publisher.publish(envelope)
    publisher.publish(envelope)
    calls: list[str] = []
    requests: list[str] = []
    world.dynamodb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: requests.append(model.name)
    )
    consumer = world.consumer(
        {("user.created", 1): lambda env, data: calls.append(env.id)}, idempotency_table=None
    )

    # WHEN the batch is processed, then the event comes again in another batch
    first = consumer.process(world.receive(world.standard), None)
    publisher.publish(envelope)
    second = consumer.process(world.receive(world.standard), None)

    # THEN the handler ran once per batch (a repeat within a batch is still run once), every
    # delivery was acknowledged, and no mark was read or written
    assert calls == [envelope.id, envelope.id]
    assert failed_ids(first) == failed_ids(second) == []
    assert requests == []


def test_a_failed_handler_leaves_no_mark_so_the_retry_runs_it(world: World) -> None:
    # GIVEN a handler that fails once, then succeeds
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    outcomes = [RuntimeError("transient"), None]
    calls: list[str] = []

    def flaky(envelope: EventEnvelope, data: UserCreated) -> None:
        calls.append(data.user_id)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    consumer = world.consumer({("user.created", 1): flaky}, retry_backoff_base_s=0)

    # WHEN the message is processed, fails, comes back and is processed again
    first = consumer.process(world.receive(world.standard), None)
    second = consumer.process(world.receive(world.standard), None)

    # THEN the second delivery ran the handler and succeeded
    assert len(failed_ids(first)) == 1
    assert failed_ids(second) == []
    assert calls == ["u-1", "u-1"]


@pytest.mark.parametrize(
    ("body", "attributes", "reason", "event_type"),
    [
        ("{not json", {"type": "user.created"}, "envelope is not valid JSON", "user.created"),
        (None, {}, "unknown event 'user.deleted' version 1", "user.deleted"),
        ('{"type": "user.created"}', {}, "envelope: id: Field required", None),
    ],
    ids=["malformed-json", "unknown-type", "not-an-envelope"],
)
def test_a_poison_record_fails_with_its_reason_and_comes_back_after_the_backoff(
    world: World, body: str | None, attributes: dict[str, str], reason: str, event_type: str | None
) -> None:
    # GIVEN a poison message next to a good one; a zero backoff base so "comes back" is immediate
    if body is None:
        use_correlation_id("corr-poison")  # the envelope's id, read from the body
        unknown = user_created("u-9").model_copy(update={"type": "user.deleted"})
        body = unknown.model_dump_json()
    world.send_raw(world.standard, body, correlation_id="corr-poison", **attributes)
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    calls: list[str] = []
    consumer = world.consumer(
        {("user.created", 1): lambda env, data: calls.append(data.user_id)},
        retry_backoff_base_s=0,
    )
    event = world.receive(world.standard)
    poison = next(r for r in event["Records"] if "u-1" not in r["body"])

    # WHEN the batch is processed
    response = consumer.process(event, None)

    # THEN only the poison is reported, its reason recorded, and it is visible again at once
    assert failed_ids(response) == [poison["messageId"]]
    assert calls == ["u-1"]
    failure = world.failure(poison["messageId"])
    assert failure.reason.startswith(reason)
    assert failure.event_type == event_type
    assert failure.correlation_id == "corr-poison"
    assert world.spy.visibility == {poison["receiptHandle"]: 0}
    again = world.receive(world.standard)["Records"]
    assert [r["messageId"] for r in again] == [poison["messageId"]]
    assert again[0]["attributes"]["ApproximateReceiveCount"] == "2"


def test_the_retry_delay_doubles_with_each_receive(world: World) -> None:
    # GIVEN a record that fails, received for the third time
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    event = world.receive(world.standard)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "3"

    def failing(envelope: EventEnvelope, data: UserCreated) -> None:
        raise RuntimeError("down")

    consumer = world.consumer({("user.created", 1): failing}, retry_backoff_base_s=1)

    # WHEN it is processed
    consumer.process(event, None)

    # THEN its visibility is set to 4 s (1, 2, 4, 8 ...), and the row says attempt 3
    assert world.spy.visibility == {event["Records"][0]["receiptHandle"]: 4}
    assert world.failure(event["Records"][0]["messageId"]).attempts == 3
    assert [backoff_delay_s(n, 1) for n in (1, 2, 3, 4, 5)] == [1, 2, 4, 8, 16]
    assert backoff_delay_s(100, 1) == 43_200
    assert backoff_delay_s(1, 0.5) == 1


def test_the_backoff_base_comes_from_the_environment(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN RETRY_BACKOFF_BASE_S set for the function
    monkeypatch.setenv("RETRY_BACKOFF_BASE_S", "3")

    # WHEN a consumer is created without an explicit base
    consumer = world.consumer({}, retry_backoff_base_s=None)

    # THEN it uses it
    assert consumer.retry_backoff_base_s == 3


def test_a_batch_that_fails_entirely_is_answered_not_raised(world: World) -> None:
    # GIVEN two poison messages
    world.send_raw(world.standard, "nope")
    world.send_raw(world.standard, "nope either")
    consumer = world.consumer({("user.created", 1): lambda env, data: None})
    event = world.receive(world.standard)

    # WHEN the batch is processed
    response = consumer.process(event, None)

    # THEN both are listed (no exception: the backoff and the reasons stand)
    assert sorted(failed_ids(response)) == sorted(r["messageId"] for r in event["Records"])


def test_a_known_event_without_a_handler_here_fails_naming_the_service(world: World) -> None:
    # GIVEN a consumer of user.created only, and an order.placed delivered to it
    world.send_raw(world.standard, order_placed("o-1").model_dump_json())
    consumer = world.consumer({("user.created", 1): lambda env, data: None})
    event = world.receive(world.standard)

    # WHEN it is processed
    response = consumer.process(event, None)

    # THEN it fails with a reason naming the service and the event
    [message_id] = failed_ids(response)
    assert world.failure(message_id).reason == f"{SERVICE} has no handler for order.placed v1"


def test_handlers_for_unregistered_events_are_refused_at_construction(world: World) -> None:
    # GIVEN / WHEN a consumer is built with a handler for an unknown event
    # THEN it fails at once, not on the first message
    with pytest.raises(UnknownEventError):
        world.consumer({("user.deleted", 1): lambda env, data: None})


def two_groups_on_the_fifo_queue(
    world: World,
) -> tuple[EventEnvelope, EventEnvelope, EventEnvelope]:
    """Two events of order o-1, then one of order o-2, published to the FIFO queue's topic."""
    publisher = Publisher(world.fifo.topic_arn, sns_client=world.sns)
    first, second, other = order_placed("o-1"), order_placed("o-1"), order_placed("o-2")
    publisher.publish(first, group_id="o-1")
    publisher.publish(second, group_id="o-1")
    publisher.publish(other, group_id="o-2")
    return first, second, other


def test_fifo_failure_skips_the_rest_of_its_group_but_not_other_groups(world: World) -> None:
    # GIVEN two events of order o-1 then one of order o-2 on the FIFO queue, o-1's first failing
    first, second, other = two_groups_on_the_fifo_queue(world)
    handled: list[str] = []

    def on_placed(envelope: EventEnvelope, data: OrderPlaced) -> None:
        if envelope.id == first.id:
            raise RuntimeError("card service down")
        handled.append(envelope.id)

    consumer = world.consumer({("order.placed", 1): on_placed}, fifo=True)
    event = world.receive(world.fifo)
    by_event = {json.loads(r["body"])["id"]: r for r in event["Records"]}

    # WHEN the batch is processed
    response = consumer.process(event, None)

    # THEN o-1's records are both reported (the second not even tried), o-2 was handled
    assert failed_ids(response) == [
        by_event[first.id]["messageId"],
        by_event[second.id]["messageId"],
    ]
    assert handled == [other.id]
    skipped = world.failure(by_event[second.id]["messageId"])
    assert skipped.reason == FIFO_SKIPPED_REASON
    # AND the skipped record is released at once, to follow the failed one when it returns
    assert world.spy.visibility == {
        by_event[first.id]["receiptHandle"]: 1,
        by_event[second.id]["receiptHandle"]: 0,
    }


def test_the_correlation_id_of_each_event_is_on_every_line_logged_for_it(world: World) -> None:
    # GIVEN two events published under different correlation ids, one failing
    publisher = Publisher(world.standard.topic_arn, sns_client=world.sns)
    use_correlation_id("corr-ok")
    good = user_created("u-1")
    publisher.publish(good)
    use_correlation_id("corr-bad")
    bad = user_created("u-2")
    publisher.publish(bad)
    use_correlation_id(None)  # the consumer's own invocation starts with another id
    stream = io.StringIO()
    logger = get_logger(f"svc-{uuid.uuid4().hex[:8]}", stream=stream)

    def on_user(envelope: EventEnvelope, data: UserCreated) -> None:
        logger.info("mailing", extra={"user_id": data.user_id})
        if data.user_id == "u-2":
            raise RuntimeError("mail server said no")

    consumer = world.consumer({("user.created", 1): on_user}, logger=logger)
    context = type("Context", (), {"aws_request_id": "req-1"})()

    # WHEN the batch is processed
    consumer.process(world.receive(world.standard), context)

    # THEN every line about an event carries that event's correlation id and ids
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    by_user = {line["user_id"]: line for line in lines if line["message"] == "mailing"}
    assert by_user["u-1"]["correlation_id"] == "corr-ok"
    assert by_user["u-2"]["correlation_id"] == "corr-bad"
    assert by_user["u-1"]["event_id"] == good.id
    assert by_user["u-1"]["request_id"] == "req-1"
    failed = [line for line in lines if line["message"] == "event record failed"]
    assert [(line["correlation_id"], line["event_id"]) for line in failed] == [("corr-bad", bad.id)]
    assert failed[0]["reason"] == "RuntimeError: mail server said no"


def test_stores_can_be_replaced_for_tests(world: World) -> None:
    # GIVEN in-memory stores instead of the tables
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    world.send_raw(world.standard, "nope")
    marks, failures = InMemoryIdempotencyStore(), InMemoryFailureStore()
    consumer = world.consumer(
        {("user.created", 1): lambda env, data: None},
        idempotency_store=marks,
        failure_store=failures,
    )

    # WHEN a batch with a good and a bad record is processed
    response = consumer.process(world.receive(world.standard), None)

    # THEN the marks and failures went to them
    assert len(marks.marks) == 1
    assert list(failures.failures) == failed_ids(response)


def test_a_failure_store_outage_still_reports_the_record(world: World) -> None:
    # GIVEN a failures table that does not exist
    world.send_raw(world.standard, "nope")
    consumer = world.consumer({}, failures_table="missing-table")
    event = world.receive(world.standard)

    # WHEN a failing record is processed
    response = consumer.process(event, None)

    # THEN it is reported failed all the same, with its backoff set
    assert failed_ids(response) == [event["Records"][0]["messageId"]]
    assert world.spy.visibility == {event["Records"][0]["receiptHandle"]: 1}


def test_an_empty_event_has_no_failures(world: World) -> None:
    # GIVEN / WHEN an event without records is processed
    # THEN nothing failed
    consumer = world.consumer({})
    assert consumer.process({"Records": []}, None) == {"batchItemFailures": []}


def test_a_fifo_batch_that_fails_entirely_is_answered_not_raised(world: World) -> None:
    # GIVEN a FIFO batch whose only record fails
    envelope = order_placed("o-1")
    Publisher(world.fifo.topic_arn, sns_client=world.sns).publish(envelope, group_id="o-1")

    def failing(envelope: EventEnvelope, data: OrderPlaced) -> None:
        raise RuntimeError("card service down")

    consumer = world.consumer({("order.placed", 1): failing}, fifo=True)
    event = world.receive(world.fifo)

    # WHEN it is processed
    response = consumer.process(event, None)

    # THEN the record is listed (Powertools would raise by default: switched off)
    assert failed_ids(response) == [event["Records"][0]["messageId"]]


class CountingMarks(InMemoryIdempotencyStore):
    """In-memory marks that count the store's requests, and can be made to fail."""

    def __init__(self, *, read_error: Exception | None = None) -> None:
        super().__init__()
        self.reads: list[set[str]] = []
        self.writes: list[list[str]] = []
        self.read_error = read_error
        self.write_error: Exception | None = None

    def processed_among(self, keys: Collection[str]) -> set[str]:
        self.reads.append(set(keys))
        if self.read_error is not None:
            raise self.read_error
        return super().processed_among(keys)

    def mark_processed(self, keys: Collection[str], *, expires_at: int) -> None:
        self.writes.append(list(keys))
        if self.write_error is not None:
            raise self.write_error
        super().mark_processed(keys, expires_at=expires_at)


def test_a_batch_reads_and_writes_its_marks_in_one_request_each(world: World) -> None:
    # GIVEN three events in one batch
    publisher = Publisher(world.standard.topic_arn, sns_client=world.sns)
    envelopes = [user_created(f"u-{n}") for n in range(3)]
    for envelope in envelopes:
        publisher.publish(envelope)
    marks = CountingMarks()
    consumer = world.consumer(
        {("user.created", 1): lambda env, data: None}, idempotency_store=marks
    )

    # WHEN the batch is processed
    response = consumer.process(world.receive(world.standard), None)

    # THEN the marks were read once for all three and written once for all three
    assert failed_ids(response) == []
    keys = {f"{SERVICE}#{envelope.id}" for envelope in envelopes}
    assert marks.reads == [keys]
    assert [set(write) for write in marks.writes] == [keys]


def test_marks_that_cannot_be_read_fail_each_record_with_the_reason(world: World) -> None:
    # GIVEN a marks table that cannot be read
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    marks = CountingMarks(read_error=RuntimeError("marks table unavailable"))
    calls: list[str] = []
    consumer = world.consumer(
        {("user.created", 1): lambda env, data: calls.append(data.user_id)},
        idempotency_store=marks,
    )
    event = world.receive(world.standard)

    # WHEN the batch is processed
    response = consumer.process(event, None)

    # THEN the handler did not run; the record failed with the reason, to be retried
    assert calls == []
    message_id = event["Records"][0]["messageId"]
    assert failed_ids(response) == [message_id]
    assert world.failure(message_id).reason == "RuntimeError: marks table unavailable"


def test_marks_that_cannot_be_written_leave_the_handled_records_acknowledged(
    world: World,
) -> None:
    # GIVEN a marks table that refuses writes
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    marks = CountingMarks()
    marks.write_error = RuntimeError("throttled")
    calls: list[str] = []
    consumer = world.consumer(
        {("user.created", 1): lambda env, data: calls.append(data.user_id)},
        idempotency_store=marks,
    )

    # WHEN the batch is processed
    response = consumer.process(world.receive(world.standard), None)

    # THEN the handler ran and its record is acknowledged: it is not run again for a lost mark
    assert calls == ["u-1"]
    assert failed_ids(response) == []


def test_the_dynamodb_marks_ask_again_for_keys_left_unprocessed() -> None:
    # GIVEN DynamoDB answering the first read and write with unprocessed keys, then all
    client = boto3.client("dynamodb", region_name="us-east-1")
    store = DynamoDbIdempotencyStore(IDEMPOTENCY_TABLE, client=client)
    store.UNPROCESSED_BACKOFF_S = 0
    key = {EVENT_TABLE_KEY: {"S": "s#e-1"}}
    with Stubber(client) as stub:
        unread = {"Keys": [key], "ConsistentRead": True}
        stub.add_response("batch_get_item", {"UnprocessedKeys": {IDEMPOTENCY_TABLE: unread}})
        stub.add_response("batch_get_item", {"Responses": {IDEMPOTENCY_TABLE: [key]}})
        unwritten = [{"PutRequest": {"Item": key}}]
        stub.add_response("batch_write_item", {"UnprocessedItems": {IDEMPOTENCY_TABLE: unwritten}})
        stub.add_response("batch_write_item", {"UnprocessedItems": {}})
        # WHEN marks are read and written
        found = store.processed_among(["s#e-1", "s#e-1"])
        store.mark_processed(["s#e-1"], expires_at=1)
        # THEN both asked again until DynamoDB took everything
        stub.assert_no_pending_responses()
    assert found == {"s#e-1"}


def test_the_dynamodb_marks_give_up_when_keys_stay_unprocessed() -> None:
    # GIVEN DynamoDB leaving a key unread on every attempt
    client = boto3.client("dynamodb", region_name="us-east-1")
    store = DynamoDbIdempotencyStore(IDEMPOTENCY_TABLE, client=client)
    store.UNPROCESSED_BACKOFF_S = 0
    unread = {"Keys": [{EVENT_TABLE_KEY: {"S": "s#e-1"}}]}
    with Stubber(client) as stub:
        for _ in range(store.UNPROCESSED_ATTEMPTS):
            stub.add_response("batch_get_item", {"UnprocessedKeys": {IDEMPOTENCY_TABLE: unread}})
        # WHEN the marks are read THEN the read fails, naming the table
        with pytest.raises(UnprocessedItemsError, match=IDEMPOTENCY_TABLE):
            store.processed_among(["s#e-1"])


def test_records_not_started_before_the_timeout_nears_come_back_at_once(world: World) -> None:
    # GIVEN four users created, and an invocation with 4 s left whose records take 1 s each
    publisher = Publisher(world.standard.topic_arn, sns_client=world.sns)
    for user_id in ("u-1", "u-2", "u-3", "u-4"):
        publisher.publish(user_created(user_id))
    context = ManualContext(remaining_ms=4000)
    handled: list[str] = []

    def on_user(envelope: EventEnvelope, data: UserCreated) -> None:
        handled.append(data.user_id)
        context.elapse(1.0)

    consumer = world.consumer({("user.created", 1): on_user})
    event = world.receive(world.standard)

    # WHEN the batch is processed
    response = consumer.process(event, context)

    # THEN the records started while more than the reserve was left were handled and
    # acknowledged; the others were not started, are reported, and come back at once
    assert len(handled) == 3
    late = [r for r in event["Records"] if json.loads(r["body"])["data"]["user_id"] not in handled]
    assert failed_ids(response) == [r["messageId"] for r in late]
    assert world.spy.visibility == {r["receiptHandle"]: 0 for r in late}
    # AND nothing is written for them: they did not fail, and the timeout is near
    assert world.failure(late[0]["messageId"]) is None


def test_a_fifo_batch_near_its_timeout_defers_the_rest_of_every_group_in_order(
    world: World,
) -> None:
    # GIVEN two events of order o-1 and one of o-2, and an invocation whose time runs short
    # after the first record
    first, _, _ = two_groups_on_the_fifo_queue(world)
    context = ManualContext(remaining_ms=2000)
    handled: list[str] = []

    def on_placed(envelope: EventEnvelope, data: OrderPlaced) -> None:
        handled.append(envelope.id)
        context.elapse(1.0)

    consumer = world.consumer({("order.placed", 1): on_placed}, fifo=True)
    event = world.receive(world.fifo)

    # WHEN the batch is processed with 2 s left, and its first record takes 1 s
    response = consumer.process(event, context)

    # THEN only the first record ran; every other one is reported and comes back at once
    assert handled == [first.id]
    rest = event["Records"][1:]
    assert failed_ids(response) == [r["messageId"] for r in rest]
    assert world.spy.visibility == {r["receiptHandle"]: 0 for r in rest}


def test_a_batch_without_a_lambda_context_has_no_time_limit(world: World) -> None:
    # GIVEN a batch processed without a context (a test, a direct call)
    publisher = Publisher(world.standard.topic_arn, sns_client=world.sns)
    for user_id in ("u-1", "u-2"):
        publisher.publish(user_created(user_id))
    handled: list[str] = []
    consumer = world.consumer({("user.created", 1): lambda e, d: handled.append(d.user_id)})

    # WHEN it is processed THEN every record runs
    response = consumer.process(world.receive(world.standard), None)
    assert failed_ids(response) == []
    assert sorted(handled) == ["u-1", "u-2"]
