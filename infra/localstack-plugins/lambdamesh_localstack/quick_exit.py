"""The emulator's process ends as soon as its orderly shutdown is done.

When LocalStack stops (``SIGTERM``: ``lambdamesh down``, the end of a test session), its
runtime stops every service, cleans its threads and temporary directory up, logs
``[shutdown] Completed, bye!`` and returns to ``main``, which calls ``sys.exit``. The
interpreter then tears down a heap of several hundred megabytes (moto's backends, botocore's
models, every module), object by object: ≈ 3 s of the 4 s `lambdamesh down` took with the
system deployed, sampled with py-spy (one thread left, no Python frame on it).

:func:`apply_quick_exit`, an ``on_infra_start`` hook, makes the runtime's last step
(``LocalstackRuntime._on_return``) flush the log handlers and the standard streams and end the
process with the runtime's exit code once the shutdown it ran was one that was asked for
(``stopping`` set). A runtime server that returns on its own (a crash) goes on to ``main`` as
before, where its exception is reported.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)

MODULE: Final = "localstack.runtime.runtime"
WHAT: Final = "quick exit"


def exiting_when_asked(
    exit_now: Callable[[int], None] = os._exit,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Wrap ``_on_return`` to end the process after it when the shutdown was asked for."""

    def wrap(on_return: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(on_return)
        def wrapped(self: Any) -> None:
            on_return(self)
            if not self.stopping.is_set():
                return
            logging.shutdown()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            exit_now(self.exit_code)

        return wrapped

    return wrap


def patch_runtime(module: ModuleType) -> None:
    """Make the module's ``LocalstackRuntime._on_return`` end the process (idempotent)."""
    wrap_once(getattr(module, "LocalstackRuntime", None), "_on_return", exiting_when_asked(), WHAT)


def apply_quick_exit() -> None:
    """Patch the runtime when its module is imported (``on_infra_start`` hook)."""
    patch_when_imported({MODULE: patch_runtime}, WHAT)


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_quick_exit")(apply_quick_exit)
