"""Placing orders: check the user, price the items from the catalog, append ``order.placed``.

Plain Python: the user service, the catalog, the claims and the event store are ports that
adapters implement.

Placing an order is appending its first event, ``order.placed``, to its new stream; nothing is
published here (the stream publisher publishes what was appended, at least once). With an
``Idempotency-Key`` the append and the key's record are one transaction, so a key never yields
two orders, and a repeat of the request rebuilds the order from its stored events
(``idempotency.py`` says why nothing is claimed before the lookups).
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from lambdamesh_toolkit.contracts.catalog import Product
from lambdamesh_toolkit.contracts.events import EventEnvelope, OrderPlaced
from lambdamesh_toolkit.contracts.orders import CreateOrder, Order
from lambdamesh_toolkit.errors import Conflict, ServiceError, Unprocessable

from .idempotency import (
    IDEMPOTENCY_HEADER,
    KeyBusy,
    KeyRecord,
    Verdict,
    decide,
    fingerprint,
    new_record,
)
from .order import OrderAggregate, OrderStreams, placed_event, rebuild, stream_id, with_appended
from .pricing import check_distinct_products, price_items


class UserDirectory(Protocol):
    """The user service, as far as orders need it."""

    def user_exists(self, user_id: str) -> bool:
        """Whether the user exists."""
        ...


class ProductLookup(Protocol):
    """The catalog, as far as orders need it."""

    def get_products(self, product_ids: Sequence[str]) -> dict[str, Product | None]:
        """Every asked id, with its product or ``None`` when the catalog has none: one call
        for all of them (an order's items are priced from one catalog read)."""
        ...


class KeyRecords(Protocol):
    """Where ``Idempotency-Key`` records live, each written with the order it placed."""

    def place(self, record: KeyRecord, placed: EventEnvelope, now_s: int) -> KeyRecord | None:
        """Append ``order.placed`` to the new stream of ``record``'s order and store ``record``,
        atomically, if the key is free at ``now_s``: ``None``; else the record holding the key
        (nothing stored). Raises ``KeyBusy`` when another request writes the key right now."""
        ...

    def read(self, key: str, now_s: int) -> KeyRecord | None:
        """The record holding ``key`` at ``now_s``, if any."""
        ...


@dataclass(frozen=True)
class Placement:
    """A placed order and whether it was placed by an earlier request with the same key."""

    order: Order
    replayed: bool


def new_order_id() -> str:
    """A fresh order id."""
    return str(uuid.uuid4())


class OrderDesk:
    """Places orders.

    Parameters
    ----------
    users
        The user service.
    catalog
        The catalog.
    keys
        Where ``Idempotency-Key`` records are stored.
    streams
        The event store the orders' streams are in.
    clock, new_id
        Sources of time and ids, injectable so tests are deterministic.
    """

    def __init__(
        self,
        users: UserDirectory,
        catalog: ProductLookup,
        keys: KeyRecords,
        streams: OrderStreams,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = new_order_id,
    ) -> None:
        self._users = users
        self._catalog = catalog
        self._keys = keys
        self._streams = streams
        self._clock = clock
        self._new_id = new_id

    def place(self, request: CreateOrder, idempotency_key: str | None = None) -> Placement:
        """Place an order, at most once per idempotency key.

        Raises
        ------
        Unprocessable
            Naming ``user_id`` for an unknown user, ``items[i].product_id`` for an unknown
            product, ``Idempotency-Key`` when the key was used with another body.
        Conflict
            When a request with the same key is writing its order at this very moment.
        DependencyUnavailable
            When the user service or the catalog cannot answer.
        """
        check_distinct_products(request.items)
        if idempotency_key is None:
            placed = placed_event(self._priced(request, self._new_id()))
            order_id = str(placed.data["order_id"])
            self._streams.append(stream_id(order_id), [placed], expected_version=0)
            return self._placement(order_id, placed, replayed=False)
        return self._place_once(request, idempotency_key)

    def _place_once(self, request: CreateOrder, key: str) -> Placement:
        body = fingerprint(request)
        try:
            order = self._priced(request, self._new_id())
        except ServiceError:
            # A repeat of an order placed under this key is answered with that order, whatever
            # the user service or the catalog says now (the user gone, a dependency down): the
            # key is read only here, on the way to a refusal.
            held = self._keys.read(key, self._now_s())
            if held is None:
                raise
            return self._repeat(held, body)
        placed = placed_event(order)
        now_s = self._now_s()
        try:
            held = self._keys.place(new_record(key, body, order.order_id, now_s), placed, now_s)
        except KeyBusy:
            raise Conflict(_STILL_RUNNING) from None
        if held is not None:
            return self._repeat(held, body)
        return self._placement(order.order_id, placed, replayed=False)

    def _repeat(self, held: KeyRecord, body_fingerprint: str) -> Placement:
        """The answer to a request whose key ``held`` already names an order (or raise)."""
        match decide(held, body_fingerprint):
            case Verdict.REPLAY:
                return self._replay(held.order_id)
            case Verdict.MISMATCH:
                raise Unprocessable(
                    IDEMPOTENCY_HEADER,
                    "this key was already used for a different request body; "
                    "use a new key for a new order",
                )

    def _now_s(self) -> int:
        return int(self._clock().timestamp())

    def _replay(self, order_id: str) -> Placement:
        """The order placed under a key, rebuilt from its stored events."""
        order = rebuild(order_id, self._streams.read(stream_id(order_id))).order
        if order is None:
            # A record is written with its order's first event; only a claim that an earlier
            # version put down before placing (and may still complete) names no events.
            raise Conflict(_STILL_RUNNING)
        return Placement(order=order, replayed=True)

    def _placement(self, order_id: str, placed: EventEnvelope, *, replayed: bool) -> Placement:
        order = with_appended(OrderAggregate(order_id=order_id), [placed]).order
        assert order is not None  # an order.placed was just applied
        return Placement(order=order, replayed=replayed)

    def _priced(self, request: CreateOrder, order_id: str) -> OrderPlaced:
        """The new order, its user checked and its items priced from the catalog.

        The two calls are independent, so they run at once: the catalog's on a second thread,
        under a copy of this request's context (correlation id, deadline, trace span). The
        user's answer is the first to count: an unknown user is refused whatever the catalog
        said, and a failed catalog call is raised only for a known user.
        """
        product_ids = [item.product_id for item in request.items]
        asked = _LOOKUPS.submit(
            contextvars.copy_context().run, self._catalog.get_products, product_ids
        )
        try:
            user_exists = self._users.user_exists(request.user_id)
        finally:
            # Never leave the catalog call running past this request.
            wait([asked])
        if not user_exists:
            raise Unprocessable("user_id", f"no user {request.user_id}")
        priced = price_items(request.items, asked.result())
        return OrderPlaced(
            order_id=order_id,
            user_id=request.user_id,
            lines=list(priced.lines),
            total_cents=priced.total_cents,
            currency=priced.currency,
        )


_LOOKUPS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="catalog-lookup")
"""Threads for the catalog lookups of the container's requests (a container serves one request
at a time: one thread, kept for the container's life)."""

_STILL_RUNNING = "a request with this Idempotency-Key is being processed; retry in a moment"
