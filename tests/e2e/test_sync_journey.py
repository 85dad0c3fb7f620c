"""The synchronous journey through the deployed services, over API Gateway and Lambda invoke.

Orders checks the user with the user service over HTTP and prices items from the catalog by
RPC; reviews joins catalog products (RPC) with their reviews. Everything here goes through the
deployed stacks exactly as a client would reach them.

The breaker test changes the orders function's configuration; it runs last in this module and
puts everything back in ``finally``.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import urllib3

from tests.conftest import RunningEmulator
from tests.e2e.conftest import DeployedSystem
from tests.e2e.lambda_support import wait_for_state, wait_until

CORRELATION_HEADER = "X-Correlation-Id"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USERS_CIRCUIT = "users-api"
"""The circuit orders keep for the users API (``chalicelib.wiring.USERS_DEPENDENCY``)."""

MUG = "p-ceramic-mug"
KETTLE = "p-pour-over-kettle"
"""Seed products of the catalog (``chalicelib.domain.SEED_PRODUCTS``)."""

# Generous bound for one request: a cold start plus the orders function's own retries.
REQUEST_TIMEOUT = urllib3.Timeout(connect=2.0, read=60.0)
_http = urllib3.PoolManager(maxsize=16, retries=False)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer with its JSON body decoded."""

    status: int
    headers: Mapping[str, str]
    body: Any


def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: Mapping[str, str] | None = None,
    raw: bytes | None = None,
) -> Answer:
    """Send one request (no client-side retries) and decode the JSON answer."""
    payload = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    response = _http.request(
        method,
        url,
        body=payload,
        headers={"Content-Type": "application/json", **(headers or {})},
        timeout=REQUEST_TIMEOUT,
    )
    decoded = json.loads(response.data) if response.data else None
    return Answer(response.status, response.headers, decoded)


def new_user(system: DeployedSystem, name: str = "Ada") -> dict[str, Any]:
    """Register a fresh user through the users API."""
    answer = call(
        "POST",
        system["users"].url("users"),
        {"email": f"{uuid.uuid4().hex[:12]}@example.org", "name": name},
    )
    assert answer.status == 201, answer.body
    user: dict[str, Any] = answer.body
    return user


def order_body(user_id: str, *items: tuple[str, int]) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "items": [{"product_id": product, "quantity": quantity} for product, quantity in items],
    }


def place_order(
    system: DeployedSystem, user_id: str, *items: tuple[str, int], correlation_id: str
) -> Answer:
    """``POST /orders`` of ``items`` for ``user_id`` under the client's ``correlation_id``."""
    return call(
        "POST",
        system["orders"].url("orders"),
        order_body(user_id, *items),
        headers={CORRELATION_HEADER: correlation_id},
    )


def catalog_product(system: DeployedSystem, product_id: str) -> dict[str, Any]:
    answer = call("GET", system["catalog"].url(f"products/{product_id}"))
    assert answer.status == 200, answer.body
    product: dict[str, Any] = answer.body
    return product


def orders_of_user(emulator: RunningEmulator, system: DeployedSystem, user_id: str) -> list[str]:
    """Ids of the orders placed for ``user_id``: every ``order.placed`` in the orders' event
    store naming them (a consistent scan; the read model may lag behind)."""
    table = system["orders"].outputs["OrderEventsTableName"]
    paginator = emulator.client("dynamodb").get_paginator("scan")
    ids: list[str] = []
    for page in paginator.paginate(
        TableName=table,
        FilterExpression="#type = :placed",
        ExpressionAttributeNames={"#type": "type"},
        ExpressionAttributeValues={":placed": {"S": "order.placed"}},
        ConsistentRead=True,
    ):
        for item in page["Items"]:
            data = json.loads(item["event"]["S"])["data"]
            if data["user_id"] == user_id:
                ids.append(data["order_id"])
    return ids


