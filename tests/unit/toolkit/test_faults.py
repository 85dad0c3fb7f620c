"""Faults a chaos run switches on with ``LAMBDAMESH_FAULTS``: 503s, killed and timed-out
batches, duplicate publishes; nothing at all when the variable is unset."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from chalice.app import Chalice
from chalice.test import Client

from lambdamesh_toolkit import faults
from lambdamesh_toolkit.config import ConfigurationError
from lambdamesh_toolkit.contracts.events import EventEnvelope, OrderPlaced, UserCreated
from lambdamesh_toolkit.correlation import CORRELATION_HEADER
from lambdamesh_toolkit.events.consuming import EventConsumer
from lambdamesh_toolkit.events.publishing import Publisher
from lambdamesh_toolkit.faults import (
    CRASH_EXIT_CODE,
    FAULT_LOG_MESSAGE,
    FAULTS_VARIABLE,
    FaultPlan,
    active_faults,
)
from lambdamesh_toolkit.http_api import HttpApi
from lambdamesh_toolkit.logging import get_logger
from tests.unit.toolkit.consumer_world import (
    FAILURES_TABLE,
    IDEMPOTENCY_TABLE,
    World,
    failed_ids,
    order_placed,
    user_created,
)

# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def set_faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    """Set ``LAMBDAMESH_FAULTS`` as a fresh execution environment would read it.

    The plan is read once per process (``functools.cache``): it is forgotten before, after
    each change and after the test, so no test's faults reach another.
    """
    monkeypatch.delenv(FAULTS_VARIABLE, raising=False)
    active_faults.cache_clear()

    def set_to(value: str) -> None:
        monkeypatch.setenv(FAULTS_VARIABLE, value)
        active_faults.cache_clear()

    yield set_to
    active_faults.cache_clear()


class FaultLog:
    """The lines the faults module logs, on the function's own logger."""

    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines() if line.strip()]

    def injected(self) -> list[dict[str, Any]]:
        """The ``fault injected`` lines."""
        return [line for line in self.lines() if line["message"] == FAULT_LOG_MESSAGE]

    def faults(self) -> list[str]:
        """The name of each fault injected, in order."""
        return [line["fault"] for line in self.injected()]


@pytest.fixture
def fault_log(monkeypatch: pytest.MonkeyPatch) -> FaultLog:
    """The function's logger (``POWERTOOLS_SERVICE_NAME``), writing to a buffer of this test.

    A service name of this test only: Powertools configures a service's logger once.
    """
    service = f"svc-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
    stream = io.StringIO()
    get_logger(service, stream=stream)
    return FaultLog(stream)


@dataclass
class FakeTime:
    """The faults module's clock and sleep: a time that moves when told, sleeps recorded."""

    now: float
    steps: list[str]

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.steps.append(f"sleep {seconds}")


@pytest.fixture
def steps() -> list[str]:
    """What happened, in order: sleeps of the faults module, handler calls."""
    return []


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch, steps: list[str]) -> FakeTime:
    """Replace ``time`` in the faults module only (moto, botocore and logs keep the real one)."""
    fake = FakeTime(now=1_000_000.0, steps=steps)
    monkeypatch.setattr(faults, "time", fake)
    return fake


class Killed(BaseException):
    """``os._exit`` in a test: no ``except Exception`` on the way may swallow it."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


@pytest.fixture
def no_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os._exit`` raises :class:`Killed` instead of ending the test run."""

    def exit_(status: int) -> None:
        raise Killed(status)

    monkeypatch.setattr("lambdamesh_toolkit.faults.os._exit", exit_)


# --- helpers --------------------------------------------------------------------------------


def api_app(calls: list[str]) -> Chalice:
    """An app with two routes of different shapes, each recording that its handler ran."""
    app = Chalice(app_name="faults-api-test")
    api = HttpApi(app)

    @app.route("/ping")
    @api.endpoint()
    def ping() -> dict[str, str]:
        calls.append("ping")
        return {"pong": "yes"}

    @app.route("/orders/{order_id}", methods=["PUT"])
    @api.endpoint(status=201)
    def put_order(order_id: str) -> dict[str, str]:
        calls.append(f"put {order_id}")
        return {"id": order_id}

    return app


def recording_consumer(world: World, steps: list[str]) -> EventConsumer:
    """A consumer of ``user.created`` whose handler records the user it was called for."""

    def on_user(envelope: EventEnvelope, data: UserCreated) -> None:
        steps.append(f"handled {data.user_id}")

    return world.consumer({("user.created", 1): on_user})


