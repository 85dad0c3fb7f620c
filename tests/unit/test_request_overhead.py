"""Memoising the emulator's per-request pure functions."""

from __future__ import annotations

import doctest
import logging
import sys
import types
from collections.abc import Iterator

import pytest

from lambdamesh_localstack import request_overhead
from lambdamesh_localstack.request_overhead import (
    REQUEST_LOG_ENV,
    REQUEST_LOGGER,
    memoise,
    quiet_request_log,
    skip_when_not_logged,
)

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


@pytest.fixture
def request_logger() -> Iterator[logging.Logger]:
    """LocalStack's per-request logger at its default level, restored afterwards."""
    logger = logging.getLogger(REQUEST_LOGGER)
    level = logger.level
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(level)


def test_the_line_per_request_is_quieted_from_localstacks_default(
    request_logger: logging.Logger,
) -> None:
    # GIVEN LocalStack's default level WHEN the cut applies with nothing asked
    assert quiet_request_log({})
    # THEN an INFO line per request is no longer written
    assert not request_logger.isEnabledFor(logging.INFO)
    assert request_logger.isEnabledFor(logging.WARNING)


@pytest.mark.parametrize(
    ("environ", "level"),
    [({REQUEST_LOG_ENV: "1"}, logging.INFO), ({}, logging.DEBUG)],
    ids=["asked-for-by-the-environment", "a-level-localstack-chose"],
)
def test_the_line_per_request_stays_when_asked_for(
    request_logger: logging.Logger, environ: dict[str, str], level: int
) -> None:
    # GIVEN the line asked for, or a level LocalStack's settings chose (LS_LOG=trace: DEBUG)
    request_logger.setLevel(level)
    # WHEN the cut applies THEN the level is left as it is
    assert not quiet_request_log(environ)
    assert request_logger.level == level


class _Handler:
    """The four loggers of LocalStack's ``ResponseLogger``, with their levels."""

    def __init__(self, external: int, internal: int) -> None:
        self.aws_logger = self.http_logger = _logger("external", external)
        self.internal_aws_logger = self.internal_http_logger = _logger("internal", internal)


def _logger(name: str, level: int) -> logging.Logger:
    logger = logging.getLogger(f"lambdamesh.test.response_logger.{name}")
    logger.setLevel(level)
    return logger


@pytest.mark.parametrize(
    ("internal", "external_level", "internal_level", "logged"),
    [
        (False, logging.INFO, logging.WARNING, True),
        (False, logging.WARNING, logging.INFO, False),
        (True, logging.WARNING, logging.INFO, True),
        (True, logging.INFO, logging.WARNING, False),
    ],
)
def test_the_response_logger_runs_only_when_its_loggers_would_write(
    internal: bool, external_level: int, internal_level: int, logged: bool
) -> None:
    # GIVEN LocalStack's response logger, wrapped, and a request from outside or inside
    calls: list[object] = []
    wrapped = skip_when_not_logged(lambda handler, chain, context, response: calls.append(context))
    context = types.SimpleNamespace(is_internal_call=internal)
    # WHEN a response passes it
    wrapped(_Handler(external_level, internal_level), object(), context, object())
    # THEN it ran exactly when the request's loggers log at INFO
    assert calls == ([context] if logged else [])


def test_the_modules_examples_run() -> None:
    # GIVEN the module's docstring examples WHEN they run THEN each gives what it shows
    assert doctest.testmod(request_overhead).failed == 0


@pytest.mark.parametrize(
    ("path", "routable"),
    [
        ("/", False),
        ("/2015-03-31/functions/f/invocations", False),
        ("/_localstack/health", True),
        ("/_localstack/health/", True),
        ("//_localstack///health", True),
        ("/_localstack/init/boot", True),
        ("/_localstack/unknown", True),
        ("/_aws/sqs/messages", False),
        ("/_lambdamesh/requests", False),
    ],
)
def test_only_a_path_that_may_match_an_internal_route_is_matched(path: str, routable: bool) -> None:
    # GIVEN the beginnings of LocalStack's internal routes
    beginnings = request_overhead.fixed_beginnings(
        ["/_localstack/health", "/_localstack/info", "/_localstack/init/<stage>"]
    )
    # WHEN a path is checked  THEN only one that may match them (or that they answer 404) is
    assert request_overhead.may_route(path, beginnings) is routable


def test_a_route_that_begins_with_a_variable_part_lets_every_path_be_matched() -> None:
    # GIVEN a route that matches any path  WHEN any path is checked  THEN it may route
    beginnings = request_overhead.fixed_beginnings(["/<path:path>"])
    assert request_overhead.may_route("/anything/at/all", beginnings)
