"""A function's asynchronous-invocation poller stops at once (no LocalStack)."""

from __future__ import annotations

import queue
import threading
from types import ModuleType, SimpleNamespace
from typing import Any

from lambdamesh_localstack.event_poller_stops import patch_event_manager

LONG_POLL_S = 600.0
"""Longer than any test may wait: a poller still in its long poll is a poller not stopped."""


class EventQueue:
    """An in-memory queue whose shutdown makes a blocked receive return empty at once."""

    def __init__(self) -> None:
        self.items: queue.Queue[str] = queue.Queue()
        self.shut_down = False

    def receive(self) -> str | None:
        try:
            return self.items.get(timeout=LONG_POLL_S)
        except (queue.Empty, queue.ShutDown):
            return None

    def shutdown(self) -> None:
        self.shut_down = True
        self.items.shutdown()


class Poller:
    """LocalStack's poller: receives from its queue until asked to stop."""

    def __init__(self, event_queue: EventQueue) -> None:
        self.event_queue = event_queue
        self.shutdown_event = threading.Event()

    def run(self) -> None:
        while not self.shutdown_event.is_set():
            self.event_queue.receive()

    def stop(self) -> None:
        self.shutdown_event.set()


class LambdaEventManager:
    """LocalStack's event manager, as far as stopping goes."""

    queues: dict[str, EventQueue]
    """The in-memory queues, by URL (a fresh dict per module)."""

    def __init__(self, queue_url: str) -> None:
        self.queues[queue_url] = EventQueue()
        self.version_manager = SimpleNamespace(function_version="fn:$LATEST")
        self.lifecycle_lock = threading.RLock()
        self.stopped = threading.Event()
        self.event_queue_url = queue_url
        self.poller: Poller | None = Poller(self.queues[queue_url])
        self.poller_thread = threading.Thread(target=self.poller.run, daemon=True)
        self.poller_thread.start()

    def _stop_poller(self) -> None:
        self.stopped.set()
        if self.poller is not None:
            self.poller.stop()
            # LocalStack gives up after 3 s; far longer here, for a stalled worker may take
            # seconds to end even a poller that was interrupted (still far short of its long poll)
            self.poller_thread.join(timeout=30)
            self.poller = None

    def stop(self) -> None:
        """LocalStack's: stop the poller, then delete its queue."""
        with self.lifecycle_lock:
            if self.stopped.is_set():
                return
            self._stop_poller()
            del self.queues[self.event_queue_url]

    def stop_for_update(self) -> None:
        """LocalStack's: the queue stays for the function's next version."""
        with self.lifecycle_lock:
            if not self.stopped.is_set():
                self._stop_poller()


def event_manager_module() -> tuple[ModuleType, dict[str, EventQueue]]:
    """A module shaped as LocalStack's ``event_manager``, with queues of its own."""
    queues: dict[str, EventQueue] = {}
    module = ModuleType("event_manager")
    client = SimpleNamespace(
        queue_manager=SimpleNamespace(get_queue=lambda queue_name: queues[queue_name])
    )
    module.get_sqs_client = lambda function_version, client_config=None: client  # type: ignore[attr-defined]
    module.LambdaEventManager = type(  # type: ignore[attr-defined]
        "LambdaEventManager", (LambdaEventManager,), {"queues": queues}
    )
    return module, queues


def test_stopping_a_function_ends_its_pollers_long_poll_at_once() -> None:
    # GIVEN the module patched (twice) and a function whose poller waits in its long poll
    module, queues = event_manager_module()
    patch_event_manager(module)
    patch_event_manager(module)
    manager: Any = module.LambdaEventManager("fn-queue")
    thread = manager.poller_thread
    # WHEN the function is stopped
    manager.stop()
    # THEN its poller has ended (without the patch, stop returns after its join gives up, with
    # the poller still waiting), and the queue is gone as LocalStack leaves it
    assert not thread.is_alive()
    assert "fn-queue" not in queues
    # AND stopping it again changes nothing
    manager.stop()


def test_an_update_keeps_the_queue_for_the_next_version() -> None:
    # GIVEN the module patched and a function with its poller
    module, queues = event_manager_module()
    patch_event_manager(module)
    manager: Any = module.LambdaEventManager("fn-queue-2")
    queues["fn-queue-2"].items.put("event")  # the poller takes this one, then waits again
    # WHEN it is stopped for an update of the function
    manager.poller.stop()
    queues["fn-queue-2"].items.put("wakes the poller")
    manager.stop_for_update()
    # THEN its queue is neither shut down nor deleted: the next version's poller reads it
    assert not queues["fn-queue-2"].shut_down
    queues["fn-queue-2"].items.put("for the next version")
    assert queues["fn-queue-2"].receive() is not None
