"""What no retry can fix goes to the DLQ at once, with its reason; a non-SQS invoke is refused."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from lambdamesh_toolkit.contracts.events import EventEnvelope, UserCreated
from lambdamesh_toolkit.events.consuming import OUT_OF_TIME_REASON, MalformedBatchError
from lambdamesh_toolkit.events.dead_lettering import FAILURE_REASON_ATTRIBUTE, PermanentFailure
from lambdamesh_toolkit.events.publishing import Publisher
from tests.support.lambda_context import ManualContext
from tests.unit.toolkit.consumer_world import (
    SERVICE,
    Queue,
    World,
    failed_ids,
    message_id_of,
    order_placed,
    user_created,
)


def with_dead_letter_queue(world: World, queue: Queue) -> str:
    """Give ``queue`` a DLQ (maxReceiveCount 5, as the topology does); its URL."""
    fifo = queue.url.endswith(".fifo")
    name = queue.url.rsplit("/", 1)[-1].removesuffix(".fifo") + "-dlq" + (".fifo" if fifo else "")
    dlq_url = world.sqs.create_queue(
        QueueName=name, Attributes={"FifoQueue": "true"} if fifo else {}
    )["QueueUrl"]
    dlq_arn = world.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    world.sqs.set_queue_attributes(
        QueueUrl=queue.url,
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})
        },
    )
    return dlq_url


def dead_letters(world: World, dlq_url: str) -> list[Any]:
    return world.sqs.receive_message(
        QueueUrl=dlq_url,
        MaxNumberOfMessages=10,
        MessageAttributeNames=["All"],
        MessageSystemAttributeNames=["All"],
    ).get("Messages", [])


def test_a_record_that_is_not_an_event_is_dead_lettered_at_once_with_its_reason(
    world: World,
) -> None:
    # GIVEN a queue with a DLQ, holding one good event and one body that is no envelope
    dlq_url = with_dead_letter_queue(world, world.standard)
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    world.send_raw(world.standard, "this is not json", type="user.created")
    handled: list[str] = []
    consumer = world.consumer({("user.created", 1): lambda e, d: handled.append(d.user_id)})
    event = world.receive(world.standard)
    bad = message_id_of(event, "this is not json")
    # WHEN the batch is processed
    response = consumer.process(event, None)
    # THEN nothing is reported failed (no retry), the good event was handled ...
    assert failed_ids(response) == []
    assert handled == ["u-1"]
    # AND the bad one is in the DLQ now, same body and attributes, the reason beside them
    [letter] = dead_letters(world, dlq_url)
    assert letter["Body"] == "this is not json"
    attributes = letter["MessageAttributes"]
    assert attributes["type"]["StringValue"] == "user.created"
    assert "not valid JSON" in attributes[FAILURE_REASON_ATTRIBUTE]["StringValue"]
    # AND the failure is recorded under both its ids, so `dlq show` finds it
    assert world.failure(bad).reason == world.failure(letter["MessageId"]).reason
    assert "not valid JSON" in world.failure(letter["MessageId"]).reason


@pytest.mark.parametrize(
    "body",
    [
        '{"id": "x"}',
        json.dumps({**user_created("u-9").model_dump(mode="json"), "version": 99}),
        json.dumps({**user_created("u-9").model_dump(mode="json"), "type": "user.deleted"}),
    ],
    ids=["not-an-envelope", "unknown-version", "unknown-type"],
)
def test_an_event_no_handler_can_take_goes_to_the_dlq_at_once(world: World, body: str) -> None:
    # GIVEN a queue with a DLQ and an event its consumer cannot read or has no handler for
    dlq_url = with_dead_letter_queue(world, world.standard)
    world.send_raw(world.standard, body)
    consumer = world.consumer({("user.created", 1): lambda e, d: None})
    # WHEN it is processed
    response = consumer.process(world.receive(world.standard), None)
    # THEN it is in the DLQ, not retried
    assert failed_ids(response) == []
    [letter] = dead_letters(world, dlq_url)
    assert letter["Body"] == body


def test_a_handlers_permanent_failure_is_dead_lettered_and_a_transient_one_retried(
    world: World,
) -> None:
    # GIVEN two users whose mail fails: one for good (refused address), one for now
    dlq_url = with_dead_letter_queue(world, world.standard)
    publisher = Publisher(world.standard.topic_arn, sns_client=world.sns)
    publisher.publish(user_created("u-refused"))
    publisher.publish(user_created("u-later"))

    def on_user(envelope: EventEnvelope, data: UserCreated) -> None:
        if data.user_id == "u-refused":
            raise PermanentFailure("the mail service refuses this address")
        raise TimeoutError("the mail service did not answer")

    consumer = world.consumer({("user.created", 1): on_user})
    event = world.receive(world.standard)
    # WHEN the batch is processed
    response = consumer.process(event, None)
    # THEN the transient one is reported for a retry with backoff ...
    assert failed_ids(response) == [message_id_of(event, "u-later")]
    # AND the permanent one is in the DLQ with its reason
    [letter] = dead_letters(world, dlq_url)
    assert "u-refused" in letter["Body"]
    reason = letter["MessageAttributes"][FAILURE_REASON_ATTRIBUTE]["StringValue"]
    assert reason == "the mail service refuses this address"


def test_without_a_dlq_a_hopeless_record_is_retried_not_dropped(world: World) -> None:
    # GIVEN a queue without a DLQ, holding a body that is no envelope
    world.send_raw(world.standard, "garbage")
    consumer = world.consumer({("user.created", 1): lambda e, d: None})
    event = world.receive(world.standard)
    # WHEN it is processed
    response = consumer.process(event, None)
    # THEN it is reported failed: it comes back, it is not lost
    assert failed_ids(response) == [message_id_of(event, "garbage")]


def test_a_fifo_groups_poison_event_is_dead_lettered_and_its_group_goes_on(world: World) -> None:
    # GIVEN a FIFO queue with a DLQ: order o-1's first event is poison, then a good one
    dlq_url = with_dead_letter_queue(world, world.fifo)
    poison = {**order_placed("o-1").model_dump(mode="json"), "version": 42}
    world.sqs.send_message(
        QueueUrl=world.fifo.url,
        MessageBody=json.dumps(poison),
        MessageGroupId="o-1",
        MessageDeduplicationId="poison",
    )
    good = order_placed("o-1")
    Publisher(world.fifo.topic_arn, sns_client=world.sns).publish(good, group_id="o-1")
    handled: list[str] = []
    consumer = world.consumer({("order.placed", 1): lambda e, d: handled.append(e.id)}, fifo=True)
    # WHEN the batch is processed, settled as the event source mapping settles it (what is
    # not reported failed is deleted), and what comes back is processed
    first_batch = world.receive(world.fifo)
    first = consumer.process(first_batch, None)
    settle(world, world.fifo, first_batch, first)
    again = consumer.process(world.receive(world.fifo), None)
    # THEN the poison one went to the DLQ, the good one, skipped behind it, followed
    assert failed_ids(first) == [message_id_of(first_batch, good.id)]
    assert failed_ids(again) == []
    assert handled == [good.id]
    [letter] = dead_letters(world, dlq_url)
    assert json.loads(letter["Body"])["version"] == 42
    assert letter["Attributes"]["MessageGroupId"] == "o-1"


def settle(world: World, queue: Queue, batch: dict[str, Any], response: dict[str, Any]) -> None:
    """Delete what the response does not report failed, as Lambda's SQS poller does."""
    failed = set(failed_ids(response))
    for record in batch["Records"]:
        if record["messageId"] not in failed:
            world.sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=record["receiptHandle"])


