"""DynamoDB stream event source mappings that pick a record up as soon as it is written.

LocalStack 4.14.0's stream poller calls ``GetRecords`` again after every poll, empty or not,
``LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC`` later (0.01 s in the embedded runtime, for the
SQS pollers' sake): a fast hop, paid for by a hundred ``GetRecords`` a second per idle mapping.
AWS's own stream hop is about 200 ms. Here the stream's writer tells the pollers instead:

* :func:`install_stream_notifications` (called when the ``dynamodb:moto`` provider starts) wraps
  moto's ``StreamShard.add``, the one place a stream record is made: it announces every record
  (:func:`announce_record`) and drops the record of a write that changed nothing, which DynamoDB
  Streams never emits (a put of the same item, an update setting the values already there);
* :class:`WakingStreamPoller` wraps LocalStack's ``DynamoDBPoller``: after a poll that found no
  record it waits until a record is announced (or :data:`IDLE_WAIT_SECONDS` pass, or the mapping
  stops) before the next ``GetRecords``. :mod:`lambdamesh_localstack.esm_tuning` puts it around
  every DynamoDB stream mapping's poller.

An idle mapping then costs one ``GetRecords`` a second, and a write reaches the function in the
time of one poll and one invoke. Any table's record wakes every stream poller; those of other
tables find nothing and wait again.

Pure Python apart from the moto class it wraps: the announcement and the waiting poller are
tested without LocalStack.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, Final

from lambdamesh_localstack.stream_records import changes_nothing

LOG = logging.getLogger(__name__)

IDLE_WAIT_SECONDS: Final = 1.0
"""The longest an idle stream poller waits for an announcement before it polls anyway."""

_records_written = threading.Condition()
_generation = 0
_installed: list[bool] = []


def generation() -> int:
    """How many stream records have been announced so far (a poller's bookmark)."""
    with _records_written:
        return _generation


def announce_record() -> None:
    """Tell every waiting stream poller that a record was written."""
    global _generation
    with _records_written:
        _generation += 1
        _records_written.notify_all()


def wait_for_record(seen: int, timeout: float, stop: threading.Event | None = None) -> bool:
    """Wait until a record is announced after bookmark ``seen``; whether one was.

    Returns early, ``False``, once ``timeout`` seconds passed or ``stop`` is set (checked every
    tenth of a second while waiting).
    """
    deadline = timeout
    with _records_written:
        while _generation == seen:
            if stop is not None and stop.is_set():
                return False
            step = min(0.1, deadline) if stop is not None else deadline
            if step <= 0:
                return False
            _records_written.wait(step)
            deadline -= step
        return True


def notifying_add(original: Callable[..., None]) -> Callable[..., None]:
    """``StreamShard.add`` that skips a write changing nothing and announces every record."""

    @functools.wraps(original)
    def add(shard: Any, old: Any, new: Any) -> None:
        if changes_nothing(old, new):
            return
        original(shard, old, new)
        announce_record()

    return add


def install_stream_notifications() -> None:
    """Wrap moto's ``StreamShard.add`` (once per process)."""
    if _installed:
        return
    from moto.dynamodb.models.table import StreamShard

    StreamShard.add = notifying_add(StreamShard.add)  # type: ignore[method-assign]
    _installed.append(True)
    LOG.info("DynamoDB streams announce their records to the stream pollers")


class WakingStreamPoller:
    """LocalStack's DynamoDB stream poller, waiting for a write instead of polling when idle.

    Parameters
    ----------
    poller
        LocalStack's ``DynamoDBPoller`` for the mapping (its ``get_records`` is wrapped on the
        instance, to see whether a poll found anything).
    stop
        Set by LocalStack when the mapping is disabled or deleted or LocalStack shuts down.
    idle_wait_seconds
        The longest wait after an empty poll.
    wait
        How to wait (:func:`wait_for_record`; tests watch it).
    """

    def __init__(
        self,
        poller: Any,
        stop: threading.Event,
        idle_wait_seconds: float = IDLE_WAIT_SECONDS,
        wait: Callable[[int, float, threading.Event | None], bool] = wait_for_record,
    ) -> None:
        self._poller = poller
        self._stop = stop
        self._idle_wait_seconds = idle_wait_seconds
        self._wait = wait
        self._found: int | None = None
        get_records = poller.get_records

        def counted(shard_iterator: str) -> Any:
            response = get_records(shard_iterator)
            self._found = len(response.get("Records", []))
            return response

        poller.get_records = counted

    def __getattr__(self, name: str) -> Any:
        # Whatever LocalStack reads from its poller besides poll_events comes from the poller.
        return getattr(self._poller, name)

    def poll_events(self) -> None:
        """One poll; after one that found no record, wait for the next write."""
        seen = generation()
        self._found = None
        self._poller.poll_events()
        if self._found == 0:
            self._wait(seen, self._idle_wait_seconds, self._stop)
