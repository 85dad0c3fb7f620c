"""``Query`` on a table's key in moto without sorting the whole table.

moto answers a ``Query`` on a table's own key by listing every item of the table, sorting that
list by hash and range key (``Table.all_items``) and keeping the items of the asked partition:
each query costs the whole table, sorted, however small its partition. On the embedded
LocalStack under load (8 clients placing orders, the event store holding a few thousand
events) that sort was 14-15 % of the emulator's interpreter time, sampled with py-spy: more
than any other single piece of work, and it grows with every order stored.

:func:`install` keeps moto's query — key conditions, order, paging, limits, size limits,
filters, projections, the errors it raises — and changes only the list it starts from: while
``Table.query`` runs for a table's own key (no index), ``Table.all_items`` of that table
answers the asked partition's items, which is exactly what moto's comprehension keeps of the
full list (and moto sorts them by range key next, as it did). Queries of an index and scans
read the whole table as before (an index's partition is not where moto keeps the items).

Like the rest of moto's backend this is not thread-safe on its own; the embedded LocalStack
runs every DynamoDB operation under one lock. Only moto is imported here, so it is tested with
the project's moto too.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

_INSTALLED_MARK = "__lambdamesh_partition_query__"

_asked: ContextVar[tuple[Table, DynamoType] | None] = ContextVar(
    "lambdamesh_moto_query_partition", default=None
)
"""The table and hash key of the key query running in this thread, if any."""


def install() -> None:
    """Make moto's key queries read their partition only (idempotent)."""
    if getattr(Table.query, _INSTALLED_MARK, False):
        return
    Table.query = _partition_query(Table.query)  # type: ignore[method-assign]
    Table.all_items = _partition_items_while_asked(Table.all_items)  # type: ignore[method-assign]


def partition_items(table: Table, hash_key: DynamoType) -> list[Item]:
    """The items of ``table`` whose hash key is ``hash_key`` (unordered: moto's query sorts
    what it keeps by range key itself)."""
    # ``get``, not indexing: moto's ``items`` is a defaultdict that would add the partition.
    partition: Any = table.items.get(hash_key)
    if partition is None:
        return []
    if table.range_key_attr is None:
        return [partition]
    return list(partition.values())


def _partition_query(query: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(query)

    @functools.wraps(query)
    def partition_query(self: Table, *args: Any, **kwargs: Any) -> Any:
        arguments = signature.bind(self, *args, **kwargs).arguments
        hash_key = arguments.get("hash_key")
        if arguments.get("index_name") or not isinstance(hash_key, DynamoType):
            return query(self, *args, **kwargs)
        token = _asked.set((self, hash_key))
        try:
            return query(self, *args, **kwargs)
        finally:
            _asked.reset(token)

    setattr(partition_query, _INSTALLED_MARK, True)
    return partition_query


def _partition_items_while_asked(all_items: Callable[[Table], list[Item]]) -> Callable[..., Any]:
    @functools.wraps(all_items)
    def items_of_the_asked_partition(self: Table) -> list[Item]:
        asked = _asked.get()
        if asked is None or asked[0] is not self:
            return all_items(self)
        return partition_items(self, asked[1])

    return items_of_the_asked_partition