def publish_users(world: World, count: int) -> dict[str, Any]:
    """Publish ``count`` users created and receive them as one Lambda batch."""
    publisher = Publisher(world.standard.topic_arn, sns_client=world.sns)
    for index in range(count):
        publisher.publish(user_created(f"u-{index}"))
    event = world.receive(world.standard)
    assert len(event["Records"]) == count
    return event


def idempotency_marks(world: World) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = world.dynamodb.scan(TableName=IDEMPOTENCY_TABLE)["Items"]
    return items


def handled(steps: list[str]) -> list[str]:
    return [step for step in steps if step.startswith("handled ")]


def lambda_context(remaining_ms: int) -> Any:
    return SimpleNamespace(
        aws_request_id="req-slow", get_remaining_time_in_millis=lambda: remaining_ms
    )


# --- 1. no variable: no fault ---------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_without_the_variable_nothing_is_injected_anywhere(
    world: World,
    set_faults: Callable[[str], None],
    fault_log: FaultLog,
    steps: list[str],
    value: str | None,
) -> None:
    # GIVEN no faults configured (the variable unset, or set to nothing)
    if value is not None:
        set_faults(value)

    # WHEN an event is published, consumed, and an API route is called
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    event = world.receive(world.standard)
    response = recording_consumer(world, steps).process(event, lambda_context(60_000))
    calls: list[str] = []
    with Client(api_app(calls)) as client:
        answer = client.http.get("/ping")

    # THEN the plan is the empty one, and everything behaves as without the faults module:
    # one message, the handler ran and its mark was written, the route answered
    assert active_faults() == FaultPlan()
    assert len(event["Records"]) == 1
    assert failed_ids(response) == []
    assert handled(steps) == ["handled u-1"]
    assert len(idempotency_marks(world)) == 1
    assert (answer.status_code, calls) == (200, ["ping"])
    # AND no fault was logged, nothing slept
    assert fault_log.injected() == []
    assert not [step for step in steps if step.startswith("sleep")]


def test_an_empty_plan_sets_no_variable_and_every_rate_is_off() -> None:
    # GIVEN / WHEN the plan of no faults is written out and read back
    plan = FaultPlan()
    # THEN it is nothing, and nothing in it ever happens
    assert plan.to_environment() == "{}"
    assert faults.fault_plan({FAULTS_VARIABLE: plan.to_environment()}) == plan
    assert plan.unavailable_for() is None
    assert not any(
        faults.happens(rate) for rate in (plan.crash_rate, plan.slow_rate, plan.duplicate_rate)
    )


# --- 2. a malformed variable ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "field", "problem"),
    [
        ("{not json", "value", "Invalid JSON"),
        ("[0.5]", "value", "Input should be an object"),
        ('{"crash": 1}', "crash", "Extra inputs are not permitted"),
        ('{"crash_rate": 1.5}', "crash_rate", "less than or equal to 1"),
        ('{"slow_rate": -0.1}', "slow_rate", "greater than or equal to 0"),
        ('{"duplicate_rate": "often"}', "duplicate_rate", "valid number"),
        ('{"unavailable_until": "tomorrow"}', "unavailable_until", "valid number"),
        ('{"unavailable_until": Infinity}', "unavailable_until", "finite number"),
        ('{"unavailable_until": NaN}', "unavailable_until", "finite number"),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "unknown-field",
        "rate-over-1",
        "negative-rate",
        "rate-not-a-number",
        "time-not-a-number",
        "time-infinite",
        "time-nan",
    ],
)
def test_a_malformed_variable_is_refused_naming_the_variable_and_the_field(
    set_faults: Callable[[str], None], value: str, field: str, problem: str
) -> None:
    # GIVEN a variable that is not a plan
    set_faults(value)
    # WHEN the function reads its faults
    with pytest.raises(ConfigurationError) as refused:
        active_faults()
    # THEN the error names the variable, the field at fault and what is wrong with it
    message = str(refused.value)
    assert message.startswith(f"{FAULTS_VARIABLE}: {field}: ")
    assert problem in message


def test_every_problem_of_a_variable_is_named_at_once(
    set_faults: Callable[[str], None],
) -> None:
    # GIVEN a variable with two bad fields
    set_faults('{"crash_rate": 2, "typo_rate": 0.1}')
    # WHEN it is read
    # THEN both are named, so one fix is enough
    with pytest.raises(ConfigurationError, match=r"crash_rate: .*; typo_rate: "):
        active_faults()


