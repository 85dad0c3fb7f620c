"""Function logs into CloudWatch Logs without a request per invocation.

LocalStack 4.14.0 ships each invocation's logs with its own ``PutLogEvents`` call through an
internal boto3 client: request signing, serialisation, the gateway's handler chain and parsing,
for a call that ends in moto's logs backend in the same process. Measured on the embedded
LocalStack: 3.2 ms of the emulator's CPU per invocation, 44 % of a warm no-op invoke's cost.

:func:`apply_function_log_shipping`, an ``on_infra_start`` hook, replaces the shipping loop of
LocalStack's ``LogHandler`` (one per function version): it takes every log item queued so far,
groups them by log stream into batches within CloudWatch's limits (10 000 events, 1 MiB), and
puts each batch straight into moto's logs backend, creating the group and stream when missing,
as LocalStack's loop does. Subscription filters still fire (LocalStack patches moto's log
stream). When CloudWatch metrics are enabled and the group has metric filters, the batch goes
through LocalStack's ``PutLogEvents`` as before, so metric filters keep working.

Like :mod:`lambdamesh_localstack.esm_tuning`, LocalStack is imported only inside the functions
that run in the emulator; the batching is plain Python, tested without it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

LOG = logging.getLogger(__name__)

MAX_EVENTS_PER_PUT: Final = 10_000
"""CloudWatch Logs: at most 10 000 events in one ``PutLogEvents``."""
MAX_BYTES_PER_PUT: Final = 1_048_576
"""CloudWatch Logs: at most 1 MiB per ``PutLogEvents``, counting each message's UTF-8 bytes."""
EVENT_OVERHEAD_BYTES: Final = 26
"""CloudWatch Logs adds 26 bytes per event to the batch size."""
MAX_ITEMS_PER_ROUND: Final = 1000
"""Log items taken off the queue at most per round, so a flood cannot starve the batches."""


class LogItemLike(Protocol):
    """LocalStack's ``LogItem``: one invocation's logs for one log stream."""

    @property
    def log_group(self) -> str: ...

    @property
    def log_stream(self) -> str: ...

    @property
    def logs(self) -> str: ...


@dataclass
class LogBatch:
    """Events for one log stream, within one ``PutLogEvents``'s limits."""

    log_group: str
    log_stream: str
    events: list[dict[str, Any]] = field(default_factory=list)
    size_bytes: int = 0


def log_events(logs: str, timestamp_ms: int) -> list[dict[str, Any]]:
    """One event per non-empty line, newline kept, all at ``timestamp_ms`` (as LocalStack does)."""
    return [
        {"timestamp": timestamp_ms, "message": line + "\n"} for line in logs.split("\n") if line
    ]


def batch_log_items(items: Iterable[LogItemLike], timestamp_ms: int) -> list[LogBatch]:
    """Group the items' events by log stream into batches within CloudWatch's limits.

    Events keep their order within a stream; streams appear in the order first seen.
    """
    batches: list[LogBatch] = []
    open_batches: dict[tuple[str, str], LogBatch] = {}
    for item in items:
        key = (item.log_group, item.log_stream)
        for event in log_events(item.logs, timestamp_ms):
            size = len(event["message"].encode()) + EVENT_OVERHEAD_BYTES
            batch = open_batches.get(key)
            if (
                batch is None
                or len(batch.events) >= MAX_EVENTS_PER_PUT
                or batch.size_bytes + size > MAX_BYTES_PER_PUT
            ):
                batch = LogBatch(*key)
                open_batches[key] = batch
                batches.append(batch)
            batch.events.append(event)
            batch.size_bytes += size
    return batches


def take_queued[T](log_queue: queue.Queue[T], limit: int = MAX_ITEMS_PER_ROUND) -> list[T]:
    """Wait for one item, then take what else is queued already (up to ``limit`` in all)."""
    items = [log_queue.get()]
    while len(items) < limit:
        try:
            items.append(log_queue.get_nowait())
        except queue.Empty:
            break
    return items


def ship_log_items(
    items: Sequence[LogItemLike], put: Callable[[LogBatch], None], *, timestamp_ms: int
) -> None:
    """Put every batch of ``items``; a batch that fails is logged, the others still go."""
    for batch in batch_log_items(items, timestamp_ms):
        try:
            put(batch)
        except Exception as error:
            LOG.warning(
                "Error saving logs to group %s stream %s: %s",
                batch.log_group,
                batch.log_stream,
                error,
            )


