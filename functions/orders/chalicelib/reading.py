"""Reading orders: one order, a user's orders, an order's history.

Plain Python over two ports: the projection (:class:`chalicelib.projection.OrderViews`), which
serves reads and follows the events a moment behind them, and the event store, which holds the
history. An order the projection has not seen yet (it was placed a moment ago) is rebuilt from
its events, so a client reads the order it was just answered.
"""

from __future__ import annotations

from typing import Protocol

from lambdamesh_toolkit.contracts.orders import Order, OrderEvent, OrderHistory, UserOrders
from lambdamesh_toolkit.errors import InvalidRequest, NotFound
from lambdamesh_toolkit.events.store import StoredEvent
from lambdamesh_toolkit.paging import NEXT_TOKEN_PARAMETER, PageQuery, decode_token, encode_token

from .order import OrderStreams, rebuild, stream_id

HISTORY_POSITION = ("version",)
"""What a page of an order's history continues after."""


class ProjectedOrders(Protocol):
    """The projection, as far as reading needs it."""

    def get(self, order_id: str) -> Order | None:
        """The order as projected, or ``None``."""
        ...

    def of_user(
        self, user_id: str, *, limit: int, after: str | None
    ) -> tuple[list[Order], str | None]:
        """A page of the user's orders, newest first, and the next page's token."""
        ...


class OrderReader:
    """Answers the orders' read routes.

    Parameters
    ----------
    views
        The projection.
    streams
        The event store.
    """

    def __init__(self, views: ProjectedOrders, streams: OrderStreams) -> None:
        self._views = views
        self._streams = streams

    def get(self, order_id: str) -> Order:
        """The order with this id.

        Raises
        ------
        NotFound
            When there is none.
        """
        order = self._views.get(order_id)
        if order is None:
            order = rebuild(order_id, self._streams.read(stream_id(order_id))).order
        if order is None:
            raise NotFound("order", order_id)
        return order

    def of_user(self, user_id: str, page: PageQuery) -> UserOrders:
        """A page of the user's orders, newest first (none for a user who has no orders).

        Raises
        ------
        InvalidRequest
            Naming ``next_token`` when it is not a token this service handed out.
        """
        orders, next_token = self._views.of_user(user_id, limit=page.limit, after=page.next_token)
        return UserOrders(user_id=user_id, orders=orders, next_token=next_token)

    def history(self, order_id: str, page: PageQuery) -> OrderHistory:
        """A page of the order's events, oldest first.

        Raises
        ------
        NotFound
            When there is no such order.
        InvalidRequest
            Naming ``next_token`` when it is not a token this service handed out.
        """
        after = 0
        if page.next_token is not None:
            after = _version_in(page.next_token)
        events = self._streams.read(stream_id(order_id), after_version=after)
        if after == 0 and not rebuild(order_id, events).exists:
            raise NotFound("order", order_id)
        shown = events[: page.limit]
        next_token = None
        if len(events) > page.limit:
            next_token = encode_token({"version": str(shown[-1].version)})
        return OrderHistory(
            order_id=order_id, events=[_event(stored) for stored in shown], next_token=next_token
        )


def _version_in(token: str) -> int:
    value = decode_token(token, HISTORY_POSITION)["version"]
    if not value.isdigit():
        raise InvalidRequest(NEXT_TOKEN_PARAMETER, "not a token this service handed out")
    return int(value)


def _event(stored: StoredEvent) -> OrderEvent:
    envelope = stored.envelope
    return OrderEvent(
        version=stored.version,
        id=envelope.id,
        type=envelope.type,
        time=envelope.time,
        correlation_id=envelope.correlation_id,
        causation_id=envelope.causation_id,
        data=envelope.data,
    )