# --- 3. unavailable_until -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("left_s", "retry_after"),
    [(30.5, "31"), (2.0, "2"), (0.2, "1")],
    ids=["rounded-up", "whole", "at-least-1"],
)
def test_while_unavailable_every_route_answers_503_unavailable_with_retry_after(
    set_faults: Callable[[str], None],
    fake_time: FakeTime,
    fault_log: FaultLog,
    left_s: float,
    retry_after: str,
) -> None:
    # GIVEN a service unavailable for a while yet
    set_faults(json.dumps({"unavailable_until": fake_time.now + left_s}))
    calls: list[str] = []

    # WHEN routes of every shape are called, with and without a correlation id
    with Client(api_app(calls)) as client:
        ping = client.http.get("/ping", headers={CORRELATION_HEADER: "corr-down-1"})
        put = client.http.put("/orders/o-1", body=b"{}")

    # THEN each answers 503 `unavailable`, Retry-After in whole seconds (at least 1),
    # the correlation id in the header and the body; no handler ran
    for answer in (ping, put):
        assert answer.status_code == 503
        assert answer.headers["Retry-After"] == retry_after
        error = json.loads(answer.body)["error"]
        assert error["code"] == "unavailable"
        assert error["correlation_id"] == answer.headers[CORRELATION_HEADER]
    assert ping.headers[CORRELATION_HEADER] == "corr-down-1"
    assert put.headers[CORRELATION_HEADER]
    assert calls == []
    # AND each refusal is logged as an injected fault
    assert fault_log.faults() == ["unavailable", "unavailable"]


def test_once_the_time_has_passed_the_routes_answer_again(
    set_faults: Callable[[str], None], fake_time: FakeTime, fault_log: FaultLog
) -> None:
    # GIVEN a service unavailable for 10 s, refusing a first request
    set_faults(json.dumps({"unavailable_until": fake_time.now + 10}))
    calls: list[str] = []
    with Client(api_app(calls)) as client:
        refused = client.http.get("/ping")

        # WHEN the time has passed (the same execution environment: the plan is not re-read)
        fake_time.now += 10
        ping = client.http.get("/ping")
        put = client.http.put("/orders/o-1", body=b"{}")

    # THEN the routes answer as usual, and nothing more is injected
    assert refused.status_code == 503
    assert (ping.status_code, json.loads(ping.body)) == (200, {"pong": "yes"})
    assert (put.status_code, json.loads(put.body)) == (201, {"id": "o-1"})
    assert calls == ["ping", "put o-1"]
    assert fault_log.faults() == ["unavailable"]


def test_an_unavailability_already_over_changes_nothing(
    set_faults: Callable[[str], None], fault_log: FaultLog
) -> None:
    # GIVEN a plan whose unavailability ended a minute ago (real clock)
    set_faults(json.dumps({"unavailable_until": time.time() - 60}))
    calls: list[str] = []
    # WHEN a route is called
    with Client(api_app(calls)) as client:
        answer = client.http.get("/ping")
    # THEN it answers normally
    assert (answer.status_code, calls) == (200, ["ping"])
    assert fault_log.injected() == []


# --- 4. crash_rate --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "handled_before_kill"),
    [(4, 2), (3, 2), (1, 1)],
    ids=["even-batch", "odd-batch", "one-record"],
)
@pytest.mark.usefixtures("no_exit")
def test_a_crashing_batch_kills_the_process_after_half_its_records_and_marks_none(
    world: World,
    set_faults: Callable[[str], None],
    fault_log: FaultLog,
    steps: list[str],
    batch: int,
    handled_before_kill: int,
) -> None:
    # GIVEN every batch crashing, and a batch of users created
    set_faults('{"crash_rate": 1}')
    event = publish_users(world, batch)
    consumer = recording_consumer(world, steps)

    # WHEN the batch is processed
    with pytest.raises(Killed) as killed:
        consumer.process(event, lambda_context(60_000))

    # THEN the process was killed (status of a SIGKILL) once half the batch, rounded up,
    # was handled: those handlers ran, the others did not
    assert killed.value.status == CRASH_EXIT_CODE
    assert len(handled(steps)) == handled_before_kill
    # AND no idempotency mark was written: the handlers that ran will run again
    assert idempotency_marks(world) == []
    # AND the crash was logged before the process ended
    assert fault_log.faults() == ["crash"]