@pytest.mark.parametrize(
    ("event", "missing"),
    [
        ({}, "Records"),
        ({"Records": "nope"}, "Records"),
        ({"Records": ["nope"]}, "Records[0] is not an object"),
        ({"Records": [{"body": "{}"}]}, "Records[0] has no messageId"),
        (
            {"Records": [{"messageId": "m-1", "receiptHandle": "r", "body": "{}"}]},
            "Records[0] has no eventSourceARN",
        ),
        ([1, 2, 3], "Records"),
    ],
)
def test_an_invoke_that_is_not_an_sqs_batch_is_refused_naming_what_is_missing(
    world: World, event: Any, missing: str
) -> None:
    # GIVEN a consumer
    consumer = world.consumer({("user.created", 1): lambda e, d: None})
    # WHEN it is invoked directly with something else
    # THEN it refuses with an error that says what is missing
    with pytest.raises(MalformedBatchError, match=re.escape(missing)):
        consumer.process(event, None)


def test_the_consumer_names_its_service_in_what_it_records(world: World) -> None:
    # GIVEN / WHEN a hopeless record is dead-lettered
    with_dead_letter_queue(world, world.standard)
    world.send_raw(world.standard, "[]")
    event = world.receive(world.standard)
    world.consumer({("user.created", 1): lambda e, d: None}).process(event, None)
    # THEN its failure names the consuming service and the source queue
    failure = world.failure(message_id_of(event, "[]"))
    assert (failure.service, failure.queue) == (SERVICE, world.standard.arn.rsplit(":", 1)[-1])


@pytest.mark.parametrize(("receive", "visibility"), [(4, 8), (5, 0)])
def test_a_transient_failure_on_its_last_receive_is_not_hidden_for_another_backoff(
    world: World, receive: int, visibility: int
) -> None:
    # GIVEN a queue whose DLQ takes a message after 5 receives, and a user whose mail keeps
    # failing for now, at its fourth or its fifth receive
    with_dead_letter_queue(world, world.standard)
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-later"))
    event = world.receive(world.standard)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = str(receive)

    def on_user(envelope: EventEnvelope, data: UserCreated) -> None:
        raise TimeoutError("the mail service did not answer")

    consumer = world.consumer({("user.created", 1): on_user}, retry_backoff_base_s=1)
    # WHEN it fails
    response = consumer.process(event, None)
    # THEN it is retried: the fourth receive after its 8 s backoff, while the fifth, after
    # which SQS moves it to the DLQ at the next receive, is visible again at once instead of
    # after 16 s
    assert failed_ids(response) == [event["Records"][0]["messageId"]]
    assert world.spy.visibility == {event["Records"][0]["receiptHandle"]: visibility}


def test_a_record_put_off_on_its_last_receive_is_recorded_with_the_reason(world: World) -> None:
    # GIVEN a user created, received for the fifth time (the queue's maxReceiveCount), and an
    # invocation with too little time left to start it
    with_dead_letter_queue(world, world.standard)
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    consumer = world.consumer({("user.created", 1): lambda e, d: None})
    event = world.receive(world.standard)
    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "5"

    # WHEN the batch is processed
    response = consumer.process(event, ManualContext(remaining_ms=1000))

    # THEN it is reported, and its reason is recorded for the DLQ it is about to reach
    message_id = event["Records"][0]["messageId"]
    assert failed_ids(response) == [message_id]
    assert world.failure(message_id).reason == OUT_OF_TIME_REASON
