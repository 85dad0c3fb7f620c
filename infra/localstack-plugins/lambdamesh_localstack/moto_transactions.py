"""``TransactWriteItems`` in moto without copying whole tables.

moto makes a transaction atomic by deep-copying every table the transaction
touches before it starts and putting the copies back when an operation fails.
That copy costs time in proportion to the table: measured on the embedded
LocalStack, one single-item transaction took 10 ms of CPU on an empty table and
92-101 ms on tables of 300-1500 items (orders, event marks), so two
transactions per order capped the whole system at a few orders a second, and it
got slower with every order stored.

:func:`install` keeps moto's transaction logic (validation, conditions, the
order of operations, the errors it raises) and replaces only the rollback
point: before the transaction, a copy of each item it names (or a note that
there was none) and the length of each touched table's stream shard; when moto
raises, those items are put back as they were and the stream records the
transaction wrote are dropped. moto's own table copy is turned into the table
itself (so its "restore" assigns a table to itself). A transaction changes only
the items it names, so this is the same rollback at the cost of the items.

Not thread-safe on its own, like the rest of moto's backend: callers serialise
operations (the embedded LocalStack runs every DynamoDB operation under one lock).
Only moto itself is imported here, so it is tested with the project's moto too.
"""

from __future__ import annotations

import copy
import functools
import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import moto.dynamodb.models as moto_dynamodb_models
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

TransactWrite = Callable[[DynamoDBBackend, list[dict[str, Any]]], None]

_INSTALLED_MARK = "__lambdamesh_item_rollback__"


@dataclass(slots=True)
class _SavedItem:
    """One item a transaction names, as it was before the transaction."""

    table_name: str
    hash_key: DynamoType
    range_key: DynamoType | None
    item: Item | None
    """A deep copy of the item (update operations change items in place); ``None`` if absent."""
    had_hash: bool
    """For tables with a range key: whether the partition existed (moto keeps a dict per hash)."""


@dataclass(slots=True)
class RollbackPoint:
    """The items a transaction names and its tables' stream lengths, taken before it runs."""

    items: list[_SavedItem]
    stream_lengths: dict[str, int]

    @classmethod
    def take(cls, backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> RollbackPoint:
        """Save what ``transact_items`` may change; operations moto will refuse are skipped."""
        saved: list[_SavedItem] = []
        streams: dict[str, int] = {}
        for entry in transact_items:
            if len(entry) != 1:
                continue  # moto refuses the whole transaction before writing anything
            op_type, op = next(iter(entry.items()))
            table = backend.tables.get(op.get("TableName", "")) if isinstance(op, dict) else None
            if table is None or op_type not in ("Put", "Update", "Delete"):
                continue
            key = _key_of(table, op["Item"] if op_type == "Put" else op.get("Key"))
            if key is None:
                continue  # moto refuses an operation without its key before it writes
            hash_key, range_key = key
            had_hash = hash_key in table.items  # before get_item: its defaultdict adds the hash
            current = table.get_item(hash_key, range_key)
            saved.append(
                _SavedItem(
                    table_name=table.name,
                    hash_key=hash_key,
                    range_key=range_key,
                    item=copy.deepcopy(current) if current is not None else None,
                    had_hash=had_hash,
                )
            )
            if table.stream_shard is not None:
                streams.setdefault(table.name, len(table.stream_shard.items))
        return cls(saved, streams)

    def restore(self, backend: DynamoDBBackend) -> None:
        """Put every saved item back as it was and drop the stream records written since."""
        for saved in reversed(self.items):
            table = backend.tables.get(saved.table_name)
            if table is None:
                continue
            items: dict[Any, Any] = table.items
            if saved.range_key is None:
                if saved.item is None:
                    items.pop(saved.hash_key, None)
                else:
                    items[saved.hash_key] = saved.item
                continue
            partition = items.get(saved.hash_key)
            if saved.item is not None:
                items.setdefault(saved.hash_key, {})[saved.range_key] = saved.item
            elif partition is not None:
                partition.pop(saved.range_key, None)
                if not partition and not saved.had_hash:
                    del items[saved.hash_key]
        for table_name, length in self.stream_lengths.items():
            table = backend.tables.get(table_name)
            if table is not None and table.stream_shard is not None:
                del table.stream_shard.items[length:]


def _key_of(table: Table, attributes: Any) -> tuple[DynamoType, DynamoType | None] | None:
    """The item's key as moto stores it, or ``None`` when the attributes lack it."""
    if not isinstance(attributes, Mapping) or table.hash_key_attr not in attributes:
        return None
    range_key = None
    try:
        if table.range_key_attr is not None:
            if table.range_key_attr not in attributes:
                return None
            range_key = DynamoType(attributes[table.range_key_attr])
        return DynamoType(attributes[table.hash_key_attr]), range_key
    except Exception:  # a malformed key value: moto refuses the operation itself
        return None


class _CopyWithoutTables(types.ModuleType):
    """moto's models module's ``copy``: a table "copies" to itself, anything else really copies."""

    def __init__(self) -> None:
        super().__init__("copy")
        self.copy = copy.copy
        self.Error = copy.Error

    @staticmethod
    def deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
        if isinstance(value, Table):
            return value
        return copy.deepcopy(value, memo)


def with_item_rollback(transact_write_items: TransactWrite) -> TransactWrite:
    """Wrap moto's ``DynamoDBBackend.transact_write_items`` to roll back item by item."""

    @functools.wraps(transact_write_items)
    def transact(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        rollback = RollbackPoint.take(backend, transact_items)
        try:
            transact_write_items(backend, transact_items)
        except BaseException:
            rollback.restore(backend)
            raise

    setattr(transact, _INSTALLED_MARK, True)
    return transact


def install() -> None:
    """Make moto's transactions roll back item by item (idempotent)."""
    if getattr(DynamoDBBackend.transact_write_items, _INSTALLED_MARK, False):
        return
    # The module's ``copy`` is used for the tables' rollback copy and for per-item copies
    # (kept): only a Table's deep copy becomes the table itself.
    setattr(moto_dynamodb_models, "copy", _CopyWithoutTables())  # noqa: B010 - not exported
    wrapped = with_item_rollback(DynamoDBBackend.transact_write_items)
    DynamoDBBackend.transact_write_items = wrapped  # type: ignore[method-assign,assignment]