@pytest.mark.parametrize(
    ("failing_first", "handled_before_kill"),
    [(False, 2), (True, 1)],
    ids=["all-succeed", "first-of-the-group-fails"],
)
@pytest.mark.usefixtures("no_exit")
def test_a_crashing_fifo_batch_is_killed_even_when_its_group_is_skipped(
    world: World,
    set_faults: Callable[[str], None],
    fault_log: FaultLog,
    steps: list[str],
    failing_first: bool,
    handled_before_kill: int,
) -> None:
    # GIVEN every batch crashing, and 4 events of one order on the FIFO queue
    set_faults('{"crash_rate": 1}')
    publisher = Publisher(world.fifo.topic_arn, sns_client=world.sns)
    envelopes = [order_placed("o-1") for _ in range(4)]
    for envelope in envelopes:
        publisher.publish(envelope, group_id="o-1")

    def on_placed(envelope: EventEnvelope, data: OrderPlaced) -> None:
        steps.append(f"handled {envelope.id}")
        if failing_first and envelope.id == envelopes[0].id:
            raise RuntimeError("card service down")

    consumer = world.consumer({("order.placed", 1): on_placed}, fifo=True)
    event = world.receive(world.fifo)
    assert len(event["Records"]) == 4

    # WHEN the batch is processed (a failure skips the rest of its group: fewer than half
    # of the records ever reach the handler)
    with pytest.raises(Killed):
        consumer.process(event, lambda_context(60_000))

    # THEN the process is killed all the same, having handled what it could, in order
    assert (
        handled(steps) == [f"handled {envelope.id}" for envelope in envelopes][:handled_before_kill]
    )
    assert idempotency_marks(world) == []
    assert fault_log.faults() == ["crash"]


@pytest.mark.usefixtures("no_exit")
def test_a_batch_redelivered_after_a_crash_runs_every_handler_again(
    world: World, set_faults: Callable[[str], None], steps: list[str]
) -> None:
    # GIVEN a batch of 4 whose first processing crashed after 2 records
    set_faults('{"crash_rate": 1}')
    event = publish_users(world, 4)
    with pytest.raises(Killed):
        recording_consumer(world, steps).process(event, lambda_context(60_000))
    first_run = handled(steps)

    # WHEN SQS delivers the batch again to a new execution environment without the fault
    set_faults('{"crash_rate": 0}')
    steps.clear()
    response = recording_consumer(world, steps).process(event, lambda_context(60_000))

    # THEN every record is handled, the 2 handled before the crash included, and marked
    assert failed_ids(response) == []
    assert len(first_run) == 2
    assert set(first_run) < set(handled(steps))
    assert sorted(handled(steps)) == [f"handled u-{index}" for index in range(4)]
    assert len(idempotency_marks(world)) == 4


@pytest.mark.usefixtures("no_exit")
def test_a_record_failing_at_the_crash_point_still_kills_the_process(
    world: World, set_faults: Callable[[str], None], steps: list[str]
) -> None:
    # GIVEN every batch crashing, and a one-record batch whose handler fails
    set_faults('{"crash_rate": 1}')
    event = publish_users(world, 1)

    def failing(envelope: EventEnvelope, data: UserCreated) -> None:
        steps.append(f"handled {data.user_id}")
        raise RuntimeError("mail server said no")

    consumer = world.consumer({("user.created", 1): failing})

    # WHEN the batch is processed
    # THEN the process is killed all the same, before the failure is recorded
    with pytest.raises(Killed):
        consumer.process(event, lambda_context(60_000))
    assert handled(steps) == ["handled u-0"]
    assert world.dynamodb.scan(TableName=FAILURES_TABLE)["Items"] == []


# --- 5. slow_rate ---------------------------------------------------------------------------


def test_a_slow_batch_first_waits_past_the_functions_timeout(
    world: World,
    set_faults: Callable[[str], None],
    fake_time: FakeTime,
    fault_log: FaultLog,
    steps: list[str],
) -> None:
    # GIVEN every batch slow, and an invocation with 2.5 s left
    set_faults('{"slow_rate": 1}')
    event = publish_users(world, 2)
    consumer = recording_consumer(world, steps)

    # WHEN the batch is processed
    consumer.process(event, lambda_context(2_500))

    # THEN it first slept 1 s past the time left (Lambda stops it there), before any handler
    assert steps[0] == "sleep 3.5"
    assert len(steps) == 3
    assert sorted(steps[1:]) == ["handled u-0", "handled u-1"]
    # AND the wait was logged with its length
    [line] = fault_log.injected()
    assert (line["fault"], line["sleep_s"]) == ("slow", 3.5)


def test_a_slow_batch_without_a_context_still_waits_a_second(
    world: World, set_faults: Callable[[str], None], fake_time: FakeTime, steps: list[str]
) -> None:
    # GIVEN every batch slow, and an invocation without a Lambda context (a direct call)
    set_faults('{"slow_rate": 1}')
    event = publish_users(world, 1)
    # WHEN the batch is processed
    recording_consumer(world, steps).process(event, None)
    # THEN it waited 1 s before the handler ran
    assert steps == ["sleep 1.0", "handled u-0"]