def test_an_order_is_priced_from_the_catalog_and_keeps_the_callers_correlation_id(
    deployed: DeployedSystem,
) -> None:
    # GIVEN a registered user and two catalog products
    user = new_user(deployed)
    mug, kettle = catalog_product(deployed, MUG), catalog_product(deployed, KETTLE)
    correlation_id = f"journey-{uuid.uuid4()}"
    # WHEN the user orders them (orders asks users over HTTP and the catalog by RPC)
    placed = place_order(deployed, user["id"], (MUG, 2), (KETTLE, 1), correlation_id=correlation_id)
    # THEN the order is created, each line priced from the catalog, the total their sum
    assert placed.status == 201, placed.body
    assert placed.headers[CORRELATION_HEADER] == correlation_id
    order = placed.body
    assert order["user_id"] == user["id"]
    assert order["status"] == "placed"
    lines = {line["product_id"]: line for line in order["lines"]}
    assert lines[MUG]["name"] == mug["name"]
    assert lines[MUG]["unit_price_cents"] == mug["price_cents"]
    assert lines[MUG]["line_total_cents"] == 2 * mug["price_cents"]
    assert lines[KETTLE]["line_total_cents"] == kettle["price_cents"]
    assert order["total_cents"] == 2 * mug["price_cents"] + kettle["price_cents"]
    assert order["currency"] == mug["currency"]
    # WHEN it is read back with the same correlation id
    fetched = call(
        "GET",
        deployed["orders"].url(f"orders/{order['id']}"),
        headers={CORRELATION_HEADER: correlation_id},
    )
    # THEN it is the same order, and the correlation id comes back again
    assert fetched.status == 200
    assert fetched.body == order
    assert fetched.headers[CORRELATION_HEADER] == correlation_id


def test_product_reviews_join_the_catalog_product_with_its_reviews(
    deployed: DeployedSystem,
) -> None:
    # GIVEN a catalog product and a review of it by a new author
    product = catalog_product(deployed, MUG)
    author = f"reviewer-{uuid.uuid4().hex[:8]}"
    reviews_url = deployed["reviews"].url(f"products/{MUG}/reviews")
    posted = call("POST", reviews_url, {"author": author, "rating": 4, "text": "Holds heat well."})
    assert posted.status == 201, posted.body
    # WHEN the product's reviews are read
    answer = call("GET", reviews_url)
    # THEN the product comes from the catalog (RPC) and the new review is among its reviews
    assert answer.status == 200, answer.body
    # (all but its stock, which follows inventory, moved by other orders meanwhile)
    shown = {name: value for name, value in answer.body["product"].items() if name != "stock"}
    assert shown == {name: value for name, value in product.items() if name != "stock"}
    mine = [review for review in answer.body["reviews"] if review["author"] == author]
    assert len(mine) == 1
    assert mine[0]["id"] == posted.body["id"]
    assert mine[0]["rating"] == 4


def test_reviews_of_an_unknown_product_are_not_found(deployed: DeployedSystem) -> None:
    # GIVEN a product id the catalog does not have
    url = deployed["reviews"].url("products/p-no-such-thing/reviews")
    # WHEN its reviews are read  THEN the catalog's "not found" reaches the client as 404
    answer = call("GET", url)
    assert answer.status == 404, answer.body
    assert answer.body["error"]["code"] == "not_found"


def test_the_same_idempotency_key_twice_places_one_order(deployed: DeployedSystem) -> None:
    # GIVEN a user and an order request with an idempotency key
    user = new_user(deployed)
    body = order_body(user["id"], (MUG, 1))
    key = {IDEMPOTENCY_HEADER: str(uuid.uuid4())}
    # WHEN the request is sent twice
    first = call("POST", deployed["orders"].url("orders"), body, headers=key)
    second = call("POST", deployed["orders"].url("orders"), body, headers=key)
    # THEN the first creates the order and the repeat answers the very same order
    assert first.status == 201, first.body
    assert second.status == 200, second.body
    assert second.body == first.body


