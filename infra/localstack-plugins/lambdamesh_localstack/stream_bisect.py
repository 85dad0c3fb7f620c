"""``BisectBatchOnFunctionError`` for DynamoDB stream event source mappings.

AWS: when the function fails on a batch and the mapping sets ``BisectBatchOnFunctionError``,
Lambda splits the batch in two and retries each half on its own, so a poison record ends up
alone, is retried ``MaximumRetryAttempts`` times and goes to the on-failure destination by
itself, while the records around it are delivered. LocalStack 4.14.0 accepts the setting and
ignores it: the whole batch is retried, then the whole batch is discarded.

:class:`BisectingForwarder` replaces a stream poller's ``forward_events_to_target`` (records of
one shard → the function, with retries and the on-failure destination) for mappings that set
it: a batch of more than one record is first tried once; if the function fails on it, each half
goes through the forwarder again; a single record, or a batch whose failure the function
reported record by record (``ReportBatchItemFailures``), goes to LocalStack's own forwarding,
with its retries, record age and on-failure destination. :mod:`lambdamesh_localstack.esm_tuning`
installs it. Plain Python: the LocalStack pieces are passed in, and tests pass stand-ins.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

Records = Sequence[dict[str, Any]]


class BisectingForwarder:
    """A stream poller's forwarding, bisecting a batch the function failed on.

    Parameters
    ----------
    forward
        LocalStack's ``forward_events_to_target(shard_id, records)``: invokes with retries and
        sends what exhausts them to the on-failure destination.
    try_once
        Invokes the function once with the records (filtered and shaped as the forwarding
        would); raises ``function_error`` when the function failed on the whole batch,
        ``partial_failure`` when it reported failed records.
    failed_from
        From a ``partial_failure``: the sequence number of the first record to retry, or
        ``None`` when its report names none of the batch (then the whole batch failed).
    sequence_of
        A record's sequence number.
    function_error, partial_failure
        LocalStack's ``BatchFailureError`` and ``PartialBatchFailureError``.
    """

    def __init__(
        self,
        forward: Callable[[str, Records], None],
        try_once: Callable[[str, Records], None],
        failed_from: Callable[[BaseException, Records], str | None],
        sequence_of: Callable[[dict[str, Any]], str],
        function_error: type[BaseException],
        partial_failure: type[BaseException],
    ) -> None:
        self._forward = forward
        self._try_once = try_once
        self._failed_from = failed_from
        self._sequence_of = sequence_of
        self._function_error = function_error
        self._partial_failure = partial_failure

    def __call__(self, shard_id: str, records: Records) -> None:
        """Deliver ``records`` (one shard's, in order), bisecting on a function error."""
        if len(records) <= 1:
            self._forward(shard_id, records)
            return
        try:
            self._try_once(shard_id, records)
        except self._partial_failure as reported:
            first = self._failed_from(reported, records)
            if first is not None:
                # The function named its failed records: retry from the first, as LocalStack does.
                self._forward(shard_id, self._from_sequence(records, first))
                return
            self._bisect(shard_id, records)
        except self._function_error:
            self._bisect(shard_id, records)

    def _bisect(self, shard_id: str, records: Records) -> None:
        middle = len(records) // 2
        self(shard_id, records[:middle])
        self(shard_id, records[middle:])

    def _from_sequence(self, records: Records, sequence: str) -> Records:
        for index, record in enumerate(records):
            if self._sequence_of(record) == sequence:
                return records[index:]
        return records


def install(poller: Any, esm_config: Any) -> None:
    """Put a :class:`BisectingForwarder` in a LocalStack stream poller whose mapping sets
    ``BisectBatchOnFunctionError`` (a no-op for one that does not). The setting is read from
    the mapping itself: LocalStack leaves it out of the poller's parameters."""
    if not esm_config.get("BisectBatchOnFunctionError"):
        return
    from localstack.services.lambda_.event_source_mapping.event_processor import (  # type: ignore[import-not-found,unused-ignore]
        BatchFailureError,
        PartialBatchFailureError,
    )
    from localstack.services.lambda_.event_source_mapping.pollers.poller import (  # type: ignore[import-not-found,unused-ignore]
        get_batch_item_failures,
    )

    def try_once(shard_id: str, records: Records) -> None:
        # LocalStack's transformation changes the records it is given (timestamps to numbers):
        # the originals stay as they are for the forwarding that may follow.
        events = poller.transform_into_events(copy.deepcopy(list(records)), shard_id)
        events = poller.post_filter(poller.filter_events(poller.pre_filter(events)))
        if events:
            poller.processor.process_events_batch(poller.add_source_metadata(events))

    def failed_from(reported: BaseException, records: Records) -> str | None:
        sequences = {poller.get_sequence_number(record) for record in records}
        payload = getattr(reported, "partial_failure_payload", None)
        failed = get_batch_item_failures(payload, sequences)
        return min(failed, key=int) if failed else None

    poller.forward_events_to_target = BisectingForwarder(
        forward=poller.forward_events_to_target,
        try_once=try_once,
        failed_from=failed_from,
        sequence_of=poller.get_sequence_number,
        function_error=BatchFailureError,
        partial_failure=PartialBatchFailureError,
    )
