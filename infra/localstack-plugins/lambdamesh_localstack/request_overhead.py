"""Two pure functions the emulator recomputes on every request, remembered instead.

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
"""

from __future__ import annotations

import functools
import importlib
import logging
import threading
from typing import Any, Final

LOG = logging.getLogger(__name__)

MEMOISED: Final = (
    ("moto.core.responses", "method_names_from_class", 512),
    ("twisted.web.http", "_parseContentType", 256),
)
"""(module, function, cache size) of every function memoised."""

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


def apply_request_overhead_cuts() -> None:
    """Memoise every function of :data:`MEMOISED` (idempotent)."""
    with _applied:
        for module_name, function_name, maxsize in MEMOISED:
            if not memoise(module_name, function_name, maxsize):
                LOG.warning("%s.%s not found; it is left as it is", module_name, function_name)


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    # As in esm_tuning: registers the hook with plux, which resolves the entry point to it.
    _localstack_hooks.on_infra_start(name="lambdamesh_request_overhead")(
        apply_request_overhead_cuts
    )
