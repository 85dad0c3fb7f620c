"""A function's asynchronous-invocation poller stops at once, not after its 2 s long poll.

Each function version has an event manager whose poller thread long-polls an in-memory queue of
asynchronous invocations (``WaitTimeSeconds=2``). ``LambdaEventManager.stop`` asks the poller to
stop, joins its thread for up to 3 s, then deletes the queue; the poller only sees the request
once its current long poll ends. LocalStack stops the event managers five at a time when it
shuts down, so a deployed system of 25 functions took ≈ 10 s to stop (measured: 9.8 s after a
deploy and one order; 2.5 s with nothing deployed) — the end of every test session and of every
``lambdamesh down``.

:func:`apply_event_poller_stops`, an ``on_infra_start`` hook, makes ``stop`` first stop the
poller and shut the queue down (a blocked receive returns empty at once), then do what it did.
Only ``stop`` does, the path that deletes the queue anyway: ``stop_for_update`` keeps the queue
for the function's next version and is left as it is.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)

LOG = logging.getLogger(__name__)

MODULE: Final = "localstack.services.lambda_.invocation.event_manager"
WHAT: Final = "event poller stops"


def interrupt_long_poll(module: ModuleType, manager: Any) -> None:
    """Stop ``manager``'s poller and shut its queue down, so that its long poll ends now."""
    poller, queue_url = manager.poller, manager.event_queue_url
    if poller is None or not queue_url or manager.stopped.is_set():
        return
    try:
        client = module.get_sqs_client(manager.version_manager.function_version)
        queue = client.queue_manager.get_queue(queue_name=queue_url)
    except (AttributeError, ValueError) as error:  # another client, or the queue already gone
        LOG.debug("event queue %s not interrupted: %s", queue_url, error)
        return
    poller.stop()  # first, so that the poller leaves its loop once its receive returns
    queue.shutdown()


def stopping_at_once(module: ModuleType) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Wrap ``LambdaEventManager.stop`` to interrupt the poller's long poll first."""

    def wrap(stop: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(stop)
        def wrapped(self: Any) -> None:
            with self.lifecycle_lock:
                interrupt_long_poll(module, self)
                stop(self)

        return wrapped

    return wrap


def patch_event_manager(module: ModuleType) -> None:
    """Make the module's ``LambdaEventManager.stop`` interrupt the poller (idempotent)."""
    wrap_once(getattr(module, "LambdaEventManager", None), "stop", stopping_at_once(module), WHAT)


def apply_event_poller_stops() -> None:
    """Patch the event manager when its module is imported (``on_infra_start`` hook)."""
    patch_when_imported({MODULE: patch_event_manager}, WHAT)


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_event_poller_stops")(apply_event_poller_stops)