def test_the_same_idempotency_key_from_eight_threads_places_exactly_one_order(
    deployed: DeployedSystem, emulator: RunningEmulator
) -> None:
    # GIVEN a user and one order request with one idempotency key
    user = new_user(deployed)
    body = order_body(user["id"], (KETTLE, 1))
    key = {IDEMPOTENCY_HEADER: str(uuid.uuid4())}
    url = deployed["orders"].url("orders")
    # WHEN 8 threads send it at once
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: call("POST", url, body, headers=key), range(8)))
    # THEN exactly one created it; the others replayed it (or, racing its very write, were
    # told to retry in a moment)
    statuses = sorted(answer.status for answer in answers)
    assert statuses.count(201) == 1, statuses
    assert set(statuses) <= {200, 201, 409}, [answer.body for answer in answers]
    order_ids = {answer.body["id"] for answer in answers if answer.status in (200, 201)}
    assert len(order_ids) == 1
    # AND the orders table holds one order for the user, the one answered
    assert orders_of_user(emulator, deployed, user["id"]) == list(order_ids)
    # AND a later retry with the key gets that order back
    again = call("POST", url, body, headers=key)
    assert again.status == 200
    assert again.body["id"] in order_ids


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        pytest.param({"items": [{"product_id": MUG, "quantity": 1}]}, "user_id", id="no-user"),
        pytest.param({"user_id": "u", "items": []}, "items", id="no-items"),
        pytest.param(
            {"user_id": "u", "items": [{"product_id": MUG, "quantity": 0}]},
            "items[0].quantity",
            id="zero-quantity",
        ),
        pytest.param(
            {"user_id": "u", "items": [{"product_id": MUG, "quantity": 1}], "coupon": "x"},
            "coupon",
            id="unknown-field",
        ),
    ],
)
def test_a_malformed_order_is_refused_with_400_naming_the_field(
    deployed: DeployedSystem, payload: dict[str, Any], field: str
) -> None:
    # GIVEN an order body that breaks the CreateOrder contract
    # WHEN it is posted through API Gateway
    answer = call("POST", deployed["orders"].url("orders"), payload)
    # THEN it is refused with 400 and a JSON error naming the offending field
    assert answer.status == 400, answer.body
    assert answer.body["error"]["code"] == "invalid_request"
    assert answer.body["error"]["field"] == field


def test_a_body_that_is_not_json_is_refused_with_400(deployed: DeployedSystem) -> None:
    # GIVEN a body that is not JSON  WHEN it is posted as an order
    answer = call("POST", deployed["orders"].url("orders"), raw=b'{"user_id": ')
    # THEN 400 with a JSON error body
    assert answer.status == 400, answer.body
    assert answer.body["error"]["code"] == "invalid_request"


def test_an_order_for_an_unknown_user_is_refused_with_422_naming_user_id(
    deployed: DeployedSystem,
) -> None:
    # GIVEN a well-formed order for a user the user service does not know
    body = order_body(f"ghost-{uuid.uuid4()}", (MUG, 1))
    # WHEN it is posted
    answer = call("POST", deployed["orders"].url("orders"), body)
    # THEN orders asked users (404) and refuses it with 422 naming user_id
    assert answer.status == 422, answer.body
    assert answer.body["error"]["code"] == "unprocessable"
    assert answer.body["error"]["field"] == "user_id"


def log_lines_with(
    emulator: RunningEmulator, function_name: str, correlation_id: str
) -> list[dict[str, Any]]:
    """The JSON log lines of ``function_name`` that carry ``correlation_id``.

    Matched here rather than with a ``filterPattern``: the emulator does not apply patterns.
    """
    logs = emulator.client("logs")
    group = f"/aws/lambda/{function_name}"
    found: list[dict[str, Any]] = []
    try:
        pages = logs.get_paginator("filter_log_events").paginate(logGroupName=group)
        events = [event for page in pages for event in page["events"]]
    except logs.exceptions.ResourceNotFoundException:
        return found
    for event in events:
        message = event["message"].strip()
        if not message.startswith("{"):
            continue
        try:
            line = json.loads(message)
        except ValueError:
            continue
        if isinstance(line, dict) and line.get("correlation_id") == correlation_id:
            found.append(line)
    return found


def test_the_callers_correlation_id_reaches_the_logs_of_orders_users_and_catalog_rpc(
    deployed: DeployedSystem, emulator: RunningEmulator
) -> None:
    # GIVEN a user and a correlation id chosen by the client
    user = new_user(deployed)
    correlation_id = f"trace-{uuid.uuid4()}"
    # WHEN an order is placed with it
    placed = place_order(deployed, user["id"], (MUG, 1), correlation_id=correlation_id)
    assert placed.status == 201, placed.body
    # THEN the log lines of orders, of users (HTTP) and of the catalog's RPC function carry it
    functions = {
        "orders": deployed["orders"].functions["APIHandler"],
        "users": deployed["users"].functions["APIHandler"],
        "catalog": deployed["catalog"].functions["Rpc"],
    }
    for service, function_name in functions.items():

        def logged(name: str = function_name) -> list[dict[str, Any]] | None:
            return log_lines_with(emulator, name, correlation_id) or None

        lines = wait_until(logged, timeout_s=30.0, interval_s=0.5)
        assert {line["service"] for line in lines} == {service}
        assert all(line.get("request_id") for line in lines)