def _backend_put(account_id: str, region: str, fallback: Callable[[LogBatch], None]) -> Any:
    """A ``put`` writing a batch into moto's logs backend of ``account_id``/``region``."""
    from localstack.services.logs.models import (  # type: ignore[import-not-found,unused-ignore]
        get_moto_logs_backend,
    )
    from localstack.utils.bootstrap import (  # type: ignore[import-not-found,unused-ignore]
        is_api_enabled,
    )
    from moto.logs.exceptions import (  # type: ignore[import-not-found,unused-ignore]
        ResourceAlreadyExistsException,
        ResourceNotFoundException,
    )

    def put(batch: LogBatch) -> None:
        backend = get_moto_logs_backend(account_id, region)
        if is_api_enabled("cloudwatch") and backend.filters.metric_filters:
            fallback(batch)  # LocalStack's PutLogEvents turns metric filters into metrics
            return
        try:
            backend.put_log_events(batch.log_group, batch.log_stream, batch.events)
        except ResourceNotFoundException:
            with contextlib.suppress(ResourceAlreadyExistsException):
                backend.create_log_group(batch.log_group, tags={})
            with contextlib.suppress(ResourceAlreadyExistsException):
                backend.create_log_stream(batch.log_group, batch.log_stream)
            backend.put_log_events(batch.log_group, batch.log_stream, batch.events)

    return put


def _client_put(handler: Any) -> Callable[[LogBatch], None]:
    """A ``put`` through LocalStack's ``PutLogEvents``, with the function's role, created lazily."""
    client: list[Any] = []

    def put(batch: LogBatch) -> None:
        if not client:
            from localstack.aws.connect import (  # type: ignore[import-not-found,unused-ignore]
                connect_to,
            )
            from localstack.utils.aws.client_types import (  # type: ignore[import-not-found,unused-ignore]
                ServicePrincipal,
            )

            client.append(
                connect_to.with_assumed_role(
                    region_name=handler.region,
                    role_arn=handler.role_arn,
                    # LocalStack's own call passes the same str constant.
                    service_principal=ServicePrincipal.lambda_,  # type: ignore[arg-type,unused-ignore]
                ).logs
            )
        client[0].put_log_events(
            logGroupName=batch.log_group, logStreamName=batch.log_stream, logEvents=batch.events
        )

    return put


def run_log_loop(handler: Any, *args: Any, **kwargs: Any) -> None:
    """``LogHandler.run_log_loop``, shipping what is queued in batches straight to moto."""
    from localstack.services.lambda_.invocation.logs import (  # type: ignore[import-not-found,unused-ignore]
        QUEUE_SHUTDOWN,
    )

    account_id = str(handler.role_arn).split(":")[4]  # arn:aws:iam::<account>:role/<name>
    put = _backend_put(account_id, handler.region, _client_put(handler))
    while not handler._shutdown_event.is_set():
        items = take_queued(handler.log_queue)
        logs = [item for item in items if item is not QUEUE_SHUTDOWN]
        ship_log_items(logs, put, timestamp_ms=int(time.time() * 1000))
        if len(logs) < len(items):
            return


_applied = threading.Lock()
_patched: list[object] = []


def apply_function_log_shipping() -> None:
    """Replace ``LogHandler.run_log_loop`` (``on_infra_start`` hook, LocalStack 4.14.0 only).

    Raises
    ------
    UnsupportedLocalStackVersionError
        If LocalStack is not the version this patch was written for.
    """
    from lambdamesh_localstack.esm_tuning import (
        check_localstack_version,
        installed_localstack_version,
    )

    check_localstack_version(installed_localstack_version())
    from localstack.services.lambda_.invocation.logs import (  # type: ignore[import-not-found,unused-ignore]
        LogHandler,
    )
    from localstack.utils.patch import Patch  # type: ignore[import-not-found,unused-ignore]

    with _applied:
        if _patched:
            return
        patch = Patch.function(LogHandler.run_log_loop, run_log_loop, pass_target=False)
        patch.apply()
        _patched.append(patch)
    LOG.info("Function logs go to CloudWatch Logs in batches, straight into its backend")


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    # As in esm_tuning: registers the hook with plux, which resolves the entry point to it.
    _localstack_hooks.on_infra_start(name="lambdamesh_function_logs")(apply_function_log_shipping)
