"""At most a few execution environments start at once (the emulator's environment start gate)."""

from __future__ import annotations

import doctest
import functools
import threading
import time
from collections.abc import Callable, Sized
from typing import Final

import pytest

from lambdamesh_localstack import environment_starts
from lambdamesh_localstack.environment_starts import (
    BACKGROUND_WAIT_ENV,
    LIMIT_ENV,
    CallerPrecedence,
    StartGate,
    background_wait,
    in_background,
    start_limit,
)
from lambdamesh_localstack.esm_tuning import BATCH_THREAD_PREFIX

WAIT_S: Final = 30.0
"""Longest a test waits for a thread to get somewhere: far beyond a stalled worker's seconds."""


def stopped_clock() -> float:
    """A monotonic clock that never moves: a bound on waiting that the test is not about never
    expires, however long the test's worker stalls (nor lets a wait that should have ended on
    a change end on the bound instead)."""
    return 0.0


def wait_for(reached: Callable[[], bool], what: str) -> None:
    """Return once ``reached()``; fail, saying ``what`` never happened, after :data:`WAIT_S`."""
    deadline = time.monotonic() + WAIT_S
    while not reached():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {WAIT_S:.0f} s: {what}")
        time.sleep(0.005)


def length_is(items: Sized, count: int) -> Callable[[], bool]:
    """Whether ``items`` has ``count`` items yet, for :func:`wait_for`."""
    return lambda: len(items) == count


def finished(thread: threading.Thread) -> None:
    """``thread`` joined; fails if it still runs after :data:`WAIT_S`."""
    thread.join(WAIT_S)
    assert not thread.is_alive(), f"{thread.name} still waits after {WAIT_S:.0f} s"


def gate_waiters(gate: StartGate) -> int:
    """Invocations waiting at ``gate``. StartGate counts them in no public attribute; each is
    registered in its private ``_waiting``, under its lock, before it waits."""
    return len(gate._waiting)


def precedence_waiters(precedence: CallerPrecedence) -> int:
    """Background invocations waiting their turn at ``precedence``. CallerPrecedence counts
    them nowhere: they are the threads waiting on its condition (``threading.Condition``'s
    private ``_waiters``, which a thread joins under the lock, as it starts waiting)."""
    return len(precedence._changed._waiters)  # type: ignore[attr-defined]


def test_the_modules_examples_run() -> None:
    # GIVEN the module's docstring examples WHEN they run THEN each gives what it shows
    assert doctest.testmod(environment_starts).failed == 0


@pytest.mark.parametrize("configured", ["-1", "soon", "nan"])
def test_a_background_wait_that_is_not_seconds_is_refused_naming_the_variable(
    configured: str,
) -> None:
    # GIVEN / WHEN a wait that is negative or no number THEN it is refused, naming the variable
    with pytest.raises(ValueError, match=BACKGROUND_WAIT_ENV):
        background_wait({BACKGROUND_WAIT_ENV: configured})


def test_a_limit_below_one_is_refused_naming_the_variable() -> None:
    # GIVEN / WHEN a limit of 0 THEN it is refused, naming the variable
    with pytest.raises(ValueError, match=LIMIT_ENV):
        start_limit({LIMIT_ENV: "0"}, 2)


def test_starts_up_to_the_limit_go_at_once_and_the_next_waits_for_one_to_end() -> None:
    # GIVEN a gate of two starts, both taken, and nothing idle
    gate = StartGate(limit=2, clock=stopped_clock)
    assert gate.admit(lambda: None) is None
    assert gate.admit(lambda: None) is None
    admitted = threading.Event()

    def third() -> None:
        assert gate.admit(lambda: None) is None
        admitted.set()

    # WHEN a third invocation asks THEN it waits while both starts run
    waiter = asked(third, lambda: gate_waiters(gate))
    assert not admitted.is_set()
    # AND it starts as soon as one of them ends
    gate.start_ended()
    finished(waiter)
    assert admitted.is_set()
    assert gate.starting == 2


def test_a_waiting_invocation_takes_an_environment_released_meanwhile() -> None:
    # GIVEN every start taken, and an invocation waiting with no environment idle
    gate = StartGate(limit=1, clock=stopped_clock)
    assert gate.admit(lambda: None) is None
    idle: list[str] = []
    taken: list[str | None] = []
    waiter = asked(
        lambda: taken.append(gate.admit(lambda: idle.pop() if idle else None)),
        lambda: gate_waiters(gate),
    )
    assert taken == []
    # WHEN an environment is released
    idle.append("env-1")
    gate.released()
    finished(waiter)
    # THEN the invocation took it instead of starting another
    assert taken == ["env-1"]
    assert gate.starting == 1


