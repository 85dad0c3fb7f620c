"""The orders' read model: each order as its events leave it, kept from the event store's stream.

The projection table (``OrdersTable``), key ``id``: ``user_id``, ``placed_at`` (the order's
creation time, UTC to the microsecond, then ``#`` and its id: sorts as text), ``status`` and
``cancel_reason`` (where the order is: they override the document's), ``version`` (the stream
version the item reflects) and ``document`` (the order's JSON). Its index ``by_user``
(``user_id``, ``placed_at``) serves a user's orders, newest first.

:class:`OrderProjector` runs on the event store's DynamoDB stream. Each appended event is one
write, no read (events of an order that follow one another in a batch, as an outcome's record
and the decision appended with it, are one write together): ``order.placed`` puts the order
(if the item is absent), a decision sets ``status`` and ``cancel_reason`` as the aggregate's
fold does (:func:`chalicelib.order.decision_fields`), any other event moves ``version`` on;
each write is conditioned on the item being at the version just before its first event's.
When that condition fails (the record came twice, late, or after a gap) the order is rebuilt
from its stream (:func:`chalicelib.order.rebuild`) and written unless the item already holds
that version or a later one. The live projection and one rebuilt from scratch
(:func:`compare_with_store`, ``lambdamesh orders rebuild``) are therefore the same function of
the events.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambdamesh_toolkit.aws.dynamodb import (
    condition_failed,
    conditional_put,
    put_if_absent,
    query_page,
)
from lambdamesh_toolkit.contracts.events import (
    EventEnvelope,
    OrderCancelled,
    OrderConfirmed,
    OrderPlaced,
)
from lambdamesh_toolkit.contracts.orders import Order, OrderStatus
from lambdamesh_toolkit.events.change_capture import (
    INSERT,
    AppendedEvent,
    Change,
    StreamDeadLetters,
    StreamFunction,
    appended_event,
)
from lambdamesh_toolkit.events.envelope import event_data
from lambdamesh_toolkit.events.store import STREAM_ID_ATTRIBUTE, VERSION_ATTRIBUTE
from lambdamesh_toolkit.paging import time_ordered_key

from .order import (
    OrderStreams,
    decision_fields,
    order_id_of,
    placed_order,
    rebuild,
    stream_id,
)

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, QueryInputTypeDef

BY_USER_INDEX = "by_user"
PAGE_POSITION = ("id", "placed_at")
"""The keys a page of a user's orders continues after (the table's and the index's)."""


def placed_key(order: Order) -> str:
    """The index's sort key: creation time in UTC to the microsecond (sorts as text), then id.

    >>> from datetime import UTC, datetime
    >>> from lambdamesh_toolkit.contracts.orders import OrderStatus
    >>> order = Order(id="o-1", user_id="u-1", lines=[], total_cents=0, currency="EUR",
    ...               status=OrderStatus.PLACED, created_at=datetime(2026, 1, 2, tzinfo=UTC))
    >>> placed_key(order)
    '2026-01-02T00:00:00.000000Z#o-1'
    """
    return time_ordered_key(order.created_at, order.id)


