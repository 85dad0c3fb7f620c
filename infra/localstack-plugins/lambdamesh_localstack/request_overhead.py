"""What the emulator does on every request that nothing here needs: remembered, or skipped.

Profiled on the embedded LocalStack (DynamoDB ``GetItem`` in a loop, samples taken while the
emulator held the GIL):

``moto.core.responses.method_names_from_class``
    moto lists the methods of the response class (``inspect.getmembers``) on every request it
    serves to find the action's handler: 6.5 % of a DynamoDB request. A class's methods do not
    change while the emulator runs.
``twisted.web.http._parseContentType``
    Twisted parses every request's ``Content-Type`` header with the ``email`` package to decide
    whether the body is a form: 4.5 % of a request. The result depends on the header value alone,
    and clients send a handful of distinct values.

:func:`apply_request_overhead_cuts`, an ``on_infra_start`` hook, replaces each by a memoised
version of itself (``functools.lru_cache``). Both are module globals looked up at call time, so
the replacement takes effect for every later request. A function that is not where it is
expected is left alone with a warning: the emulator is then only slower, never different.

It also quiets the log line LocalStack writes for every request it answers
(``AWS dynamodb.GetItem => 200``, logger ``localstack.request``) and skips what its
``ResponseLogger`` builds for that line when nothing would write it: a copy of the request's
and the response's headers, every request, logged or not (4.6 % of a request's CPU, profiled on
a no-op request). ``LAMBDAMESH_REQUEST_LOG=1`` keeps the line; so does a level LocalStack's own
settings chose (``LS_LOG=trace`` makes it ``DEBUG``): only LocalStack's default ``INFO`` is
raised to ``WARNING``.

And it spares every AWS request the match against LocalStack's internal resources
(``/_localstack/health``, ``/_localstack/info``, ...): ``LocalstackResourceHandler`` binds and
matches werkzeug's map for each request, and for all but those few raises ``NotFound`` and lets
the request go on (5 % of a no-op request's busy samples, py-spy). A request whose path (raw,
slashes merged) starts with none of the routes' fixed beginnings, and not with ``/_localstack/``
(which answers 404 there), cannot match and is passed on without it
(:func:`skip_unroutable`). The beginnings are read from the router's map, again whenever a
route is added (the router then holds a new map). CPU per no-op request, three runs of 3 000
each: 0.75-0.85 ms before, 0.72-0.85 ms after: inside the noise, as a 5 % share of samples taken
whether the lock was held or not would have it.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import wrap_once, written_for_installed_release

LOG = logging.getLogger(__name__)

MEMOISED: Final = (
    ("moto.core.responses", "method_names_from_class", 512),
    ("twisted.web.http", "_parseContentType", 256),
)
"""(module, function, cache size) of every function memoised."""

REQUEST_LOGGER: Final = "localstack.request"
"""The parent of the loggers of LocalStack's one line per request."""

REQUEST_LOG_ENV: Final = "LAMBDAMESH_REQUEST_LOG"
"""``1``: keep LocalStack's log line per request."""

_applied = threading.Lock()


def memoise(module_name: str, function_name: str, maxsize: int) -> bool:
    """Replace ``module.function`` by an ``lru_cache`` of itself; ``False`` if it is not there."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return False
    function: Any = getattr(module, function_name, None)
    if not callable(function):
        return False
    if not hasattr(function, "cache_info"):
        setattr(module, function_name, functools.lru_cache(maxsize=maxsize)(function))
    return True


def quiet_request_log(environ: Mapping[str, str]) -> bool:
    """Raise the per-request log line from LocalStack's default ``INFO`` to ``WARNING``.

    Left as it is when ``environ`` asks for it (:data:`REQUEST_LOG_ENV`) or when LocalStack's
    settings gave it another level. Returns whether it was quieted.
    """
    logger = logging.getLogger(REQUEST_LOGGER)
    if environ.get(REQUEST_LOG_ENV) == "1" or logger.level != logging.INFO:
        return False
    logger.setLevel(logging.WARNING)
    return True


def skip_when_not_logged(call: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``ResponseLogger.__call__``: call it only when one of its loggers would log.

    ``ResponseLogger`` picks the internal or the external pair of loggers (AWS and HTTP) by the
    request and logs at ``INFO``; it builds the line's extras before asking the logger.
    """

    def call_when_logged(handler: Any, chain: Any, context: Any, response: Any) -> None:
        if context.is_internal_call:
            loggers = (handler.internal_aws_logger, handler.internal_http_logger)
        else:
            loggers = (handler.aws_logger, handler.http_logger)
        if any(logger.isEnabledFor(logging.INFO) for logger in loggers):
            call(handler, chain, context, response)

    return call_when_logged


INTERNAL_PREFIX: Final = "/_localstack/"
"""Paths the internal resources answer, with 404 when no route matches."""
_SLASHES: Final = re.compile("/{2,}")


def fixed_beginnings(rules: Iterable[str]) -> tuple[str, ...]:
    """What every path a werkzeug rule of ``rules`` matches begins with: the rule up to its first
    variable part.

    >>> fixed_beginnings(["/_localstack/health", "/_localstack/init/<stage>"])
    ('/_localstack/health', '/_localstack/init/')
    """
    return tuple(rule.split("<", 1)[0] for rule in rules)


def may_route(raw_path: str, beginnings: tuple[str, ...]) -> bool:
    """Whether a request for ``raw_path`` could match a route of those ``beginnings``, or is
    one the internal resources answer themselves (404).

    >>> beginnings = ("/_localstack/health",)
    >>> [may_route(p, beginnings) for p in ("/", "//_localstack/health", "/_localstack/nope")]
    [False, True, True]
    """
    path = _SLASHES.sub("/", raw_path)
    return path.startswith(beginnings) or path.startswith(INTERNAL_PREFIX)


def skip_unroutable(call: Callable[..., None]) -> Callable[..., None]:
    """Wrap ``LocalstackResourceHandler.__call__``: match only a request that may route."""
    from rolo.request import get_raw_path  # type: ignore[import-not-found,unused-ignore]

    known: dict[str, Any] = {}

    def call_when_routable(handler: Any, chain: Any, context: Any, response: Any) -> None:
        url_map = handler.resources.url_map
        if known.get("map") is not url_map:
            known["beginnings"] = fixed_beginnings(rule.rule for rule in url_map.iter_rules())
            known["map"] = url_map
        if may_route(get_raw_path(context.request), known["beginnings"]):
            call(handler, chain, context, response)

    return call_when_routable


def apply_request_overhead_cuts() -> None:
    """Memoise every function of :data:`MEMOISED`, quiet the per-request log (idempotent)."""
    with _applied:
        for module_name, function_name, maxsize in MEMOISED:
            if not memoise(module_name, function_name, maxsize):
                LOG.warning("%s.%s not found; it is left as it is", module_name, function_name)
        quiet_request_log(os.environ)
        if not written_for_installed_release("unlogged responses"):
            return
        from localstack.aws.handlers.logging import (  # type: ignore[import-not-found,unused-ignore]
            ResponseLogger,
        )

        wrap_once(ResponseLogger, "__call__", skip_when_not_logged, "unlogged responses")
        from localstack.aws.handlers.internal import (  # type: ignore[import-not-found,unused-ignore]
            LocalstackResourceHandler,
        )

        wrap_once(LocalstackResourceHandler, "__call__", skip_unroutable, "internal routes")


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    # As in esm_tuning: registers the hook with plux, which resolves the entry point to it.
    _localstack_hooks.on_infra_start(name="lambdamesh_request_overhead")(
        apply_request_overhead_cuts
    )
