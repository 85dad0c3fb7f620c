"""Memoising the emulator's per-request pure functions."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

import pytest

from lambdamesh_localstack.request_overhead import memoise

MODULE = "lambdamesh_test_fake_module"


@pytest.fixture
def fake_module() -> Iterator[types.ModuleType]:
    """A module with a function that counts its calls."""
    module = types.ModuleType(MODULE)
    calls: list[bytes] = []

    def parse(line: bytes) -> bytes:
        calls.append(line)
        return line.split(b";")[0].strip().lower()

    module.parse = parse  # type: ignore[attr-defined]
    module.calls = calls  # type: ignore[attr-defined]
    sys.modules[MODULE] = module
    yield module
    del sys.modules[MODULE]


def test_a_memoised_function_answers_the_same_and_computes_each_argument_once(
    fake_module: types.ModuleType,
) -> None:
    # GIVEN a module function WHEN it is memoised and called three times with two values
    assert memoise(MODULE, "parse", 8)
    answers = [fake_module.parse(line) for line in (b"Text/Plain; a=b", b"x", b"Text/Plain; a=b")]
    # THEN the answers are the function's own, and each distinct value was computed once
    assert answers == [b"text/plain", b"x", b"text/plain"]
    assert fake_module.calls == [b"Text/Plain; a=b", b"x"]


def test_memoising_twice_keeps_one_cache(fake_module: types.ModuleType) -> None:
    # GIVEN a memoised function
    memoise(MODULE, "parse", 8)
    cached = fake_module.parse
    # WHEN it is memoised again THEN it is the same cache, not a cache of the cache
    assert memoise(MODULE, "parse", 8)
    assert fake_module.parse is cached


@pytest.mark.parametrize(("module", "function"), [(MODULE, "absent"), ("no_such_module_x", "f")])
def test_a_missing_function_is_reported_and_nothing_is_replaced(
    fake_module: types.ModuleType, module: str, function: str
) -> None:
    # GIVEN / WHEN a function that is not there is memoised THEN it says so
    assert not memoise(module, function, 8)
