"""Placing orders: check the user, price the items from the catalog, store the order once,
then tell the others (``order.placed``).

Plain Python: the user service, the catalog, the storage and the orders topic are ports
that adapters implement.

``order.placed`` is published at least once: its envelope is stored with the order, in
the same write, and marked published once the topic confirmed it. When publishing fails
the request answers 503 and the order stays "unpublished"; the client's retry under the
same ``Idempotency-Key`` publishes the stored envelope again (same event id, so the FIFO
topic and the idempotent consumers see it once). Without a key a client has asked for no
retry semantics, and an order whose event was lost stays ``placed``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from lambdamesh_toolkit.contracts.catalog import Product
from lambdamesh_toolkit.contracts.events import EventEnvelope, OrderPlaced
from lambdamesh_toolkit.contracts.orders import CreateOrder, Order, OrderStatus
from lambdamesh_toolkit.errors import Conflict, DependencyUnavailable, NotFound, Unprocessable
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.publishing import Outbox, UnpublishedEventsError

from .idempotency import (
    IDEMPOTENCY_HEADER,
    ClaimStatus,
    IdempotencyClaim,
    Verdict,
    decide,
    fingerprint,
    new_claim,
    renewed,
)
from .pricing import check_distinct_products, price_items
from .publishing import EVENTS_DEPENDENCY, SOURCE, EventPublisher

PUBLISH_RETRY_AFTER_S = 1.0
"""The ``Retry-After`` of a 503 when ``order.placed`` could not be published."""


class UserDirectory(Protocol):
    """The user service, as far as orders need it."""

    def user_exists(self, user_id: str) -> bool:
        """Whether the user exists."""
        ...


class ProductLookup(Protocol):
    """The catalog, as far as orders need it."""

    def get_product(self, product_id: str) -> Product | None:
        """The product with this id, or ``None`` when the catalog has none."""
        ...


class OrderRepository(Protocol):
    """Where orders and idempotency claims live."""

    def get(self, order_id: str) -> Order | None:
        """The order with this id, or ``None``."""
        ...

    def add(self, order: Order, placed: EventEnvelope) -> None:
        """Store an order placed without an idempotency key, with its unpublished event."""
        ...

    def claim(self, claim: IdempotencyClaim) -> IdempotencyClaim | None:
        """Put the claim down if its key is free: ``None``; else the claim holding the key."""
        ...

    def take_over(self, stale: IdempotencyClaim, claim: IdempotencyClaim) -> bool:
        """Replace ``stale`` by ``claim`` if ``stale`` is still what is stored."""
        ...

    def release(self, claim: IdempotencyClaim) -> None:
        """Drop an ``IN_PROGRESS`` claim this request holds (its order was not placed)."""
        ...

    def complete(self, claim: IdempotencyClaim, order: Order, placed: EventEnvelope) -> bool:
        """Store the order (and its unpublished event), complete the claim, atomically.

        ``False`` when the claim was lost (nothing stored).
        """
        ...

    def unpublished_placement(self, order_id: str) -> EventEnvelope | None:
        """The order's ``order.placed`` envelope if it was never published, else ``None``."""
        ...

    def mark_placement_published(self, order_id: str) -> None:
        """Record that the topic confirmed the order's ``order.placed``."""
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
    """Places and finds orders.

    Parameters
    ----------
    users
        The user service.
    catalog
        The catalog.
    repository
        Where orders and idempotency claims are stored.
    publisher
        The orders topic (FIFO; an order's events share the order's group).
    clock, new_id
        Sources of time and ids, injectable so tests are deterministic.
    """

    def __init__(
        self,
        users: UserDirectory,
        catalog: ProductLookup,
        repository: OrderRepository,
        publisher: EventPublisher,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = new_order_id,
    ) -> None:
        self._users = users
        self._catalog = catalog
        self._repository = repository
        self._outbox = Outbox(publisher)
        self._clock = clock
        self._new_id = new_id

    def get(self, order_id: str) -> Order:
        """The order with this id.

        Raises
        ------
        NotFound
            When there is none.
        """
        order = self._repository.get(order_id)
        if order is None:
            raise NotFound("order", order_id)
        return order

    def place(self, request: CreateOrder, idempotency_key: str | None = None) -> Placement:
        """Place an order, at most once per idempotency key.

        Raises
        ------
        Unprocessable
            Naming ``user_id`` for an unknown user, ``items[i].product_id`` for an unknown
            product, ``Idempotency-Key`` when the key was used with another body.
        Conflict
            When a request with the same key is still running.
        DependencyUnavailable
            When the user service or the catalog cannot answer, or when the order was
            stored but ``order.placed`` could not be published (a retry with the same
            key publishes it).
        """
        check_distinct_products(request.items)
        if idempotency_key is None:
            order = self._build(request, self._new_id())
            placed = placed_event(order)
            self._repository.add(order, placed)
            self._publish_placement(placed, order.id)
            return Placement(order=order, replayed=False)
        return self._place_once(request, idempotency_key)

    def _place_once(self, request: CreateOrder, key: str) -> Placement:
        now_s = int(self._clock().timestamp())
        claim = new_claim(key, fingerprint(request), self._new_id(), now_s)
        held = self._repository.claim(claim)
        if held is not None:
            claim = self._settle_held_claim(held, claim.fingerprint, now_s)
            if claim.status is ClaimStatus.COMPLETED:
                return self._replay(claim.order_id)
        try:
            order = self._build(request, claim.order_id)
        except Exception:
            # Nothing was placed: free the key so the client's retry runs the request again.
            self._repository.release(claim)
            raise
        placed = placed_event(order)
        if not self._repository.complete(claim, order, placed):
            raise Conflict(_STILL_RUNNING)
        self._publish_placement(placed, order.id)
        return Placement(order=order, replayed=False)

    def _replay(self, order_id: str) -> Placement:
        """The order placed under a key, its ``order.placed`` published if it was not."""
        order = self.get(order_id)
        unpublished = self._repository.unpublished_placement(order_id)
        if unpublished is not None:
            self._publish_placement(unpublished, order_id)
        return Placement(order=order, replayed=True)

    def _publish_placement(self, placed: EventEnvelope, order_id: str) -> None:
        try:
            self._outbox.publish(
                [placed],
                group_id=order_id,
                then=lambda: self._repository.mark_placement_published(order_id),
            )
        except UnpublishedEventsError as unpublished:
            error = unpublished.__cause__ or unpublished
            # Whatever went wrong (SNS down, throttled, refused), the event has no confirm;
            # it is stored unpublished, and the client's retry with its key publishes it.
            raise DependencyUnavailable(
                EVENTS_DEPENDENCY,
                PUBLISH_RETRY_AFTER_S,
                reason=(
                    f"order {order_id} is stored but its order.placed event was not published"
                    f" ({type(error).__name__}); repeating the request with its"
                    " Idempotency-Key publishes it"
                ),
            ) from error

    def _settle_held_claim(
        self, held: IdempotencyClaim, body_fingerprint: str, now_s: int
    ) -> IdempotencyClaim:
        """The claim to go on with, given the one holding the key (or raise)."""
        match decide(held, body_fingerprint, now_s):
            case Verdict.REPLAY:
                return held
            case Verdict.MISMATCH:
                raise Unprocessable(
                    IDEMPOTENCY_HEADER,
                    "this key was already used for a different request body; "
                    "use a new key for a new order",
                )
            case Verdict.IN_PROGRESS:
                raise Conflict(_STILL_RUNNING)
            case Verdict.TAKE_OVER:
                fresh = renewed(held, now_s)
                if not self._repository.take_over(held, fresh):
                    raise Conflict(_STILL_RUNNING)
                return fresh

    def _build(self, request: CreateOrder, order_id: str) -> Order:
        if not self._users.user_exists(request.user_id):
            raise Unprocessable("user_id", f"no user {request.user_id}")
        # One GetProduct per item, in order: items are few (at most 50, distinct) and a
        # warm invoke costs milliseconds; a batch method would be the next step if not.
        products = {
            item.product_id: self._catalog.get_product(item.product_id) for item in request.items
        }
        priced = price_items(request.items, products)
        return Order(
            id=order_id,
            user_id=request.user_id,
            lines=list(priced.lines),
            total_cents=priced.total_cents,
            currency=priced.currency,
            # Placed: payment and stock (the saga) decide whether it is confirmed or cancelled.
            status=OrderStatus.PLACED,
            created_at=self._clock(),
        )


def placed_event(order: Order) -> EventEnvelope:
    """The ``order.placed`` event of a new order (correlation id: the current request's)."""
    data = OrderPlaced(
        order_id=order.id,
        user_id=order.user_id,
        lines=order.lines,
        total_cents=order.total_cents,
        currency=order.currency,
    )
    return new_event(OrderPlaced.event_type, data, source=SOURCE)


_STILL_RUNNING = "a request with this Idempotency-Key is still being processed; retry in a moment"
