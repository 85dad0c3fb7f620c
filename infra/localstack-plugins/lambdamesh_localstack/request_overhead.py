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
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
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


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    # As in esm_tuning: registers the hook with plux, which resolves the entry point to it.
    _localstack_hooks.on_infra_start(name="lambdamesh_request_overhead")(
        apply_request_overhead_cuts
    )
