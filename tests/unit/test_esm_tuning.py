"""Event source mapping tuning: settings, the LocalStack version guard and the long-polling poller.

None of these tests needs LocalStack: the poller is driven with a stand-in for LocalStack's
``SqsPoller`` (its client, queue URL and ``handle_messages``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

import pytest

from lambdamesh_localstack import esm_tuning
from lambdamesh_localstack.esm_tuning import (
    CONCURRENCY_VARIABLE,
    EXPECTED_LOCALSTACK_VERSION,
    LONG_POLL_SECONDS_VARIABLE,
    POLLER_SETTINGS,
    LongPollingSqsPoller,
    SqsPollingOptions,
    UnsupportedLocalStackVersionError,
    batch_concurrency,
    check_localstack_version,
    poller_environment,
)

WAIT_S: Final = 30.0
"""Longest a test waits for a batch's thread to get somewhere, and a batch for its release: far
beyond the seconds a stalled worker adds."""


def test_version_check_fails_on_another_localstack_naming_the_expected_version() -> None:
    # GIVEN a LocalStack release the patch was not written for
    # WHEN the version is checked
    with pytest.raises(UnsupportedLocalStackVersionError) as raised:
        check_localstack_version("2026.3.0")
    # THEN start-up is refused with a message naming both versions
    assert "4.14.0" in str(raised.value)
    assert "2026.3.0" in str(raised.value)


def test_version_check_accepts_the_version_it_was_written_for() -> None:
    # GIVEN / WHEN / THEN the pinned release passes without an error
    check_localstack_version(EXPECTED_LOCALSTACK_VERSION)


def test_user_environment_overrides_the_poller_settings() -> None:
    # GIVEN a user who sets one of the poller settings
    environ = {"LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC": "0.5", "UNRELATED": "x"}
    # WHEN the emulator's environment is built
    settings = poller_environment(environ)
    # THEN the user's value wins, the others keep their defaults, nothing else is added
    assert settings["LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC"] == "0.5"
    assert (
        settings["SQS_DISABLE_CLOUDWATCH_METRICS"]
        == POLLER_SETTINGS["SQS_DISABLE_CLOUDWATCH_METRICS"]
    )
    assert set(settings) == set(POLLER_SETTINGS)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        (LONG_POLL_SECONDS_VARIABLE, "0"),
        (LONG_POLL_SECONDS_VARIABLE, "21"),
        (CONCURRENCY_VARIABLE, "0"),
        (CONCURRENCY_VARIABLE, "five"),
    ],
)
def test_invalid_polling_option_is_refused_naming_the_variable(variable: str, value: str) -> None:
    # GIVEN / WHEN an out-of-range or non-numeric option / THEN it is refused by name
    with pytest.raises(ValueError, match="invalid event source mapping setting"):
        SqsPollingOptions.from_environment({variable: value})


def test_maximum_concurrency_of_the_mapping_replaces_the_default() -> None:
    # GIVEN mappings with and without ScalingConfig / WHEN their concurrency is computed
    # THEN MaximumConcurrency is honoured, otherwise the default applies
    assert batch_concurrency({"ScalingConfig": {"MaximumConcurrency": 2}}, 5) == 2
    assert batch_concurrency({"ScalingConfig": {}}, 5) == 5
    assert batch_concurrency({}, 5) == 5


class FakeSqsClient:
    """Hands out prepared ReceiveMessage answers and records the requests."""

    def __init__(self, answers: list[list[dict[str, Any]]]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []

    def receive_message(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"Messages": self.answers.pop(0) if self.answers else []}


class FakeSqsPoller:
    """The parts of LocalStack's SqsPoller that LongPollingSqsPoller uses."""

    def __init__(self, answers: list[list[dict[str, Any]]], *, release: threading.Event) -> None:
        self.source_client = FakeSqsClient(answers)
        self.queue_url = "http://sqs/000000000000/q"
        self.source_arn = "arn:aws:sqs:us-east-1:000000000000:q"
        self.is_fifo_queue = False
        self.release = release
        self.started: list[list[dict[str, Any]]] = []
        self.closed = False

    def handle_messages(self, messages: list[dict[str, Any]]) -> None:
        self.started.append(messages)
        self.release.wait(WAIT_S)

    def close(self) -> None:
        self.closed = True


def message(index: int) -> dict[str, Any]:
    return {"MessageId": str(index), "Attributes": {"MessageGroupId": "g"}}


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def wrap(
    fake: FakeSqsPoller, esm_config: dict[str, Any], concurrency: int = 5
) -> LongPollingSqsPoller:
    options = SqsPollingOptions(long_poll_seconds=1, default_concurrency=concurrency)
    return LongPollingSqsPoller(fake, esm_config, threading.Event(), options)


def test_poller_long_polls_instead_of_short_polling(release: threading.Event) -> None:
    # GIVEN a mapping without a batching window on an empty queue
    fake = FakeSqsPoller([], release=release)
    poller = wrap(fake, {"BatchSize": 10, "MaximumBatchingWindowInSeconds": 0})
    # WHEN it polls
    poller.poll_events()
    # THEN it asked SQS to wait for a message rather than answering at once, and did not raise
    assert fake.source_client.requests[0]["WaitTimeSeconds"] == 1


