"""SQS event source mappings that pick messages up the way AWS's do.

LocalStack 4.14.0's SQS poller short-polls when ``MaximumBatchingWindowInSeconds`` is 0, sleeps
``LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC`` (1 s) after every batch, pauses 0.5-1.5 s or
more after every empty poll, and hands one batch at a time to the function: an idle hop takes
0.4-10 s and a mapping delivers about ten messages a second. AWS long-polls, invokes the function
as soon as a message arrives (or fills the batch for up to the batching window) and starts with
five batches in flight. This module closes that gap:

* :data:`POLLER_SETTINGS` are the LocalStack settings the launcher puts in the emulator's
  environment (:func:`poller_environment` lets the user's own values win);
* :func:`apply_esm_tuning`, an ``on_infra_start`` hook, wraps the poller of every SQS event source
  mapping in :class:`LongPollingSqsPoller`.

LocalStack has no extension point for its SQS poller (its ``create_event_source_poller`` hook only
runs for sources it does not know), so the hook patches one method,
``EsmWorkerFactory.get_esm_worker``, and refuses to start on any LocalStack but the one it was
written for (:func:`check_localstack_version`).

This module imports LocalStack only inside the functions that run in the emulator, so that the
settings and the pure helpers can be imported (and tested) without it.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Self

from lambdamesh_localstack import stream_bisect
from lambdamesh_localstack.stream_wakeup import WakingStreamPoller

BATCH_THREAD_PREFIX: Final = "esm-batch-"
"""What the threads of a mapping's batches in flight are named after (with the mapping's id)."""

LOG = logging.getLogger(__name__)

EXPECTED_LOCALSTACK_VERSION: Final = "4.14.0"
"""The ``localstack-core`` release whose event source mapping internals this module patches."""

LONG_POLL_SECONDS_VARIABLE: Final = "LAMBDAMESH_ESM_SQS_LONG_POLL_SEC"
CONCURRENCY_VARIABLE: Final = "LAMBDAMESH_ESM_SQS_CONCURRENCY"

POLLER_SETTINGS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # Pause after a poll that delivered records. LocalStack's 1 s default caps a mapping at
        # one batch a second. Our SQS poller waits inside its long poll when the queue is empty,
        # so a short pause cannot make it spin; it only paces a busy poller.
        "LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC": "0.01",
        # Longest pause after an empty poll, for the pollers left as LocalStack wrote them
        # (DynamoDB and Kinesis streams). Their first pause is fixed at 0.5-1.5 s; the default
        # 10 s cap would let an idle stream hold a record for up to 15 s.
        "LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_EMPTY_POLL_SEC": "1",
        # Longest pause after a failing poll (say, a queue deleted under its mapping); the 60 s
        # default makes a mapping look dead long after the cause is gone.
        "LAMBDA_EVENT_SOURCE_MAPPING_MAX_BACKOFF_ON_ERROR_SEC": "5",
        # Every ReceiveMessage, empty or not, otherwise publishes CloudWatch metrics through a
        # second internal request: the largest cost of an idle long-polling mapping. Nothing in
        # lambdamesh reads SQS metrics from the emulator.
        "SQS_DISABLE_CLOUDWATCH_METRICS": "1",
        # LocalStack's own clients (a poller's ReceiveMessage, DeleteMessageBatch and Invoke, SNS
        # delivering to SQS) call the gateway in memory instead of over HTTP to itself. Measured
        # here: about 25 % more messages per second through a mapping and half the idle CPU of
        # ten long-polling mappings; the whole e2e suite passes with it. It applies to every
        # internal call, not only to mappings.
        "IN_MEMORY_CLIENT": "1",
        # WaitTimeSeconds of each long poll (whole seconds, 1-20). A message is picked up as soon
        # as it arrives whatever the value; it bounds how long a disabled, deleted or shut-down
        # mapping may still hold a poll open, and sets the idle cost: one request per mapping per
        # long poll.
        LONG_POLL_SECONDS_VARIABLE: "2",
        # Batches of one mapping in flight at once when the mapping sets no
        # ScalingConfig.MaximumConcurrency: AWS starts every SQS mapping with five pollers.
        CONCURRENCY_VARIABLE: "5",
    }
)
"""Emulator environment for fast event source mappings, each value documented where it is set."""


def poller_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return :data:`POLLER_SETTINGS`, keeping every value the user's environment already sets.

    Parameters
    ----------
    environ
        The user's environment; ``os.environ`` when omitted.

    Returns
    -------
    dict[str, str]
        Variables to put into the emulator's environment.
    """
    source = os.environ if environ is None else environ
    return {name: source.get(name, default) for name, default in POLLER_SETTINGS.items()}


