"""An in-memory breaker store, for tests that inject it explicitly.

Never used by default: deployed functions always share breaker state through
DynamoDB (:func:`lambdamesh_toolkit.resilience.dynamodb_breaker_store`), since
state kept in one container's memory would let every other container keep
hammering a dependency that is down. Powertools ships only the DynamoDB
store, hence this small one; its conditional write mirrors the DynamoDB
store's half-open election so tests exercise the same state machine.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

from aws_lambda_powertools.utilities.circuit_breaker import CircuitState
from aws_lambda_powertools.utilities.circuit_breaker.persistence.base import (
    CircuitBreakerExistingLockError,
    CircuitBreakerPersistenceLayer,
)
from aws_lambda_powertools.utilities.circuit_breaker.persistence.record import CircuitStateRecord


class InMemoryCircuitStore(CircuitBreakerPersistenceLayer):
    """Circuit records in a dict; share one instance to share state."""

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, CircuitStateRecord] = {}
        self._write_lock = threading.Lock()

    def _get_record(self, name: str) -> CircuitStateRecord | None:
        with self._write_lock:
            record = self._records.get(name)
            return dataclasses.replace(record) if record is not None else None

    def _put_record(
        self,
        record: CircuitStateRecord,
        condition: str | None = None,
        expected_opened_at: int | None = None,
    ) -> None:
        with self._write_lock:
            if condition == "half_open" and not self._may_take_probe(
                record.name, expected_opened_at
            ):
                raise CircuitBreakerExistingLockError
            self._records[record.name] = dataclasses.replace(record)

    def _update_record(self, record: CircuitStateRecord) -> None:
        with self._write_lock:
            self._records[record.name] = dataclasses.replace(
                record, half_open_owner=None, probe_lease_expiry=None
            )

    def _may_take_probe(self, name: str, expected_opened_at: int | None) -> bool:
        current = self._records.get(name)
        if current is None:
            return False
        if current.state == CircuitState.OPEN and current.half_open_owner is None:
            return expected_opened_at is None or current.opened_at == expected_opened_at
        lease = current.probe_lease_expiry
        return (
            current.state == CircuitState.HALF_OPEN
            and lease is not None
            and lease <= int(dt.datetime.now().timestamp())
        )
