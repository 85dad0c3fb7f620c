"""The retry schedule: full jitter, attempt limit, Retry-After, idempotency."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from lambdamesh_toolkit.errors import DependencyUnavailable
from lambdamesh_toolkit.resilience import (
    AttemptFailed,
    RetryPolicy,
    call_dependency,
    parse_retry_after,
)


def failing(times: int, failure: AttemptFailed, calls: list[int]) -> Callable[[], str]:
    def attempt() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise failure
        return "ok"

    return attempt


def test_waits_are_full_jitter_within_the_doubling_ceiling(sleeps: list[float]) -> None:
    # GIVEN a policy of 5 attempts, base 0.1 s, cap 0.5 s, and a dependency that always fails
    policy = RetryPolicy(max_attempts=5, base_delay_s=0.1, max_delay_s=0.5, sleep=sleeps.append)
    ceilings = [policy.backoff_ceiling(n) for n in range(1, 5)]
    samples: list[list[float]] = [[] for _ in ceilings]

    # WHEN many calls run their schedule
    for _ in range(200):
        sleeps.clear()
        with pytest.raises(AttemptFailed):
            policy.run(failing(99, AttemptFailed("x", retryable=True), []), repeatable=True)
        for index, wait in enumerate(sleeps):
            samples[index].append(wait)

    # THEN every wait lies in [0, min(cap, base * 2**n)], the ceilings double up to the cap,
    # and waits spread over the whole range (full jitter, not "half + jitter")
    assert ceilings == pytest.approx([0.1, 0.2, 0.4, 0.5])
    for ceiling, waits in zip(ceilings, samples, strict=True):
        assert len(waits) == 200
        assert all(0.0 <= wait <= ceiling for wait in waits)
        assert min(waits) < ceiling * 0.25
        assert max(waits) > ceiling * 0.75


def test_stops_after_max_attempts_and_reraises_the_last_failure(sleeps: list[float]) -> None:
    # GIVEN a policy of 3 attempts and a dependency that always fails
    policy = RetryPolicy(max_attempts=3, sleep=sleeps.append)
    calls: list[int] = []

    # WHEN a call runs
    with pytest.raises(AttemptFailed, match="boom"):
        policy.run(failing(99, AttemptFailed("boom", retryable=True), calls), repeatable=True)

    # THEN it made exactly 3 attempts and waited twice
    assert len(calls) == 3
    assert len(sleeps) == 2


def test_succeeds_on_a_later_attempt(sleeps: list[float]) -> None:
    # GIVEN a dependency that fails twice then answers
    calls: list[int] = []
    policy = RetryPolicy(max_attempts=3, sleep=sleeps.append)

    # WHEN a call runs
    result = policy.run(failing(2, AttemptFailed("x", retryable=True), calls), repeatable=True)

    # THEN the third attempt's answer is returned
    assert result == "ok"
    assert len(calls) == 3


def test_retry_after_is_a_floor_on_the_wait(sleeps: list[float]) -> None:
    # GIVEN a dependency answering "retry after 1.5 s" once, with jitter ceilings far below
    policy = RetryPolicy(max_attempts=3, base_delay_s=0.01, max_delay_s=0.02, sleep=sleeps.append)
    calls: list[int] = []
    failure = AttemptFailed("HTTP 503", retryable=True, retry_after_s=1.5)

    # WHEN a call runs
    result = policy.run(failing(1, failure, calls), repeatable=True)

    # THEN the one wait is exactly what the dependency asked for
    assert result == "ok"
    assert sleeps == [1.5]


def test_retry_after_longer_than_allowed_ends_the_call_at_once(sleeps: list[float]) -> None:
    # GIVEN a dependency asking for 30 s when the policy waits at most 2 s
    policy = RetryPolicy(max_attempts=3, max_retry_after_s=2.0, sleep=sleeps.append)
    calls: list[int] = []
    failure = AttemptFailed("HTTP 429", retryable=True, retry_after_s=30.0)

    # WHEN the call goes through call_dependency
    with pytest.raises(DependencyUnavailable) as raised:
        call_dependency(
            "users-api",
            failing(99, failure, calls),
            retry=policy,
            breaker=None,
            repeatable=True,
        )

    # THEN it made one attempt, never slept, and hands the 30 s on to its own caller
    assert len(calls) == 1
    assert sleeps == []
    assert raised.value.retry_after_s == 30.0
    assert raised.value.headers() == {"Retry-After": "30"}


def test_non_repeatable_request_is_not_retried(sleeps: list[float]) -> None:
    # GIVEN a non-idempotent request (POST without idempotency key) meeting a 503
    policy = RetryPolicy(max_attempts=3, sleep=sleeps.append)
    calls: list[int] = []

    # WHEN it runs
    with pytest.raises(AttemptFailed):
        policy.run(failing(99, AttemptFailed("HTTP 503", retryable=True), calls), repeatable=False)

    # THEN exactly one attempt was made
    assert len(calls) == 1
    assert sleeps == []


def test_request_that_never_left_is_retried_even_when_not_repeatable(sleeps: list[float]) -> None:
    # GIVEN a POST without key whose connection could not even be opened
    policy = RetryPolicy(max_attempts=3, sleep=sleeps.append)
    calls: list[int] = []
    failure = AttemptFailed("cannot connect", retryable=True, never_sent=True)

    # WHEN it runs
    result = policy.run(failing(1, failure, calls), repeatable=False)

    # THEN it was retried: the dependency cannot have seen the first attempt
    assert result == "ok"
    assert len(calls) == 2


def test_failures_marked_not_retryable_and_other_errors_are_not_retried(
    sleeps: list[float],
) -> None:
    # GIVEN a policy and two attempts: an HTTP 500, and a programming error
    policy = RetryPolicy(max_attempts=3, sleep=sleeps.append)
    calls: list[int] = []

    def broken() -> str:
        calls.append(1)
        raise KeyError("bug")

    # WHEN each runs
    with pytest.raises(AttemptFailed):
        policy.run(failing(99, AttemptFailed("HTTP 500", retryable=False), calls), repeatable=True)
    with pytest.raises(KeyError):
        policy.run(broken, repeatable=True)

    # THEN each made a single attempt
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0.5", 0.5), ("-4", 0.0), ("", None), (None, None), ("soon", None)],
)
def test_retry_after_seconds_form_is_read(header: str | None, expected: float | None) -> None:
    # GIVEN / WHEN a Retry-After header in delay-seconds form (or garbage) is read
    # THEN it gives the seconds to wait, never negative, or None when unreadable
    assert parse_retry_after(header) == expected


def test_retry_after_http_date_form_is_read() -> None:
    # GIVEN a Retry-After header holding an HTTP date 7 seconds ahead
    now = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    header = format_datetime(now + timedelta(seconds=7), usegmt=True)

    # WHEN it is read
    # THEN it gives the 7 seconds
    assert parse_retry_after(header, now=now) == pytest.approx(7.0)
