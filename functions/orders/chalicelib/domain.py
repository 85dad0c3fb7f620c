"""Placing orders: check the user, price the items from the catalog, store the order once.

Plain Python: the user service, the catalog and the storage are ports that adapters
implement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from lambdamesh_toolkit.contracts.catalog import Product
from lambdamesh_toolkit.contracts.orders import CreateOrder, Order, OrderStatus
from lambdamesh_toolkit.errors import Conflict, NotFound, Unprocessable

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

    def add(self, order: Order) -> None:
        """Store an order placed without an idempotency key."""
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

    def complete(self, claim: IdempotencyClaim, order: Order) -> bool:
        """Store the order and mark the claim completed, atomically; ``False`` if lost."""
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
    clock, new_id
        Sources of time and ids, injectable so tests are deterministic.
    """

    def __init__(
        self,
        users: UserDirectory,
        catalog: ProductLookup,
        repository: OrderRepository,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], str] = new_order_id,
    ) -> None:
        self._users = users
        self._catalog = catalog
        self._repository = repository
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
            When the user service or the catalog cannot answer.
        """
        check_distinct_products(request.items)
        if idempotency_key is None:
            order = self._build(request, self._new_id())
            self._repository.add(order)
            return Placement(order=order, replayed=False)
        return self._place_once(request, idempotency_key)

    def _place_once(self, request: CreateOrder, key: str) -> Placement:
        now_s = int(self._clock().timestamp())
        claim = new_claim(key, fingerprint(request), self._new_id(), now_s)
        held = self._repository.claim(claim)
        if held is not None:
            claim = self._settle_held_claim(held, claim.fingerprint, now_s)
            if claim.status is ClaimStatus.COMPLETED:
                return Placement(order=self.get(claim.order_id), replayed=True)
        try:
            order = self._build(request, claim.order_id)
        except Exception:
            # Nothing was placed: free the key so the client's retry runs the request again.
            self._repository.release(claim)
            raise
        if not self._repository.complete(claim, order):
            raise Conflict(_STILL_RUNNING)
        return Placement(order=order, replayed=False)

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


_STILL_RUNNING = "a request with this Idempotency-Key is still being processed; retry in a moment"