def test_a_wait_past_its_bound_starts_anyway() -> None:
    # GIVEN every start taken for good, and a short bound on waiting
    gate = StartGate(limit=1, wait_s=0.05)
    assert gate.admit(lambda: None) is None
    # WHEN another invocation asks THEN after the bound it starts one anyway
    assert gate.admit(lambda: None) is None
    assert gate.starting == 2


def waiting(
    gate: StartGate, started: list[str], function: str, environments: int, background: bool = False
) -> threading.Thread:
    """An invocation of ``function`` asking ``gate`` for a start on a thread of its own (nothing
    idle); ``function`` goes into ``started`` once it may start. Returned after it has asked."""

    def invoke() -> None:
        assert gate.admit(lambda: None, function, lambda: environments, background) is None
        started.append(function)

    return asked(invoke, lambda: gate_waiters(gate))


def asked(invoke: Callable[[], None], waiters: Callable[[], int] | None = None) -> threading.Thread:
    """``invoke`` on a thread of its own, returned once it has asked: with ``waiters`` (how
    many wait where it asks), once it waits there too, or has ended without waiting.

    A daemon: with a stopped clock a waiter that is never let through (a failure) would
    otherwise keep the worker from exiting."""
    before = 0 if waiters is None else waiters()
    thread = threading.Thread(target=invoke, daemon=True)
    thread.start()
    if waiters is not None:
        wait_for(
            lambda: waiters() > before or not thread.is_alive(),
            f"{thread.name} waits its turn",
        )
    return thread


def test_a_free_start_goes_to_a_function_without_environments_before_one_with() -> None:
    # GIVEN the one start taken, `orders` with two environments busy and an invocation of it
    # waiting, then an invocation of `users`, which has none, waiting behind it
    gate = StartGate(limit=1, clock=stopped_clock)
    assert gate.admit(lambda: None, "orders", lambda: 2) is None
    started: list[str] = []
    orders = waiting(gate, started, "orders", 2)
    users = waiting(gate, started, "users", 0)
    assert started == []
    # WHEN the start ends
    gate.start_ended("orders")
    # THEN `users` starts its first environment, and `orders` still waits
    finished(users)
    assert started == ["users"]
    assert orders.is_alive()
    # AND `orders` starts its next one when the start of `users` has ended
    gate.start_ended("users")
    finished(orders)
    assert started == ["users", "orders"]
    assert gate.starting == 1


def test_a_free_start_goes_to_the_function_whose_invocation_has_waited_longest() -> None:
    # GIVEN the one start taken, an invocation of `orders` (three environments, all busy)
    # waiting, then one of `users` (one, busy)
    gate = StartGate(limit=1, clock=stopped_clock)
    assert gate.admit(lambda: None, "catalog", lambda: 0) is None
    started: list[str] = []
    orders = waiting(gate, started, "orders", 3)
    users = waiting(gate, started, "users", 1)
    # WHEN the start ends THEN `orders`, which asked first, starts; `users` waits its turn
    gate.start_ended("catalog")
    finished(orders)
    assert started == ["orders"]
    assert users.is_alive()
    gate.start_ended("orders")
    finished(users)
    assert started == ["orders", "users"]


def test_an_environment_released_goes_to_the_invocation_of_its_function_that_came_first() -> None:
    # GIVEN the one start taken, and three invocations of `orders` waiting, one after another
    gate = StartGate(limit=1, clock=stopped_clock)
    assert gate.admit(lambda: None, "users", lambda: 0) is None
    idle: list[str] = []
    served: list[tuple[int, str | None]] = []
    looked: list[int] = []

    def invoke(number: int) -> None:
        def reserve() -> str | None:
            looked.append(number)
            return idle.pop() if idle else None

        served.append((number, gate.admit(reserve, "orders", lambda: 1)))

    waiters = [
        asked(functools.partial(invoke, number), lambda: gate_waiters(gate)) for number in range(3)
    ]
    # WHEN environments are released one at a time
    for count, environment in enumerate(("env-a", "env-b", "env-c"), start=1):
        idle.append(environment)
        gate.released()
        wait_for(length_is(served, count), f"{environment} taken")
    for waiter in waiters:
        finished(waiter)
    # THEN each went to the invocation that had waited longest
    assert served == [(0, "env-a"), (1, "env-b"), (2, "env-c")]
    assert gate.starting == 1
    # AND no invocation looked for an idle environment while an earlier one still waited
    assert looked == sorted(looked)


