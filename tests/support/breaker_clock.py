"""A circuit breaker's clock that only moves when a test says so.

Powertools' circuit breaker, its persistence layers, the in-memory store of
:mod:`tests.support.circuit_breaker` and :mod:`lambdamesh_toolkit.resilience` all read whole
seconds of ``dt.datetime.now()``: a test that reads a time from the breaker (a circuit's
``Retry-After``) on the real clock sees it one second shorter when a second boundary passes
between the circuit opening and the reading.
"""

from __future__ import annotations

import datetime as real_dt
import time
from types import SimpleNamespace

import pytest
from aws_lambda_powertools.utilities.circuit_breaker import base as breaker_base
from aws_lambda_powertools.utilities.circuit_breaker.persistence import base as persistence_base
from aws_lambda_powertools.utilities.circuit_breaker.persistence import (
    dynamodb as persistence_dynamodb,
)

from lambdamesh_toolkit import resilience
from tests.support import circuit_breaker


class FakeClock:
    """Seconds since the epoch that only move when a test says so."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def datetime_module(self) -> SimpleNamespace:
        clock = self

        class FrozenDatetime(real_dt.datetime):
            @classmethod
            def now(cls, tz: real_dt.tzinfo | None = None) -> FrozenDatetime:
                return cls.fromtimestamp(clock.now, tz)

        return SimpleNamespace(datetime=FrozenDatetime, UTC=real_dt.UTC)


def freeze_breaker_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Freeze the circuit breaker's clock (Powertools reads ``dt.datetime.now()``) for the
    test ``monkeypatch`` belongs to; return it, to move it."""
    fake = FakeClock()
    shim = fake.datetime_module()
    for module in (
        breaker_base,
        persistence_base,
        persistence_dynamodb,
        circuit_breaker,
        resilience,
    ):
        monkeypatch.setattr(module, "dt", shim)
    return fake