class OrderViews:
    """The projection table.

    Parameters
    ----------
    client
        A DynamoDB client.
    table
        The projection table (key ``id``, index ``by_user``).
    """

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self._table = table

    def get(self, order_id: str) -> Order | None:
        """The order as projected, or ``None`` when the projection has not seen it."""
        answer = self._client.get_item(TableName=self._table, Key={"id": {"S": order_id}})
        item = answer.get("Item")
        return None if item is None else _order_from_item(item)

    def add(self, order: Order) -> bool:
        """Put a new order at version 1 unless the item exists; whether it was put."""
        return put_if_absent(self._client, self._table, _item(order, 1), "id")

    def advance(
        self,
        order_id: str,
        version: int,
        changes: Mapping[str, Any],
        *,
        previous: int | None = None,
    ) -> bool:
        """Move the item from ``previous`` (default ``version - 1``) to ``version``, setting
        ``status`` and ``cancel_reason`` when ``changes`` names them; ``False`` (nothing
        written) when the item is not at ``previous``."""
        assignments = ["version = :version"]
        removals: list[str] = []
        values: dict[str, AttributeValueTypeDef] = {
            ":version": {"N": str(version)},
            ":previous": {"N": str(version - 1 if previous is None else previous)},
        }
        names: dict[str, str] = {}
        if "status" in changes:
            names["#status"] = "status"
            assignments.append("#status = :status")
            values[":status"] = {"S": str(changes["status"])}
        if changes.get("cancel_reason") is not None:
            assignments.append("cancel_reason = :reason")
            values[":reason"] = {"S": str(changes["cancel_reason"])}
        elif "cancel_reason" in changes:
            removals.append("cancel_reason")
        expression = "SET " + ", ".join(assignments)
        if removals:
            expression += " REMOVE " + ", ".join(removals)
        request: dict[str, Any] = {
            "TableName": self._table,
            "Key": {"id": {"S": order_id}},
            "UpdateExpression": expression,
            "ConditionExpression": "version = :previous",
            "ExpressionAttributeValues": values,
        }
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            self._client.update_item(**request)
        except ClientError as error:
            if condition_failed(error):
                return False
            raise
        return True

    def put_if_newer(self, order: Order, version: int) -> bool:
        """Write the order as of stream ``version``, unless the item is at it or later."""
        return conditional_put(
            self._client,
            TableName=self._table,
            Item=_item(order, version),
            ConditionExpression="attribute_not_exists(id) OR version < :version",
            ExpressionAttributeValues={":version": {"N": str(version)}},
        )

    def put(self, order: Order, version: int) -> None:
        """Write the order as of stream ``version`` whatever the item holds (a rebuild)."""
        self._client.put_item(TableName=self._table, Item=_item(order, version))

    def delete(self, order_id: str) -> None:
        """Drop an order the events do not tell of (a rebuild)."""
        self._client.delete_item(TableName=self._table, Key={"id": {"S": order_id}})

    def of_user(
        self, user_id: str, *, limit: int, after: str | None
    ) -> tuple[list[Order], str | None]:
        """A page of the user's orders, newest first, and the next page's token.

        Raises
        ------
        InvalidRequest
            Naming ``next_token`` when ``after`` is not a token this service handed out.
        """
        request: QueryInputTypeDef = {
            "TableName": self._table,
            "IndexName": BY_USER_INDEX,
            "KeyConditionExpression": "user_id = :user",
            "ExpressionAttributeValues": {":user": {"S": user_id}},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        items, next_token = query_page(
            self._client,
            request,
            partition={"user_id": {"S": user_id}},
            position=PAGE_POSITION,
            after=after,
        )
        return [_order_from_item(item) for item in items], next_token

    def versions(self) -> Iterator[tuple[str, Order, int]]:
        """Every projected item: its key, its order and its version (a full scan: rebuilds)."""
        request: dict[str, Any] = {"TableName": self._table}
        while True:
            answer = self._client.scan(**request)
            for item in answer.get("Items", []):
                yield str(item["id"]["S"]), _order_from_item(item), int(item["version"]["N"])
            last = answer.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last


class OrderProjector(StreamFunction):
    """Keeps the projection from the event store's stream records.

    Parameters
    ----------
    views
        The projection.
    streams
        The event store, to rebuild each order from.
    dead_letters
        Where records that are not order events go, with the reason.
    logger
        The function's logger.
    """

    def __init__(
        self,
        views: OrderViews,
        streams: OrderStreams,
        *,
        dead_letters: StreamDeadLetters | None = None,
        logger: Logger | None = None,
    ) -> None:
        super().__init__(dead_letters=dead_letters, logger=logger)
        self._views = views
        self._streams = streams
        self._projected: dict[str, int] = {}
        self._in_batch: frozenset[tuple[str, int]] = frozenset()
        # Per order: the version before the first event deferred, and the changes deferred.
        self._deferred: dict[str, tuple[int, dict[str, Any]]] = {}

    def begin_batch(self, records: Sequence[Change]) -> None:
        """Each batch rebuilds an order once, from what is stored now; an order's events that
        follow one another in it are one write (the saga appends an outcome's record and its
        decision together)."""
        self._projected = {}
        self._deferred = {}
        self._in_batch = _appended_in(records)

    def handle(self, change: Change) -> None:
        """Bring the order an appended event belongs to up to date in the projection."""
        appended = appended_event(change)
        if appended is None:
            return
        order_id = order_id_of(appended.stream_id)
        if order_id is None or self._projected.get(order_id, 0) >= appended.version:
            return
        self.use_correlation_id(appended.envelope.correlation_id)
        if self._deferred_to_the_next(order_id, appended):
            return
        if self._applied(order_id, appended.version, appended.envelope):
            self._projected[order_id] = appended.version
            return
        aggregate = rebuild(order_id, self._streams.read(stream_id(order_id)))
        if aggregate.order is not None:
            self._views.put_if_newer(aggregate.order, aggregate.version)
        self._projected[order_id] = aggregate.version

    def _deferred_to_the_next(self, order_id: str, appended: AppendedEvent) -> bool:
        """Keep an event's changes for the write of the order's next event, when that one is
        in this batch too; whether it was kept. ``order.placed`` is written on its own.

        A deferred change is never lost: if the next event's record fails, its retry finds
        the item behind and rebuilds the order from its stream.
        """
        version = appended.version
        if version <= 1 or (appended.stream_id, version + 1) not in self._in_batch:
            return False
        previous, changes = self._deferred.get(order_id, (version - 1, {}))
        self._deferred[order_id] = (previous, {**changes, **_changes_of(appended.envelope)})
        return True

    def _applied(self, order_id: str, version: int, envelope: EventEnvelope) -> bool:
        """Apply one event, with those deferred to it, to the item in one write; ``False``
        when it is not the next one."""
        data = event_data(envelope)
        if isinstance(data, OrderPlaced):
            return version == 1 and self._views.add(placed_order(data, envelope))
        if version == 1:
            return False  # a stream that does not start with order.placed: no order to show
        previous, changes = self._deferred.pop(order_id, (version - 1, {}))
        changes = {**changes, **_changes_of(envelope)}
        return self._views.advance(order_id, version, changes, previous=previous)


def _changes_of(envelope: EventEnvelope) -> dict[str, Any]:
    """What an event changes on the item besides its version: a decision's status."""
    data = event_data(envelope)
    return decision_fields(data) if isinstance(data, OrderConfirmed | OrderCancelled) else {}


def _appended_in(records: Sequence[Change]) -> frozenset[tuple[str, int]]:
    """The ``(stream id, version)`` of every event a stream batch appends, read from the
    records' keys (a record that cannot be read adds nothing: handling it says why)."""
    appended: set[tuple[str, int]] = set()
    for change in records:
        if change.event_name != INSERT:
            continue
        stream = change.new_image.get(STREAM_ID_ATTRIBUTE, {}).get("S")
        version = change.new_image.get(VERSION_ATTRIBUTE, {}).get("N")
        if isinstance(stream, str) and isinstance(version, str) and version.isdigit():
            appended.add((stream, int(version)))
    return frozenset(appended)


@dataclass
class RebuildReport:
    """How the live projection compares with one rebuilt from every stream.

    Attributes
    ----------
    streams
        Order streams read.
    orders
        Orders the events tell of.
    missing
        Order ids the live projection lacks.
    stale
        Order ids it holds at an older version than the events.
    different
        Order ids it holds at the events' version but with other content.
    extra
        Order ids it holds that no events tell of.
    applied
        Whether the rebuilt projection was written over the live one.
    """

    streams: int = 0
    orders: int = 0
    missing: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def matches(self) -> bool:
        """Whether the live projection is what the events say."""
        return not (self.missing or self.stale or self.different or self.extra)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (what ``rebuild_projection`` answers)."""
        return {
            "streams": self.streams,
            "orders": self.orders,
            "missing": self.missing,
            "stale": self.stale,
            "different": self.different,
            "extra": self.extra,
            "applied": self.applied,
            "matches": self.matches,
        }


def compare_with_store(
    views: OrderViews, streams: OrderStreams, stream_ids: Iterator[str], *, apply: bool = False
) -> RebuildReport:
    """Rebuild every order from its stream and compare with the live projection.

    Parameters
    ----------
    views
        The live projection.
    streams
        The event store.
    stream_ids
        The ids of every stream in the store (other streams than orders' are skipped).
    apply
        Write the rebuilt orders over the live ones and drop the extra ones.
    """
    report = RebuildReport(applied=apply)
    live = {key: (order, version) for key, order, version in views.versions()}
    told: set[str] = set()
    for stream in stream_ids:
        order_id = order_id_of(stream)
        if order_id is None:
            continue
        report.streams += 1
        aggregate = rebuild(order_id, streams.read(stream))
        if aggregate.order is None:
            continue
        report.orders += 1
        told.add(order_id)
        held = live.get(order_id)
        if held is None:
            report.missing.append(order_id)
        elif held[1] < aggregate.version:
            report.stale.append(order_id)
        elif held != (aggregate.order, aggregate.version):
            report.different.append(order_id)
        else:
            continue
        if apply:
            views.put(aggregate.order, aggregate.version)
    report.extra = sorted(set(live) - told)
    if apply:
        for order_id in report.extra:
            views.delete(order_id)
    return report


def stream_ids_in(client: DynamoDBClient, events_table: str) -> Iterator[str]:
    """Every stream id in an event store table, each once (a scan of the keys)."""
    seen: set[str] = set()
    request: dict[str, Any] = {
        "TableName": events_table,
        "ProjectionExpression": "#stream",
        "ExpressionAttributeNames": {"#stream": STREAM_ID_ATTRIBUTE},
    }
    while True:
        answer = client.scan(**request)
        for item in answer.get("Items", []):
            stream = str(item[STREAM_ID_ATTRIBUTE]["S"])
            if stream not in seen:
                seen.add(stream)
                yield stream
        last = answer.get("LastEvaluatedKey")
        if not last:
            return
        request["ExclusiveStartKey"] = last


def _item(order: Order, version: int) -> dict[str, AttributeValueTypeDef]:
    item: dict[str, AttributeValueTypeDef] = {
        "id": {"S": order.id},
        "user_id": {"S": order.user_id},
        "placed_at": {"S": placed_key(order)},
        "status": {"S": str(order.status)},
        "version": {"N": str(version)},
        "document": {"S": order.model_dump_json()},
    }
    if order.cancel_reason is not None:
        item["cancel_reason"] = {"S": order.cancel_reason}
    return item


def _order_from_item(item: Mapping[str, Any]) -> Order:
    """The order in its document, where ``status`` and ``cancel_reason`` say it is now."""
    document = Order.model_validate_json(item["document"]["S"])
    return document.model_copy(
        update={
            "status": OrderStatus(item["status"]["S"]),
            "cancel_reason": item.get("cancel_reason", {}).get("S"),
        }
    )