class UnsupportedLocalStackVersionError(RuntimeError):
    """The installed LocalStack is not the release the event source mapping patch targets."""


def check_localstack_version(installed: str, expected: str = EXPECTED_LOCALSTACK_VERSION) -> None:
    """Refuse to patch a LocalStack whose internals may differ from the ones the patch expects.

    Parameters
    ----------
    installed
        Version of the installed ``localstack-core`` distribution.
    expected
        The version the patch was written for.

    Raises
    ------
    UnsupportedLocalStackVersionError
        If ``installed`` differs from ``expected``; the message names both.
    """
    if installed != expected:
        raise UnsupportedLocalStackVersionError(
            f"lambdamesh's event source mapping tuning patches LocalStack internals written for "
            f"localstack-core {expected}, but localstack-core {installed} is installed. Install "
            f"localstack-core=={expected} (pinned in infra/emulator/requirements.txt), or review "
            f"lambdamesh_localstack/esm_tuning.py against the new version and update "
            f"EXPECTED_LOCALSTACK_VERSION."
        )


def installed_localstack_version() -> str:
    """Return the version of the installed ``localstack-core`` distribution."""
    return importlib.metadata.version("localstack-core")


@dataclass(frozen=True, slots=True)
class SqsPollingOptions:
    """How every SQS event source mapping polls.

    Attributes
    ----------
    long_poll_seconds
        ``WaitTimeSeconds`` of each receive, 1-20.
    default_concurrency
        Batches in flight per mapping without ``ScalingConfig.MaximumConcurrency``.
    """

    long_poll_seconds: int = 2
    default_concurrency: int = 5

    def __post_init__(self) -> None:
        if not 1 <= self.long_poll_seconds <= 20:
            raise ValueError(
                f"{LONG_POLL_SECONDS_VARIABLE} must be a whole number of seconds from 1 to 20, "
                f"got {self.long_poll_seconds}"
            )
        if self.default_concurrency < 1:
            raise ValueError(
                f"{CONCURRENCY_VARIABLE} must be at least 1, got {self.default_concurrency}"
            )

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the options from the emulator's environment, defaulting to :data:`POLLER_SETTINGS`.

        Raises
        ------
        ValueError
            If a variable is not a whole number in its range.
        """
        settings = poller_environment(environ)
        try:
            return cls(
                long_poll_seconds=int(settings[LONG_POLL_SECONDS_VARIABLE]),
                default_concurrency=int(settings[CONCURRENCY_VARIABLE]),
            )
        except ValueError as error:
            raise ValueError(f"invalid event source mapping setting: {error}") from error


def batch_concurrency(esm_config: Mapping[str, Any], default: int) -> int:
    """Return how many batches of a mapping may be in flight at once.

    Parameters
    ----------
    esm_config
        The event source mapping as the Lambda API describes it.
    default
        Used when the mapping sets no ``ScalingConfig.MaximumConcurrency``.
    """
    maximum = (esm_config.get("ScalingConfig") or {}).get("MaximumConcurrency")
    return int(maximum) if maximum else default


# LocalStack splits larger batches into invocations of at most this many records, to stay under
# Lambda's 6 MB payload limit; we keep its figure.
MAX_RECORDS_PER_INVOCATION: Final = 2500
# SQS's own limit for MaxNumberOfMessages; larger batches go through LocalStack's override hook.
MAX_MESSAGES_PER_RECEIVE: Final = 10
# WaitTimeSeconds counts whole seconds; the last fraction of a batching window is waited out in
# slices this long (only while a batch is being filled, never on an idle queue).
WINDOW_TAIL_SLICE_SECONDS: Final = 0.05
# A pause after every poll above this makes a start-up warning: pickup and throughput suffer.
SLOW_POLL_INTERVAL_SECONDS: Final = 0.1


class LongPollingSqsPoller:
    """SQS poller that long-polls and keeps several batches of one mapping in flight.

    It wraps LocalStack's ``SqsPoller`` and reuses its client (with its hooks for batches above
    ten messages) and its per-batch processing (filtering, invoking, partial batch responses,
    deleting). LocalStack's ``EsmWorker`` calls :meth:`poll_events` in a loop on one thread; each
    call reserves the free slots, receives at most one batch per slot and hands every batch to a
    thread of its own, so up to ``concurrency`` batches run at once and the loop never holds
    messages it has no slot for.

    FIFO queues stay in order per message group: SQS does not hand out messages of a group while
    earlier messages of that group are in flight, and a FIFO receive fills a single batch, so two
    concurrent batches never hold the same group. A batch goes to the function whole, several
    message groups in it each in the order received, as on AWS (where handlers skip the rest of a
    group after a failure, e.g. with Powertools' ``SqsFifoPartialProcessor(skip_group_on_error)``).
    LocalStack 4.14.0 invokes the function once per message group instead: with one group per
    order, one invocation per message.

    Parameters
    ----------
    poller
        LocalStack's ``SqsPoller`` for the mapping.
    esm_config
        The event source mapping as the Lambda API describes it.
    stop
        Set by LocalStack when the mapping is disabled or deleted or LocalStack shuts down.
    options
        Long poll duration and default concurrency.
    """

    def __init__(
        self,
        poller: Any,
        esm_config: Mapping[str, Any],
        stop: threading.Event,
        options: SqsPollingOptions,
    ) -> None:
        self._poller = poller
        self._stop = stop
        self._long_poll_seconds = options.long_poll_seconds
        self._batch_size = int(esm_config.get("BatchSize") or MAX_MESSAGES_PER_RECEIVE)
        self._window_seconds = float(esm_config.get("MaximumBatchingWindowInSeconds") or 0)
        self.concurrency = batch_concurrency(esm_config, options.default_concurrency)
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._name = f"{BATCH_THREAD_PREFIX}{esm_config.get('UUID', '')}"

    def __getattr__(self, name: str) -> Any:
        # Anything LocalStack reads from its poller that this class does not replace (its
        # source ARN, processor, ...) comes from the poller it wraps.
        return getattr(self._poller, name)

    def poll_events(self) -> None:
        """Receive a batch for every free slot and start processing them.

        Returns after one long poll when the queue stays empty. It never raises LocalStack's
        ``EmptyPollResultsException``: an empty long poll already waited, and the worker's
        empty-poll backoff would only delay the next message.
        """
        if not self._slots.acquire(timeout=self._long_poll_seconds):
            # Every slot busy: return so the worker loop can look at its stop flag.
            return
        slots = 1
        try:
            slots += self._take_free_slots()
            batches = self._receive_batches(slots)
            for batch in batches:
                threading.Thread(
                    target=self._process_batch, args=(batch,), name=self._name, daemon=True
                ).start()
                slots -= 1
        finally:
            for _ in range(slots):
                self._slots.release()

    def close(self) -> None:
        """Close the wrapped poller; batches still in flight finish on their own threads."""
        self._poller.close()

    def _take_free_slots(self) -> int:
        # One receive for every free slot: on a busy queue that saves a request per batch. Not
        # for FIFO queues, where SQS only keeps a message group out of other receives, not out
        # of the other batches of the same receive.
        if self._poller.is_fifo_queue:
            return 0
        taken = 0
        while taken < self.concurrency - 1 and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _receive_batches(self, slots: int) -> list[list[dict[str, Any]]]:
        # AWS: with no batching window, invoke as soon as records are available; with one,
        # gather until the batch is full or the window (counted from the first record) ends.
        size = self._batch_size
        messages = self._receive(size * slots, self._long_poll_seconds)
        if messages and len(messages) < size and self._window_seconds > 0:
            messages = self._fill_batch(messages)
        return [messages[start : start + size] for start in range(0, len(messages), size)]

    def _fill_batch(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self._window_seconds
        while len(messages) < self._batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            wait = min(self._long_poll_seconds, int(remaining))
            more = self._receive(self._batch_size - len(messages), wait)
            messages.extend(more)
            if not more and wait == 0:
                self._stop.wait(min(remaining, WINDOW_TAIL_SLICE_SECONDS))
        return messages

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._poller.source_client.receive_message(
            QueueUrl=self._poller.queue_url,
            MaxNumberOfMessages=min(count, MAX_MESSAGES_PER_RECEIVE),
            WaitTimeSeconds=wait_seconds,
            MessageAttributeNames=["All"],
            MessageSystemAttributeNames=["All"],
            # LocalStack's client hook turns counts above ten into its override header.
            sqs_override_max_message_count=count,
        )
        return list(response.get("Messages", []))

    def _process_batch(self, messages: list[dict[str, Any]]) -> None:
        try:
            for chunk in itertools.batched(messages, MAX_RECORDS_PER_INVOCATION, strict=False):
                self._process_chunk(list(chunk))
        finally:
            self._slots.release()

    def _process_chunk(self, messages: list[dict[str, Any]]) -> None:
        try:
            self._poller.handle_messages(messages)
        except Exception as error:
            # The same handling as LocalStack's poller: messages not deleted become visible
            # again after the visibility timeout and are retried, then redriven to the DLQ.
            LOG.warning(
                "Processing a batch from %s failed: %s: %s",
                self._poller.source_arn,
                type(error).__name__,
                error,
                exc_info=True,
            )


_applied = threading.Lock()
_patched: list[object] = []


def apply_esm_tuning() -> None:
    """Make every SQS event source mapping long-poll with concurrent batches, and every
    DynamoDB stream mapping wait for a write when idle (:mod:`.stream_wakeup`) and bisect a
    batch its function fails on when it asks to (:mod:`.stream_bisect`).

    Runs as LocalStack's ``on_infra_start`` hook, before any mapping is created or restored.

    Raises
    ------
    UnsupportedLocalStackVersionError
        If LocalStack is not the version this patch was written for; LocalStack then stops at
        start-up with this message.
    ValueError
        If a ``LAMBDAMESH_ESM_SQS_*`` setting is invalid.
    """
    check_localstack_version(installed_localstack_version())
    options = SqsPollingOptions.from_environment()

    from localstack.services.lambda_.event_source_mapping.esm_worker_factory import (  # type: ignore[import-not-found,unused-ignore]
        EsmWorkerFactory,
    )
    from localstack.services.lambda_.event_source_mapping.pollers.dynamodb_poller import (  # type: ignore[import-not-found,unused-ignore]
        DynamoDBPoller,
    )
    from localstack.services.lambda_.event_source_mapping.pollers.sqs_poller import (  # type: ignore[import-not-found,unused-ignore]
        SqsPoller,
    )
    from localstack.utils.patch import Patch  # type: ignore[import-not-found,unused-ignore]

    def get_esm_worker(original: Callable[[Any], Any], factory: Any) -> Any:
        worker = original(factory)
        if isinstance(worker.poller, SqsPoller):
            # EsmWorker sets _shutdown_event on disable, delete and shutdown (4.14.0).
            worker.poller = LongPollingSqsPoller(
                worker.poller, worker.esm_config, worker._shutdown_event, options
            )
        elif isinstance(worker.poller, DynamoDBPoller):
            stream_bisect.install(worker.poller, worker.esm_config)
            worker.poller = WakingStreamPoller(worker.poller, worker._shutdown_event)
        return worker

    with _applied:
        if _patched:
            return
        patch = Patch.function(EsmWorkerFactory.get_esm_worker, get_esm_worker)
        patch.apply()
        _patched.append(patch)
    LOG.info(
        "SQS event source mappings long-poll (%d s) with %d batches in flight by default",
        options.long_poll_seconds,
        options.default_concurrency,
    )
    from localstack import config  # type: ignore[import-not-found,unused-ignore]

    pause = float(config.LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC)
    if pause > SLOW_POLL_INTERVAL_SECONDS:
        # EsmWorker still pauses this long after every poll, empty or not.
        LOG.warning(
            "LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC=%g: every SQS mapping pauses that long "
            "between receives; lambdamesh sets it to %s",
            pause,
            POLLER_SETTINGS["LAMBDA_EVENT_SOURCE_MAPPING_POLL_INTERVAL_SEC"],
        )


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by the launcher or unit tests
    pass
else:
    # The decorator registers the function with plux (it returns the function unchanged); plux
    # resolves the entry point to it and LocalStack runs it before starting its services.
    _localstack_hooks.on_infra_start(name="lambdamesh_esm_tuning")(apply_esm_tuning)
