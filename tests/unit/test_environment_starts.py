"""At most a few execution environments start at once (the emulator's environment start gate)."""

from __future__ import annotations

import doctest
import threading
import time

import pytest

from lambdamesh_localstack import environment_starts
from lambdamesh_localstack.environment_starts import LIMIT_ENV, StartGate, start_limit


def test_the_modules_examples_run() -> None:
    # GIVEN the module's docstring examples WHEN they run THEN each gives what it shows
    assert doctest.testmod(environment_starts).failed == 0


def test_a_limit_below_one_is_refused_naming_the_variable() -> None:
    # GIVEN / WHEN a limit of 0 THEN it is refused, naming the variable
    with pytest.raises(ValueError, match=LIMIT_ENV):
        start_limit({LIMIT_ENV: "0"}, 2)


def test_starts_up_to_the_limit_go_at_once_and_the_next_waits_for_one_to_end() -> None:
    # GIVEN a gate of two starts, both taken, and nothing idle
    gate = StartGate(limit=2)
    assert gate.admit(lambda: None) is None
    assert gate.admit(lambda: None) is None
    admitted = threading.Event()

    def third() -> None:
        assert gate.admit(lambda: None) is None
        admitted.set()

    waiter = threading.Thread(target=third)
    waiter.start()
    # WHEN a third invocation asks THEN it waits while both starts run
    assert not admitted.wait(0.2)
    # AND it starts as soon as one of them ends
    gate.start_ended()
    assert admitted.wait(2.0)
    waiter.join()
    assert gate.starting == 2


def test_a_waiting_invocation_takes_an_environment_released_meanwhile() -> None:
    # GIVEN every start taken, and an invocation waiting with no environment idle
    gate = StartGate(limit=1)
    assert gate.admit(lambda: None) is None
    idle: list[str] = []
    taken: list[str | None] = []
    waiter = threading.Thread(
        target=lambda: taken.append(gate.admit(lambda: idle.pop() if idle else None))
    )
    waiter.start()
    time.sleep(0.1)
    # WHEN an environment is released
    idle.append("env-1")
    gate.released()
    waiter.join(2.0)
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