def test_poller_keeps_several_batches_in_flight_up_to_its_concurrency(
    release: threading.Event,
) -> None:
    # GIVEN a queue with three one-message batches and room for two batches at a time
    fake = FakeSqsPoller([[message(0)], [message(1)], [message(2)]], release=release)
    poller = wrap(fake, {"BatchSize": 1}, concurrency=2)
    # WHEN it polls three times while the function holds every batch
    for _ in range(3):
        poller.poll_events()
    # THEN two batches were started together and the third was not even received
    wait_for(lambda: len(fake.started) == 2)
    assert sorted(batch[0]["MessageId"] for batch in fake.started) == ["0", "1"]
    assert len(fake.source_client.requests) == 2

    # AND once the batches finish, a slot is free again: a poll (the worker polls again each
    # time one returns, having found every slot still busy) receives
    def polled() -> int:
        poller.poll_events()
        return len(fake.source_client.requests)

    release.set()
    wait_for(lambda: polled() == 3)


def test_poller_fills_the_batch_within_the_batching_window(release: threading.Event) -> None:
    # GIVEN a mapping with a window far longer than the test (the batch fills first, however
    # long a stalled worker takes) and messages trickling in
    release.set()
    fake = FakeSqsPoller([[message(0)], [message(1), message(2)], [message(3)]], release=release)
    poller = wrap(fake, {"BatchSize": 4, "MaximumBatchingWindowInSeconds": 30})
    # WHEN it polls once
    poller.poll_events()
    # THEN it kept receiving until the batch was full, asking only for what was missing
    requested = [r["sqs_override_max_message_count"] for r in fake.source_client.requests]
    assert requested == [4 * 5, 3, 1]
    wait_for(lambda: len(fake.started) == 1)
    assert [m["MessageId"] for m in fake.started[0]] == ["0", "1", "2", "3"]


def test_one_receive_serves_every_free_slot_of_a_standard_queue(release: threading.Event) -> None:
    # GIVEN a busy standard queue and a mapping with three free slots
    fake = FakeSqsPoller([[message(index) for index in range(5)]], release=release)
    poller = wrap(fake, {"BatchSize": 2}, concurrency=3)
    # WHEN it polls once
    poller.poll_events()
    # THEN one receive asked for three batches and its messages became three batches
    assert fake.source_client.requests[0]["sqs_override_max_message_count"] == 6
    wait_for(lambda: len(fake.started) == 3)
    assert sorted(len(batch) for batch in fake.started) == [1, 2, 2]


def test_fifo_queue_receives_one_batch_at_a_time_per_request(release: threading.Event) -> None:
    # GIVEN a FIFO queue, whose message groups SQS only keeps out of *other* receives
    fake = FakeSqsPoller([[message(0), message(1)]], release=release)
    fake.is_fifo_queue = True
    poller = wrap(fake, {"BatchSize": 2}, concurrency=3)
    # WHEN it polls / THEN it asks for a single batch, so a group never spans two batches
    poller.poll_events()
    assert fake.source_client.requests[0]["sqs_override_max_message_count"] == 2


def test_a_fifo_batch_of_several_groups_goes_to_the_function_whole_in_order(
    release: threading.Event,
) -> None:
    # GIVEN a FIFO receive answering messages of two groups, interleaved
    answer = [
        {"MessageId": str(index), "Attributes": {"MessageGroupId": group}}
        for index, group in enumerate("abab")
    ]
    fake = FakeSqsPoller([answer], release=release)
    fake.is_fifo_queue = True
    poller = wrap(fake, {"BatchSize": 10}, concurrency=1)
    # WHEN it polls
    poller.poll_events()
    release.set()
    wait_for(lambda: len(fake.started) == 1)
    # THEN one invocation gets the whole batch, each group in the order received (as on AWS)
    assert [[m["MessageId"] for m in batch] for batch in fake.started] == [["0", "1", "2", "3"]]


def test_closing_the_poller_closes_localstacks_poller(release: threading.Event) -> None:
    # GIVEN / WHEN the mapping stops / THEN the wrapped poller is closed too
    fake = FakeSqsPoller([], release=release)
    wrap(fake, {}).close()
    assert fake.closed


def wait_for(condition: Callable[[], bool]) -> None:
    """Return once ``condition()`` holds; fail if it still does not after :data:`WAIT_S`."""
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {WAIT_S:.0f} s")
        time.sleep(0.01)


def test_a_batch_that_fails_to_be_processed_is_logged_with_its_error_type_and_traceback(
    release: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN a mapping whose batch fails with an error that has no message of its own
    class FailingPoller(FakeSqsPoller):
        def handle_messages(self, messages: list[dict[str, Any]]) -> None:
            super().handle_messages(messages)
            raise TimeoutError

    release.set()
    fake = FailingPoller([[message(0)]], release=release)
    poller = wrap(fake, {"BatchSize": 1}, concurrency=1)
    # WHEN it polls and the batch fails
    with caplog.at_level(logging.WARNING, logger=esm_tuning.__name__):
        poller.poll_events()
        wait_for(lambda: any("failed" in record.message for record in caplog.records))
    # THEN the warning names the queue and the error's type, with its traceback
    [record] = [record for record in caplog.records if "failed" in record.message]
    assert fake.source_arn in record.message
    assert "TimeoutError" in record.message
    assert record.exc_info is not None
