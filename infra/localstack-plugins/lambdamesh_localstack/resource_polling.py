"""CloudFormation polls a resource that is still being made every 50 ms, not every second.

LocalStack's CloudFormation engine (``ResourceProviderExecutor.deploy_loop``) calls a resource's
handler again while it answers ``IN_PROGRESS``: five times at once, then once a second. A Lambda
function is ``IN_PROGRESS`` until it is ``Active``, which takes 30-45 ms on the embedded runtime,
past the five quick calls: every function of a stack cost a whole second, ≈ 24 s of a 32 s
deploy of the system. AWS's own pace is for resources that take seconds to minutes; here they
take milliseconds.

:func:`apply_resource_polling`, an ``on_infra_start`` hook, makes the loop's pause
:data:`POLL_INTERVAL_S` for every call that does not choose its own (the engine's callers do
not), keeping its timeout (``CFN_PER_RESOURCE_TIMEOUT``): the loop computes its number of tries
from both.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)

POLL_INTERVAL_S: Final = 0.05
"""The pause between two calls of a resource handler that answered ``IN_PROGRESS``."""

MODULE: Final = "localstack.services.cloudformation.resource_provider"
WHAT: Final = "resource polling"


def polling_every(
    interval_s: float,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wrap ``deploy_loop`` so that its ``sleep_time`` is ``interval_s`` unless a caller sets it.

    >>> def deploy_loop(self, provider, resource, payload, max_timeout=300, sleep_time=1.0):
    ...     return sleep_time
    >>> wrapped = polling_every(0.05)(deploy_loop)
    >>> wrapped(None, "p", {}, {}), wrapped(None, "p", {}, {}, sleep_time=2.0)
    (0.05, 2.0)
    """

    def wrap(deploy_loop: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(deploy_loop)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if len(args) < 6:  # self, provider, resource, payload, max_timeout, sleep_time
                kwargs.setdefault("sleep_time", interval_s)
            return deploy_loop(*args, **kwargs)

        return wrapped

    return wrap


def patch_resource_provider(module: ModuleType) -> None:
    """Shorten the pause of the module's ``ResourceProviderExecutor.deploy_loop`` (idempotent)."""
    wrap_once(
        getattr(module, "ResourceProviderExecutor", None),
        "deploy_loop",
        polling_every(POLL_INTERVAL_S),
        WHAT,
    )


def apply_resource_polling() -> None:
    """Patch the executor when its module is imported (``on_infra_start`` hook)."""
    patch_when_imported({MODULE: patch_resource_provider}, WHAT)


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_resource_polling")(apply_resource_polling)