# --- 6. duplicate_rate ----------------------------------------------------------------------


def test_a_duplicated_fifo_publish_reaches_the_queue_twice_under_another_deduplication_id(
    world: World, set_faults: Callable[[str], None], fault_log: FaultLog
) -> None:
    # GIVEN every publish duplicated, on a FIFO topic with a FIFO queue (raw delivery)
    set_faults('{"duplicate_rate": 1}')
    envelope = order_placed("o-1")

    # WHEN one event is published
    message_id = Publisher(world.fifo.topic_arn, sns_client=world.sns).publish(
        envelope, group_id="o-1"
    )

    # THEN the queue holds it twice: same event id, same group, the second under
    # `<event id>:duplicate` so that FIFO deduplication lets it through
    records = world.receive(world.fifo)["Records"]
    assert message_id
    assert [json.loads(record["body"])["id"] for record in records] == [envelope.id] * 2
    assert [record["attributes"]["MessageGroupId"] for record in records] == ["o-1"] * 2
    assert [record["attributes"]["MessageDeduplicationId"] for record in records] == [
        envelope.id,
        f"{envelope.id}:duplicate",
    ]
    # AND the duplicate was logged with the event's id
    [line] = fault_log.injected()
    assert (line["fault"], line["event_id"]) == ("duplicate", envelope.id)


def test_a_duplicated_standard_publish_reaches_the_queue_twice(
    world: World, set_faults: Callable[[str], None], fault_log: FaultLog
) -> None:
    # GIVEN every publish duplicated, on a standard topic
    set_faults('{"duplicate_rate": 1}')
    envelope = user_created("u-1")

    # WHEN one event is published
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(envelope)

    # THEN the queue holds two messages of that event id
    records = world.receive(world.standard)["Records"]
    assert [json.loads(record["body"])["id"] for record in records] == [envelope.id] * 2
    assert fault_log.faults() == ["duplicate"]


@pytest.mark.parametrize("fifo", [True, False], ids=["fifo", "standard"])
def test_a_zero_duplicate_rate_publishes_once(
    world: World, set_faults: Callable[[str], None], fault_log: FaultLog, fifo: bool
) -> None:
    # GIVEN a plan whose duplicate rate is 0
    set_faults('{"duplicate_rate": 0}')
    queue = world.fifo if fifo else world.standard

    # WHEN one event is published
    publisher = Publisher(queue.topic_arn, sns_client=world.sns)
    if fifo:
        publisher.publish(order_placed("o-1"), group_id="o-1")
    else:
        publisher.publish(user_created("u-1"))

    # THEN the queue holds it once, and no fault is logged
    assert len(world.receive(queue)["Records"]) == 1
    assert fault_log.injected() == []


def test_a_consumer_handles_a_duplicated_event_once(
    world: World, set_faults: Callable[[str], None], steps: list[str]
) -> None:
    # GIVEN an event published with a duplicate
    set_faults('{"duplicate_rate": 1}')
    Publisher(world.standard.topic_arn, sns_client=world.sns).publish(user_created("u-1"))
    event = world.receive(world.standard)

    # WHEN the consumer processes both deliveries
    response = recording_consumer(world, steps).process(event, lambda_context(60_000))

    # THEN both are acknowledged and the handler ran once (idempotency by event id)
    assert len(event["Records"]) == 2
    assert failed_ids(response) == []
    assert handled(steps) == ["handled u-1"]


def test_a_duplicated_event_of_a_batch_goes_out_twice_beside_the_others(
    world: World, set_faults: Callable[[str], None], fault_log: FaultLog
) -> None:
    # GIVEN every publish duplicated, and two events published in one batch on a FIFO topic
    set_faults('{"duplicate_rate": 1}')
    publisher = Publisher(world.fifo.topic_arn, sns_client=world.sns)
    events = [order_placed("o-1"), order_placed("o-2")]
    prepared = [
        publisher.prepare(event, group_id=f"o-{n}", traceparent=None)
        for n, event in enumerate(events, start=1)
    ]

    # WHEN they are published together
    outcome = publisher.publish_batch(prepared)

    # THEN both are confirmed, and the queue holds each twice, the copy under
    # `<event id>:duplicate`
    assert outcome.failure is None
    assert len(outcome.message_ids) == 2
    records = world.receive(world.fifo)["Records"]
    assert sorted(record["attributes"]["MessageDeduplicationId"] for record in records) == sorted(
        [event.id for event in events] + [f"{event.id}:duplicate" for event in events]
    )
    assert fault_log.faults() == ["duplicate", "duplicate"]