class BlackHole:
    """A TCP server on 127.0.0.1 that accepts connections and never answers.

    Counts the connections it accepted; holds them open until closed.
    """

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0), backlog=64)
        # accept() is not woken by close() on Linux: poll, so close() can stop the thread.
        self._server.settimeout(0.1)
        self.port: int = self._server.getsockname()[1]
        self._closed = threading.Event()
        self._accepted: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return len(self._accepted)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                connection, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            with self._lock:
                self._accepted.append(connection)

    def close(self) -> None:
        """Stop accepting and drop every held connection."""
        self._closed.set()
        self._thread.join(timeout=5)
        self._server.close()
        with self._lock:
            for connection in self._accepted:
                connection.close()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    try:
        yield hole
    finally:
        hole.close()


def set_environment(lambda_client: Any, function_name: str, variables: dict[str, str]) -> None:
    """Replace the function's environment and wait until the update has been applied."""
    lambda_client.update_function_configuration(
        FunctionName=function_name, Environment={"Variables": variables}
    )
    configuration = wait_for_state(lambda_client, function_name)
    assert configuration.get("LastUpdateStatus") == "Successful", configuration


def breaker_state(emulator: RunningEmulator, system: DeployedSystem) -> str | None:
    item = emulator.client("dynamodb").get_item(
        TableName=system.breaker_table, Key={"id": {"S": USERS_CIRCUIT}}, ConsistentRead=True
    )
    state = item.get("Item", {}).get("state", {}).get("S")
    return None if state is None else str(state)


MAX_ORDERS_UNTIL_OPEN = 6
"""Bound on requests needed to open the circuit (failure threshold 5, three attempts each)."""


def test_a_users_service_that_hangs_opens_the_shared_breaker_and_orders_fail_fast(
    deployed: DeployedSystem, emulator: RunningEmulator, black_hole: BlackHole
) -> None:
    # GIVEN a user, and the orders function pointed at a users API that accepts and never answers
    user = new_user(deployed)
    body = order_body(user["id"], (MUG, 1))
    lambda_client = emulator.client("lambda")
    function_name = deployed["orders"].functions["APIHandler"]
    configuration = lambda_client.get_function_configuration(FunctionName=function_name)
    original: dict[str, str] = configuration["Environment"]["Variables"]
    dynamodb = emulator.client("dynamodb")
    set_environment(
        lambda_client,
        function_name,
        {
            **original,
            "USERS_API_URL": f"http://127.0.0.1:{black_hole.port}/api",
            # The same rule at a third of the wait: whole 1.5 s attempts, each counted.
            "USERS_API_READ_TIMEOUT_S": "1.5",
            "CATALOG_RPC_TIMEOUT_S": "1.5",
            "REQUEST_DEADLINE_S": "3.5",
        },
    )
    try:
        # WHEN orders are placed until one is refused without reaching the users API
        refused_unseen: Answer | None = None
        attempts_per_request: list[int] = []
        failures: list[Answer] = []
        for _ in range(MAX_ORDERS_UNTIL_OPEN):
            before = black_hole.connections
            answer = call("POST", deployed["orders"].url("orders"), body)
            reached = black_hole.connections - before
            if reached == 0:
                refused_unseen = answer
                break
            attempts_per_request.append(reached)
            failures.append(answer)
        # THEN every request that reached the hole timed out into a 503 with Retry-After,
        # answered by orders itself (a JSON error naming the dependency), not by a gateway
        # timeout: its own timeouts and retries end well before the function's timeout
        assert failures, "no request reached the black hole"
        for failed in failures:
            assert failed.status == 503, failed.body
            assert int(failed.headers["Retry-After"]) >= 1
            assert failed.body["error"]["code"] == "dependency_unavailable"
        # AND the circuit opened: a later request was refused at once, with no connection made
        assert refused_unseen is not None, f"connections per request: {attempts_per_request}"
        assert refused_unseen.status == 503, refused_unseen.body
        assert int(refused_unseen.headers["Retry-After"]) >= 1
        assert refused_unseen.body["error"]["code"] == "dependency_unavailable"
        # AND the shared breaker table says OPEN, for every container of every function
        assert breaker_state(emulator, deployed) == "OPEN"
    finally:
        set_environment(lambda_client, function_name, original)
        # The circuit would close by itself after its recovery timeout; reset it so that the
        # tests after this one do not depend on that timing.
        dynamodb.delete_item(TableName=deployed.breaker_table, Key={"id": {"S": USERS_CIRCUIT}})
    # AND with the users API back and the circuit reset, orders are placed again
    recovered = call("POST", deployed["orders"].url("orders"), body)
    assert recovered.status == 201, recovered.body