def test_a_start_goes_to_an_invocation_a_caller_waits_for_before_an_event_source_batch() -> None:
    # GIVEN the one start taken, a batch of an event source mapping waiting for `payments`,
    # which has no environment, then an invocation of `orders` a caller waits for, with two
    gate = StartGate(limit=1, clock=stopped_clock)
    assert gate.admit(lambda: None, "users", lambda: 0) is None
    started: list[str] = []
    batch = waiting(gate, started, "payments", 0, background=True)
    caller = waiting(gate, started, "orders", 2)
    # WHEN the start ends
    gate.start_ended("users")
    # THEN `orders` starts first, and the batch waits for the start after it
    finished(caller)
    assert started == ["orders"]
    assert batch.is_alive()
    gate.start_ended("orders")
    finished(batch)
    assert started == ["orders", "payments"]


@pytest.mark.parametrize(
    ("thread_name", "background"),
    [
        ("event-source-mapping-poller-3f2a-functhread12", True),
        (f"{BATCH_THREAD_PREFIX}3f2a", True),
        ("lambda-invoker-notifications-OrderConfirmed:$LATEST_0", True),
        ("ThreadPoolExecutor-0_1", False),
        ("PoolThread-twisted.internet.reactor-3", False),
    ],
)
def test_threads_invoking_with_no_caller_waiting_are_the_background_ones(
    thread_name: str, background: bool
) -> None:
    # GIVEN / WHEN a thread's name THEN it is one that invokes with no caller waiting, or not
    assert in_background(thread_name) is background


# --- callers first while invocations run -------------------------------------------------


def running_in_background(
    precedence: CallerPrecedence, ran: list[str], name: str, waits: bool = False
) -> threading.Thread:
    """A background invocation named ``name`` on a thread of its own; into ``ran`` once it may
    run (it then ends at once). If it ``waits``, returned once it waits its turn (or has run)."""

    def invoke() -> None:
        with precedence.running(background=True):
            ran.append(name)

    return asked(invoke, (lambda: precedence_waiters(precedence)) if waits else None)


def test_beside_a_running_caller_background_invocations_beyond_the_limit_wait_for_it() -> None:
    # GIVEN a limit of one background invocation beside callers', a caller's invocation
    # running and one background invocation running beside it
    precedence = CallerPrecedence(limit=1, wait_s=10, clock=stopped_clock)
    ran: list[str] = []
    with precedence.running(background=True):
        with precedence.running(background=False):
            # WHEN a second background invocation comes
            second = running_in_background(precedence, ran, "second", waits=True)
            # THEN it waits
            assert ran == []
        # AND it runs as soon as the caller's invocation ends, the first background one running on
        finished(second)
        assert ran == ["second"]


def test_with_no_caller_running_background_invocations_are_not_limited() -> None:
    # GIVEN a limit of one, no caller's invocation running and a background one running
    precedence = CallerPrecedence(limit=1, wait_s=10, clock=stopped_clock)
    ran: list[str] = []
    with precedence.running(background=True):
        # WHEN another background invocation comes  THEN it runs at once
        finished(running_in_background(precedence, ran, "second"))
        assert ran == ["second"]


def test_a_background_invocation_waits_no_longer_than_its_bound() -> None:
    # GIVEN callers' invocations that never end while a background one waits, at most 0.3 s
    precedence = CallerPrecedence(limit=0, wait_s=0.3)
    ran: list[str] = []
    with precedence.running(background=False):
        started = time.monotonic()
        # WHEN a background invocation comes
        finished(running_in_background(precedence, ran, "late"))
        # THEN it ran anyway, after its bound
        assert ran == ["late"]
        assert time.monotonic() - started >= 0.3


def test_without_a_limit_nothing_waits() -> None:
    # GIVEN no limit (the setting "off") and a caller's invocation running
    precedence = CallerPrecedence(limit=None, clock=stopped_clock)
    ran: list[str] = []
    with precedence.running(background=False):
        # WHEN background invocations come  THEN each runs at once
        for name in ("a", "b", "c"):
            finished(running_in_background(precedence, ran, name))
        assert ran == ["a", "b", "c"]
