"""Users who sign up and place orders over HTTP, retrying as a careful client does.

A shopper retries an order refused with ``503`` (or not answered at all, or answered ``409``
while such an unanswered attempt still runs) under the same ``Idempotency-Key`` after the
``Retry-After`` it was given, so that a retried order is the same order. Anything else that is
not ``201`` is recorded as a refusal: every order a chaos run places is valid, and a refusal is a
finding.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

import urllib3

from lambdamesh.deploy import DeployReport

MAX_RETRY_WAIT_S = 5.0
"""The longest a shopper waits before retrying, whatever ``Retry-After`` says."""
GIVE_UP_AFTER_S = 180.0
"""How long a shopper keeps retrying one order before it records it as not placed."""


@dataclass(frozen=True)
class Product:
    """A product as the catalog lists it."""

    id: str
    price_cents: int


@dataclass(frozen=True)
class PlacedOrder:
    """An order the orders API accepted (``201``).

    Attributes
    ----------
    id, user_id
        The order and who placed it.
    lines
        ``(product id, quantity)`` per line.
    attempts
        Requests it took (1 when the first was accepted).
    """

    id: str
    user_id: str
    lines: tuple[tuple[str, int], ...]
    attempts: int


@dataclass(frozen=True)
class Refusal:
    """An order that was not placed: the last status and error code it got."""

    key: str
    status: int
    code: str | None


@dataclass
class Placement:
    """Every order of a run: placed or refused, and how many ``503`` were retried."""

    placed: list[PlacedOrder] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    retried_503: int = 0
    _lock: Lock = field(default_factory=Lock, repr=False)

    def add(self, outcome: PlacedOrder | Refusal, retried: int) -> None:
        with self._lock:
            self.retried_503 += retried
            if isinstance(outcome, PlacedOrder):
                self.placed.append(outcome)
            else:
                self.refused.append(outcome)


@dataclass
class Shop:
    """The APIs a shopper uses.

    Parameters
    ----------
    users_url, catalog_url, orders_url
        Base URLs of the three APIs (no trailing ``/``).
    run_id
        Prefix of every correlation id and idempotency key of the run.
    clients
        Connections kept per API.
    """

    users_url: str
    catalog_url: str
    orders_url: str
    run_id: str
    clients: int = 8
    http: urllib3.PoolManager = field(init=False)

    @classmethod
    def of(cls, report: DeployReport, run_id: str, clients: int) -> Shop:
        """The shop of the system ``report`` describes, for ``clients`` clients."""
        return cls(
            users_url=report.api_base_url("users"),
            catalog_url=report.api_base_url("catalog"),
            orders_url=report.api_base_url("orders"),
            run_id=run_id,
            clients=clients,
        )

    def __post_init__(self) -> None:
        self.http = urllib3.PoolManager(
            maxsize=max(1, self.clients),
            timeout=urllib3.Timeout(connect=5.0, read=30.0),
            retries=False,
        )

    def request(
        self, method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """One JSON request; returns status, decoded body and headers."""
        response = self.http.request(
            method,
            url,
            body=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            decoded = json.loads(response.data) if response.data else None
        except ValueError:
            decoded = response.data.decode(errors="replace")
        return response.status, decoded, dict(response.headers)

    def sign_up(self, count: int) -> list[str]:
        """Sign ``count`` users up; their ids."""
        ids = []
        for n in range(count):
            status, body, _ = self.request(
                "POST",
                f"{self.users_url}/users",
                {"email": f"{self.run_id}-{n}@example.com", "name": f"Shopper {n}"},
                {"X-Correlation-Id": f"{self.run_id}-signup-{n}"},
            )
            if status != 201:
                raise RuntimeError(f"sign-up {n} answered {status}: {body}")
            ids.append(str(body["id"]))
        return ids

    def products(self) -> list[Product]:
        """Every product in the catalog (following its pages)."""
        products: list[Product] = []
        token: str | None = None
        while True:
            query = "limit=100" + (f"&next_token={token}" if token else "")
            status, body, _ = self.request("GET", f"{self.catalog_url}/products?{query}")
            if status != 200:
                raise RuntimeError(f"GET /products answered {status}: {body}")
            products += [Product(p["id"], p["price_cents"]) for p in body["products"]]
            token = body.get("next_token")
            if not token:
                return products

    def place(
        self, key: str, user_id: str, lines: Sequence[tuple[str, int]]
    ) -> tuple[PlacedOrder | Refusal, int]:
        """Place one order, retrying ``503`` and lost answers; the outcome and the retries."""
        order = {"user_id": user_id, "items": [{"product_id": p, "quantity": q} for p, q in lines]}
        headers = {"Idempotency-Key": key, "X-Correlation-Id": key}
        started = time.monotonic()
        attempts = 0
        unanswered = False
        while True:
            attempts += 1
            try:
                status, body, answer_headers = self.request(
                    "POST", f"{self.orders_url}/orders", order, headers
                )
            except urllib3.exceptions.HTTPError:
                status, body, answer_headers = 0, None, {}
            if status == 201:
                return PlacedOrder(str(body["id"]), user_id, tuple(lines), attempts), attempts - 1
            # A 409 after an attempt that got no answer is that attempt, still running under
            # the key ("retry in a moment"); on its own, a 409 is a refusal.
            retryable = status in (0, 502, 503, 504) or (status == 409 and unanswered)
            unanswered = unanswered or status in (0, 502, 504)
            if not retryable or time.monotonic() - started > GIVE_UP_AFTER_S:
                code = body.get("error", {}).get("code") if isinstance(body, dict) else None
                return Refusal(key, status, code), attempts - 1
            time.sleep(_retry_wait(answer_headers))


def _retry_wait(headers: dict[str, str]) -> float:
    """``Retry-After`` (seconds) capped at :data:`MAX_RETRY_WAIT_S`, with a little jitter."""
    try:
        given = float(headers.get("Retry-After", headers.get("retry-after", "1")))
    except ValueError:
        given = 1.0
    return min(MAX_RETRY_WAIT_S, max(0.2, given)) * random.uniform(0.8, 1.2)  # noqa: S311


def basket(
    rng: random.Random, products: Sequence[Product], scarce: Sequence[str], scarce_share: float
) -> list[tuple[str, int]]:
    """One to three lines of one or two units; a line asks for a scarce product at
    ``scarce_share``.

    >>> shelf = [Product("p-a", 100), Product("p-b", 200)]
    >>> lines = basket(random.Random(1), shelf, ["p-x"], 0.0)
    >>> 1 <= len(lines) <= 2 and all(p in {"p-a", "p-b"} for p, _ in lines)
    True
    >>> basket(random.Random(1), shelf, ["p-x"], 1.0)[0][0]
    'p-x'
    """
    plenty = [p.id for p in products if p.id not in scarce]
    chosen = rng.sample(plenty, k=min(len(plenty), rng.randint(1, 3)))
    if scarce and rng.random() < scarce_share:
        chosen = [rng.choice(list(scarce)), *chosen[1:]]
    return [(product, rng.randint(1, 2)) for product in chosen]


def place_orders(
    shop: Shop,
    users: Sequence[str],
    baskets: Sequence[list[tuple[str, int]]],
    progress: Callable[[str], None],
) -> Placement:
    """Place one order per basket with ``shop.clients`` clients at once."""
    placement = Placement()
    every = max(1, len(baskets) // 10)

    def one(n: int) -> None:
        outcome, retried = shop.place(f"{shop.run_id}-order-{n}", users[n % len(users)], baskets[n])
        placement.add(outcome, retried)
        done = len(placement.placed) + len(placement.refused)
        if done % every == 0:
            progress(f"   {done}/{len(baskets)} orders answered ({placement.retried_503} retried)")

    with ThreadPoolExecutor(shop.clients) as pool:
        list(pool.map(one, range(len(baskets))))
    return placement
