"""The orders service under moto, users and catalog faked at the client boundary."""

from __future__ import annotations

import ast
import json
import os
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from chalice.test import Client

from lambdamesh_toolkit.aws.signing import SigV4Signer
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.catalog import Product
from lambdamesh_toolkit.contracts.events import (
    EventData,
    EventEnvelope,
    InventoryReserved,
    OrderPlaced,
    PaymentFailed,
    PaymentProcessed,
)
from lambdamesh_toolkit.contracts.orders import CreateOrder, Order, OrderItemRequest
from lambdamesh_toolkit.errors import Conflict, DependencyUnavailable, Unprocessable
from lambdamesh_toolkit.events.envelope import new_event
from lambdamesh_toolkit.events.publishing import BatchOutcome, PreparedEvent
from lambdamesh_toolkit.events.store import EventStore
from lambdamesh_toolkit.events.time_guard import TimeGuard
from lambdamesh_toolkit.trace_context import parse_traceparent
from tests.support.dynamodb_streams import stream_event
from tests.unit.services.conftest import TopicInbox
from tests.unit.services.service_loader import LoadedService, load_service
from tests.unit.services.support import (
    PRODUCTS,
    FakeCatalogRpc,
    FakeUsersApi,
    captured_log,
    json_body,
    post_json,
)

ORDER = {
    "user_id": "u-ann",
    "items": [{"product_id": "p-kettle", "quantity": 1}, {"product_id": "p-beans", "quantity": 2}],
}


@pytest.fixture
def users_api() -> FakeUsersApi:
    return FakeUsersApi(known={"u-ann"})


@pytest.fixture
def catalog_rpc() -> FakeCatalogRpc:
    return FakeCatalogRpc()


@pytest.fixture
def desk(orders: LoadedService, users_api: FakeUsersApi, catalog_rpc: FakeCatalogRpc) -> Any:
    """The real order desk and adapters, the two clients replaced by doubles."""
    settings = load_settings(orders.module("chalicelib.settings").OrdersSettings)
    wiring = orders.module("chalicelib.wiring")
    return wiring.build_order_desk(settings, users_http=users_api, catalog_rpc=catalog_rpc)


@pytest.fixture
def client(orders: LoadedService, desk: Any, monkeypatch: pytest.MonkeyPatch) -> Client:
    monkeypatch.setattr(orders.app_module, "order_desk", lambda: desk)
    return orders.client()


def stored_orders() -> list[dict[str, Any]]:
    """The orders placed: every ``order.placed`` in the event store, as stored."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    items: list[dict[str, Any]] = dynamodb.scan(TableName=os.environ["ORDER_EVENTS_TABLE"])["Items"]
    return [item for item in items if item["type"]["S"] == "order.placed"]


def stored_keys() -> list[dict[str, Any]]:
    """The ``Idempotency-Key`` records, as stored."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    items: list[dict[str, Any]] = dynamodb.scan(TableName=os.environ["ORDER_IDEMPOTENCY_TABLE"])[
        "Items"
    ]
    return items


def stream_of(order_id: str) -> list[EventEnvelope]:
    """The order's events, in order."""
    store = EventStore(os.environ["ORDER_EVENTS_TABLE"])
    return [stored.envelope for stored in store.read(f"order-{order_id}")]


def test_post_order_prices_it_from_the_catalog_and_answers_201(client: Client) -> None:
    # GIVEN a known user and two catalog products
    # WHEN an order is posted
    response = post_json(client, "/orders", ORDER)
    # THEN 201 with lines priced at catalog prices and their total
    assert response.status_code == 201
    order = Order.model_validate(json_body(response))
    assert [(line.product_id, line.line_total_cents) for line in order.lines] == [
        ("p-kettle", 5900),
        ("p-beans", 2 * 2490),
    ]
    assert (order.total_cents, order.currency, order.status) == (5900 + 4980, "EUR", "placed")


def test_get_order_returns_the_placed_order(client: Client) -> None:
    # GIVEN a placed order
    placed = json_body(post_json(client, "/orders", ORDER))
    # WHEN it is fetched
    response = client.http.get(f"/orders/{placed['id']}")
    # THEN the same body comes back
    assert response.status_code == 200
    assert json_body(response) == placed


def test_get_unknown_order_is_404(client: Client) -> None:
    # GIVEN no such order
    # WHEN it is fetched
    response = client.http.get("/orders/o-none")
    # THEN 404
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"items": ORDER["items"]}, "user_id"),
        ({**ORDER, "items": []}, "items"),
        ({**ORDER, "items": [{"product_id": "p-kettle", "quantity": 0}]}, "items[0].quantity"),
        ({**ORDER, "items": [{"product_id": "p-kettle"}]}, "items[0].quantity"),
        ({**ORDER, "items": [{"product_id": "p kettle", "quantity": 1}]}, "items[0].product_id"),
        ({**ORDER, "coupon": "FREE"}, "coupon"),
    ],
)
def test_invalid_order_is_400_naming_the_field(
    client: Client, body: dict[str, Any], field: str
) -> None:
    # GIVEN a body breaking the CreateOrder contract
    # WHEN it is posted
    response = post_json(client, "/orders", body)
    # THEN 400 naming the field, and nothing is stored
    assert response.status_code == 400
    assert json_body(response)["error"]["field"] == field
    assert stored_orders() == []


def test_body_that_is_not_json_is_400(client: Client) -> None:
    # GIVEN a body that is not JSON
    # WHEN it is posted
    response = client.http.post("/orders", headers={"Content-Type": "application/json"}, body=b"[")
    # THEN 400 naming the body
    assert response.status_code == 400
    assert json_body(response)["error"]["field"] == "body"


def test_unknown_user_is_422_naming_user_id(client: Client, catalog_rpc: FakeCatalogRpc) -> None:
    # GIVEN a user the user service does not know, and a catalog that cannot answer
    catalog_rpc.failure = DependencyUnavailable("catalog-rpc", 1.0)
    # WHEN they order
    response = post_json(client, "/orders", {**ORDER, "user_id": "u-ghost"})
    # THEN 422 naming user_id (the user's answer counts first), nothing stored
    assert response.status_code == 422
    assert json_body(response)["error"]["field"] == "user_id"
    assert stored_orders() == []


def test_the_user_and_the_catalog_are_asked_at_once_under_the_requests_correlation_id(
    client: Client, users_api: FakeUsersApi, catalog_rpc: FakeCatalogRpc
) -> None:
    # GIVEN a user service and a catalog that each wait, inside their call, until the other
    # is being asked (one after the other, the first would wait in vain)
    users_asked, catalog_asked = threading.Event(), threading.Event()
    seen_beside: list[tuple[str, bool]] = []

    def user_call() -> None:
        users_asked.set()
        seen_beside.append(("users", catalog_asked.wait(timeout=30)))

    def catalog_call() -> None:
        catalog_asked.set()
        seen_beside.append(("catalog", users_asked.wait(timeout=30)))

    users_api.on_get, catalog_rpc.on_call = user_call, catalog_call
    # WHEN an order is posted
    response = post_json(client, "/orders", ORDER, headers={"X-Correlation-Id": "t-both"})
    # THEN it is placed, and each call saw the other running
    assert response.status_code == 201, response.body
    assert sorted(seen_beside) == [("catalog", True), ("users", True)]
    assert [call[2] for call in catalog_rpc.calls] == ["t-both"]


def test_unknown_product_is_422_naming_its_item(client: Client) -> None:
    # GIVEN an order whose second item is not in the catalog
    body = {**ORDER, "items": [ORDER["items"][0], {"product_id": "p-unicorn", "quantity": 1}]}
    # WHEN it is posted
    response = post_json(client, "/orders", body)
    # THEN 422 naming items[1].product_id
    assert response.status_code == 422
    assert json_body(response)["error"]["field"] == "items[1].product_id"


def test_an_order_of_three_items_asks_the_catalog_once_for_all_of_them(
    client: Client, catalog_rpc: FakeCatalogRpc
) -> None:
    # GIVEN a catalog holding a third EUR product
    mug = Product(id="p-mug", name="Mug", price_cents=1800, currency="EUR", stock=4)
    catalog_rpc.products = {**PRODUCTS, mug.id: mug}
    items = [*ORDER["items"], {"product_id": mug.id, "quantity": 1}]
    # WHEN an order of three items is posted
    response = post_json(client, "/orders", {**ORDER, "items": items}, {"X-Correlation-Id": "t-3"})
    # THEN it is placed, priced from ONE GetProducts call naming the three products in order
    assert response.status_code == 201
    assert json_body(response)["total_cents"] == 5900 + 2 * 2490 + 1800
    assert catalog_rpc.calls == [("GetProducts", ("p-kettle", "p-beans", "p-mug"), "t-3")]


def test_unknown_product_among_known_ones_is_asked_for_in_the_same_call(
    client: Client, catalog_rpc: FakeCatalogRpc
) -> None:
    # GIVEN an order whose second item is not in the catalog
    body = {**ORDER, "items": [ORDER["items"][0], {"product_id": "p-unicorn", "quantity": 1}]}
    # WHEN it is posted
    response = post_json(client, "/orders", body)
    # THEN one call asked for both, and the missing one is named: 422, nothing stored
    assert response.status_code == 422
    assert json_body(response)["error"]["field"] == "items[1].product_id"
    assert [call[:2] for call in catalog_rpc.calls] == [("GetProducts", ("p-kettle", "p-unicorn"))]
    assert stored_orders() == []


def test_products_in_two_currencies_are_422(client: Client) -> None:
    # GIVEN a EUR product and a USD product
    body = {**ORDER, "items": [ORDER["items"][0], {"product_id": "p-dollar-mug", "quantity": 1}]}
    # WHEN they are ordered together
    response = post_json(client, "/orders", body)
    # THEN 422 naming the item in the other currency
    assert response.status_code == 422
    assert json_body(response)["error"]["field"] == "items[1].product_id"


def test_users_down_is_503_with_retry_after(client: Client, users_api: FakeUsersApi) -> None:
    # GIVEN a user service whose circuit is open
    users_api.failure = DependencyUnavailable("users-api", 7, reason="circuit open")
    # WHEN an order is posted
    response = post_json(client, "/orders", ORDER)
    # THEN 503 with Retry-After, the JSON error body, and nothing stored
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert json_body(response)["error"]["code"] == "dependency_unavailable"
    assert stored_orders() == []


def test_users_unreachable_after_retries_still_answers_a_retry_after(
    client: Client, users_api: FakeUsersApi
) -> None:
    # GIVEN a user service the client gave up on without a hint (retries exhausted)
    users_api.failure = DependencyUnavailable("users-api", reason="cannot connect")
    # WHEN an order is posted
    response = post_json(client, "/orders", ORDER)
    # THEN 503 still tells when to come back
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


def test_catalog_down_is_503_with_retry_after(client: Client, catalog_rpc: FakeCatalogRpc) -> None:
    # GIVEN a catalog that times out beyond the retries
    catalog_rpc.failure = DependencyUnavailable("catalog-rpc", 1.5, reason="timeout")
    # WHEN an order is posted
    response = post_json(client, "/orders", ORDER)
    # THEN 503 with Retry-After
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "2"


def test_a_404_that_is_not_the_user_service_speaking_is_503(
    client: Client, users_api: FakeUsersApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a users URL that hits API Gateway's "no such route" 404 (no error body of ours)
    from lambdamesh_toolkit.http_client import HttpResult

    gateway_404 = HttpResult(404, {}, b'{"message":"Not Found"}', "users-api")
    monkeypatch.setattr(users_api, "get", lambda path: gateway_404)
    # WHEN an order is posted
    response = post_json(client, "/orders", ORDER)
    # THEN it is not taken for "no such user": 503, not 422
    assert response.status_code == 503


def test_correlation_id_goes_to_users_and_catalog_and_back(
    orders: LoadedService, client: Client, users_api: FakeUsersApi, catalog_rpc: FakeCatalogRpc
) -> None:
    # GIVEN a request with a correlation id, the service's log captured
    with captured_log(orders) as log:
        # WHEN an order is posted
        response = post_json(client, "/orders", ORDER, headers={"X-Correlation-Id": "trace-o1"})
    # THEN users (HTTP) and catalog (RPC) were called under it, the answer and logs carry it
    assert users_api.calls == [("/users/u-ann", "trace-o1")]
    assert {call[2] for call in catalog_rpc.calls} == {"trace-o1"}
    assert response.headers["X-Correlation-Id"] == "trace-o1"
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert lines
    assert {line["correlation_id"] for line in lines} == {"trace-o1"}


def test_the_users_client_signs_for_execute_api_with_the_functions_role_and_region(
    orders: LoadedService,
) -> None:
    # GIVEN the API function's settings and environment (its credentials: the role's, with a
    # session token; its region)
    settings = load_settings(orders.module("chalicelib.settings").OrdersSettings)
    # WHEN the wiring builds the client of the users API
    users = orders.module("chalicelib.wiring").build_users_client(settings)
    # THEN it is the users API's, and signs with SigV4 for execute-api in the function's region
    assert users.base_url == settings.users_api_url
    assert isinstance(users.signer, SigV4Signer)
    assert (users.signer.service, users.signer.region) == ("execute-api", "us-east-1")
    # AND what it signs carries the environment's key and session token (a Lambda role's)
    headers = users.signer.sign("GET", f"{settings.users_api_url}/users/u-ann", {}, None)
    key = os.environ["AWS_ACCESS_KEY_ID"]
    assert headers["Authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={key}/")
    assert "/us-east-1/execute-api/aws4_request, SignedHeaders=" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == os.environ["AWS_SESSION_TOKEN"]


# --- Idempotency-Key ----------------------------------------------------------------


def test_same_key_and_body_answers_the_same_order_once_201_then_200(client: Client) -> None:
    # GIVEN an order posted with an idempotency key
    key = {"Idempotency-Key": "k-1"}
    first = post_json(client, "/orders", ORDER, headers=key)
    # WHEN the same body is posted again with the same key, keys in another order
    reordered = {"items": ORDER["items"], "user_id": ORDER["user_id"]}
    second = post_json(client, "/orders", reordered, headers=key)
    # THEN 201 then 200 with the same body; one order stored, one key recorded
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.body == first.body
    assert len(stored_orders()) == 1
    assert [item["order_id"]["S"] for item in stored_keys()] == [json_body(first)["id"]]


@pytest.mark.parametrize("now_refused", ["user gone", "users down", "catalog down"])
def test_a_repeat_is_answered_with_its_order_whatever_the_lookups_say_now(
    client: Client, users_api: FakeUsersApi, catalog_rpc: FakeCatalogRpc, now_refused: str
) -> None:
    # GIVEN an order placed under a key
    first = post_json(client, "/orders", ORDER, headers={"Idempotency-Key": "k-6"})
    # WHEN the user has gone, or a dependency is down, and the client repeats the request
    if now_refused == "user gone":
        users_api.known.clear()
    elif now_refused == "users down":
        users_api.failure = DependencyUnavailable("users-api", reason="down")
    else:
        catalog_rpc.failure = DependencyUnavailable("catalog-rpc", reason="down")
    repeat = post_json(client, "/orders", ORDER, headers={"Idempotency-Key": "k-6"})
    # THEN the repeat is answered 200 with the order placed, and nothing more is stored
    assert (first.status_code, repeat.status_code) == (201, 200)
    assert repeat.body == first.body
    assert len(stored_orders()) == 1


def test_used_key_with_another_body_is_422_naming_the_key(client: Client) -> None:
    # GIVEN a key used for one order
    post_json(client, "/orders", ORDER, headers={"Idempotency-Key": "k-2"})
    # WHEN another body comes with the same key
    other = {**ORDER, "items": [{"product_id": "p-beans", "quantity": 9}]}
    response = post_json(client, "/orders", other, headers={"Idempotency-Key": "k-2"})
    # THEN 422 naming Idempotency-Key, and still one order
    assert response.status_code == 422
    assert json_body(response)["error"]["field"] == "Idempotency-Key"
    assert len(stored_orders()) == 1


def test_a_refused_request_frees_its_key_for_the_retry(
    client: Client, users_api: FakeUsersApi
) -> None:
    # GIVEN an order refused because the user did not exist yet
    body = {**ORDER, "user_id": "u-new"}
    refused = post_json(client, "/orders", body, headers={"Idempotency-Key": "k-3"})
    # WHEN the user now exists and the client retries with the same key
    users_api.known.add("u-new")
    retried = post_json(client, "/orders", body, headers={"Idempotency-Key": "k-3"})
    # THEN the retry runs and places the order
    assert (refused.status_code, retried.status_code) == (422, 201)


def test_a_repeat_running_alongside_the_first_gets_the_same_order_and_never_a_second(
    client: Client, desk: Any, users_api: FakeUsersApi
) -> None:
    # GIVEN a repeat of the request that runs, whole, while the first asks the user service
    request = CreateOrder.model_validate(ORDER)
    repeats: list[Any] = []
    users_api.on_get = lambda: repeats.append(desk.place(request, "k-4"))
    # WHEN the first goes on to place the order
    first = post_json(client, "/orders", ORDER, headers={"Idempotency-Key": "k-4"})
    # THEN the repeat placed it, and the first, finding the key taken as it wrote, answers
    # that order (200): both answers name one order, and one is stored
    [repeat] = repeats
    assert (repeat.replayed, first.status_code) == (False, 200)
    assert json_body(first)["id"] == repeat.order.id
    assert len(stored_orders()) == 1


def test_two_writes_of_one_key_at_the_same_moment_are_409(orders: LoadedService) -> None:
    # GIVEN DynamoDB cancelling the order's write because another transaction writes its key
    raced = ClientError(
        {
            "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
            "CancellationReasons": [{"Code": "None"}, {"Code": "TransactionConflict"}],
        },
        "TransactWriteItems",
    )

    class RacedStreams:
        def append(self, *args: object, **kwargs: object) -> int:
            raise raced

    class Everyone:
        def user_exists(self, user_id: str) -> bool:
            return True

    class Shelf:
        def get_products(self, product_ids: Sequence[str]) -> dict[str, Product | None]:
            return {product_id: PRODUCTS.get(product_id) for product_id in product_ids}

    records = orders.module("chalicelib.key_records").DynamoKeyRecords(
        boto3.client("dynamodb", region_name="us-east-1"), "keys", RacedStreams()
    )
    desk = orders.module("chalicelib.placing").OrderDesk(
        Everyone(), Shelf(), records, RacedStreams()
    )
    # WHEN an order is placed under a key
    # THEN it is refused 409, to be retried in a moment
    with pytest.raises(Conflict) as refused:
        desk.place(CreateOrder.model_validate(ORDER), "k-7")
    assert refused.value.status == 409
    assert "retry in a moment" in str(refused.value)


def test_a_key_past_its_expiry_names_a_new_order(orders: LoadedService, client: Client) -> None:
    # GIVEN a key's record past its expiry that DynamoDB has not deleted yet (TTL is lazy)
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.put_item(
        TableName=os.environ["ORDER_IDEMPOTENCY_TABLE"],
        Item={
            "key": {"S": "k-5"},
            "fingerprint": {"S": "fp-of-another-body"},
            "order_id": {"S": "o-old"},
            "expires_at": {"N": str(int(datetime(2020, 1, 1, tzinfo=UTC).timestamp()))},
        },
    )
    # WHEN a request comes with that key (another body, even)
    response = post_json(client, "/orders", ORDER, headers={"Idempotency-Key": "k-5"})
    # THEN it places a new order, and the key now names it
    assert response.status_code == 201
    [record] = stored_keys()
    assert record["order_id"]["S"] == json_body(response)["id"] != "o-old"
    assert len(stored_orders()) == 1


def test_invalid_idempotency_key_is_400_naming_it(client: Client) -> None:
    # GIVEN a key longer than allowed
    # WHEN an order is posted with it
    response = post_json(client, "/orders", ORDER, headers={"Idempotency-Key": "k" * 300})
    # THEN 400 naming the header
    assert response.status_code == 400
    assert json_body(response)["error"]["field"] == "Idempotency-Key"


def test_without_a_key_every_post_is_a_new_order(client: Client) -> None:
    # GIVEN no idempotency key
    # WHEN the same body is posted twice
    first = json_body(post_json(client, "/orders", ORDER))
    second = json_body(post_json(client, "/orders", ORDER))
    # THEN two orders exist (the key is how a client asks for at-most-once)
    assert first["id"] != second["id"]
    assert len(stored_orders()) == 2


# --- pricing and idempotency decisions, without AWS ----------------------------------


@pytest.fixture
def service_modules() -> LoadedService:
    return load_service("orders")


def items(*pairs: tuple[str, int]) -> list[OrderItemRequest]:
    return [OrderItemRequest(product_id=p, quantity=q) for p, q in pairs]


def test_pricing_multiplies_unit_prices_and_sums_lines(service_modules: LoadedService) -> None:
    # GIVEN two items of catalog products
    pricing = service_modules.module("chalicelib.pricing")
    # WHEN they are priced
    priced = pricing.price_items(items(("p-kettle", 2), ("p-beans", 3)), PRODUCTS)
    # THEN each line is unit x quantity and the total their sum, in the products' currency
    assert [line.line_total_cents for line in priced.lines] == [11800, 7470]
    assert (priced.total_cents, priced.currency) == (19270, "EUR")


def test_pricing_names_the_unknown_product(service_modules: LoadedService) -> None:
    # GIVEN an item whose product the catalog lacks
    pricing = service_modules.module("chalicelib.pricing")
    products: dict[str, Product | None] = {**PRODUCTS, "p-gone": None}
    # WHEN it is priced
    # THEN Unprocessable naming its product_id
    with pytest.raises(Unprocessable) as refused:
        pricing.price_items(items(("p-beans", 1), ("p-gone", 1)), products)
    assert refused.value.field == "items[1].product_id"


def test_a_product_listed_twice_is_refused(service_modules: LoadedService) -> None:
    # GIVEN the same product in two items
    pricing = service_modules.module("chalicelib.pricing")
    # WHEN the items are checked
    # THEN the second occurrence is named
    with pytest.raises(Unprocessable) as refused:
        pricing.check_distinct_products(items(("p-beans", 1), ("p-kettle", 1), ("p-beans", 2)))
    assert refused.value.field == "items[2].product_id"


@pytest.mark.parametrize(("same_body", "verdict"), [(True, "REPLAY"), (False, "MISMATCH")])
def test_idempotency_decision(
    service_modules: LoadedService, same_body: bool, verdict: str
) -> None:
    # GIVEN a key's record, and a request with the same or another body
    idempotency = service_modules.module("chalicelib.idempotency")
    record = idempotency.new_record("k", "fp-1", "o-1", now_s=1000)
    # WHEN the decision is made
    decided = idempotency.decide(record, "fp-1" if same_body else "fp-2")
    # THEN it is the expected verdict
    assert decided == idempotency.Verdict(verdict)


def test_fingerprint_ignores_key_order_but_not_content(service_modules: LoadedService) -> None:
    # GIVEN two spellings of one request and a different request
    idempotency = service_modules.module("chalicelib.idempotency")
    one = CreateOrder.model_validate_json(json.dumps(ORDER))
    same = CreateOrder.model_validate_json(
        '{"items":[{"quantity":1,"product_id":"p-kettle"},{"quantity":2,"product_id":"p-beans"}],'
        '"user_id":"u-ann"}'
    )
    other = CreateOrder.model_validate({**ORDER, "user_id": "u-bob"})
    # THEN the spellings share a fingerprint and the other request does not
    assert idempotency.fingerprint(one) == idempotency.fingerprint(same)
    assert idempotency.fingerprint(one) != idempotency.fingerprint(other)


# --- the event store, its stream, the read model ------------------------------------------


def publish_appended(orders: LoadedService) -> dict[str, Any]:
    """Run the stream publisher over what the event store's stream holds; its answer."""
    event = stream_event(os.environ["ORDER_EVENTS_TABLE"])
    answer: dict[str, Any] = orders.app_module.publish_order_events(event, None)
    return answer


def project_appended(orders: LoadedService) -> dict[str, Any]:
    """Run the projector over what the event store's stream holds; its answer."""
    event = stream_event(os.environ["ORDER_EVENTS_TABLE"])
    answer: dict[str, Any] = orders.app_module.project_orders(event, None)
    return answer


def test_placing_an_order_appends_order_placed_to_its_stream_and_publishes_nothing(
    client: Client, orders_topic: TopicInbox
) -> None:
    # GIVEN a request carrying a correlation id
    # WHEN an order is placed
    order = json_body(post_json(client, "/orders", ORDER, headers={"X-Correlation-Id": "trace-p1"}))
    # THEN its stream holds one order.placed with the order's lines and total
    [placed] = stream_of(order["id"])
    assert (placed.type, placed.version, placed.source) == ("order.placed", 1, "orders")
    assert (placed.correlation_id, placed.causation_id) == ("trace-p1", None)
    data = OrderPlaced.model_validate(placed.data)
    assert (data.order_id, data.user_id) == (order["id"], "u-ann")
    assert [line.model_dump(mode="json") for line in data.lines] == order["lines"]
    assert (data.total_cents, data.currency) == (order["total_cents"], order["currency"])
    # AND the API published nothing itself: only the stream publisher does
    assert orders_topic.messages() == []


def test_the_stream_publisher_publishes_every_appended_event_on_the_fifo_topic(
    orders: LoadedService, client: Client, orders_topic: TopicInbox
) -> None:
    # GIVEN two orders placed, one with a correlation id
    first = json_body(post_json(client, "/orders", ORDER, headers={"X-Correlation-Id": "trace-p2"}))
    second = json_body(post_json(client, "/orders", ORDER))
    # WHEN the stream publisher runs over the event store's stream
    answer = publish_appended(orders)
    # THEN both order.placed events are published, each in its order's group, under its id
    assert answer == {"batchItemFailures": []}
    messages = orders_topic.messages()
    [envelope_one, envelope_two] = [stream_of(order["id"])[0] for order in (first, second)]
    assert [(m["group_id"], m["deduplication_id"]) for m in messages] == [
        (first["id"], envelope_one.id),
        (second["id"], envelope_two.id),
    ]
    assert EventEnvelope.model_validate(messages[0]["body"]) == envelope_one
    attributes = messages[0]["attributes"]
    # AND each carries the trace context of its publish (the trace the API request started)
    assert all(parse_traceparent(m["attributes"].pop("traceparent")) for m in messages)
    assert attributes == {
        "type": "order.placed",
        "version": "1",
        "correlation_id": "trace-p2",
    }


def test_a_stream_record_that_is_no_event_goes_to_the_dead_letter_queue_and_the_rest_publish(
    orders: LoadedService, client: Client, orders_topic: TopicInbox, order_events_dlq: str
) -> None:
    # GIVEN an item that is not an event written to the event store, then an order placed
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.put_item(
        TableName=os.environ["ORDER_EVENTS_TABLE"],
        Item={"stream_id": {"S": "order-o-junk"}, "version": {"N": "1"}, "event": {"S": "{"}},
    )
    order = json_body(post_json(client, "/orders", ORDER))
    # WHEN the stream publisher runs over both records
    answer = publish_appended(orders)
    # THEN the batch succeeds: the order's event is published
    assert answer == {"batchItemFailures": []}
    assert [m["body"]["data"]["order_id"] for m in orders_topic.messages()] == [order["id"]]
    # AND the junk record waits in the dead-letter queue with the reason
    sqs = boto3.client("sqs", region_name="us-east-1")
    [letter] = sqs.receive_message(QueueUrl=order_events_dlq, MessageAttributeNames=["All"])[
        "Messages"
    ]
    reason = letter["MessageAttributes"]["failure_reason"]["StringValue"]
    assert "order-o-junk version 1" in reason
    assert json.loads(letter["Body"])["dynamodb"]["Keys"]["stream_id"] == {"S": "order-o-junk"}


def test_a_failing_publish_reports_its_record_and_every_later_one_for_the_retry(
    orders: LoadedService, client: Client, orders_topic: TopicInbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN three orders placed, and a topic that takes the first event of a batch and refuses
    # the second
    placed = [json_body(post_json(client, "/orders", ORDER))["id"] for _ in range(3)]
    event = stream_event(os.environ["ORDER_EVENTS_TABLE"])
    publisher = orders.app_module.stream_publisher()
    real = publisher._publisher  # the topic behind the stream publisher
    publish_batch = real.publish_batch
    batches: list[int] = []

    def refuse_second(events: Sequence[PreparedEvent], *, guard: TimeGuard) -> BatchOutcome:
        batches.append(len(events))
        taken = publish_batch(events[:1], guard=guard)
        return BatchOutcome(taken.message_ids, "InternalError: SNS endpoint unreachable")

    monkeypatch.setattr(real, "publish_batch", refuse_second)
    # WHEN the stream publisher runs over the three records
    answer = orders.app_module.publish_order_events(event, None)
    # THEN the three went out in one batch, and the second record and the third are reported
    sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
    assert answer == {
        "batchItemFailures": [{"itemIdentifier": number} for number in sequence_numbers[1:]]
    }
    assert batches == [3]
    # AND the retry from the failed record publishes the rest in order
    monkeypatch.setattr(real, "publish_batch", publish_batch)
    retry = {"Records": event["Records"][1:]}
    assert orders.app_module.publish_order_events(retry, None) == {"batchItemFailures": []}
    published = [m["body"]["data"]["order_id"] for m in orders_topic.messages()]
    assert published == placed


def test_the_read_model_answers_an_order_its_user_and_its_history(
    orders: LoadedService, client: Client, users_api: FakeUsersApi
) -> None:
    # GIVEN three orders of one user and one of another, projected
    users_api.known.add("u-bob")
    mine = [json_body(post_json(client, "/orders", ORDER))["id"] for _ in range(3)]
    theirs = json_body(post_json(client, "/orders", {**ORDER, "user_id": "u-bob"}))
    assert project_appended(orders) == {"batchItemFailures": []}
    # WHEN the user's orders are read two at a time
    first = json_body(client.http.get("/users/u-ann/orders?limit=2"))
    second = json_body(
        client.http.get(f"/users/u-ann/orders?limit=2&next_token={first['next_token']}")
    )
    # THEN they come newest first, all of them once, and none of the other user's
    listed = [order["id"] for order in first["orders"] + second["orders"]]
    assert listed == list(reversed(mine))
    assert theirs["id"] not in listed
    assert second.get("next_token") is None
    # AND an order's history lists its events, numbered from 1
    history = json_body(client.http.get(f"/orders/{mine[0]}/events"))
    assert [(event["version"], event["type"]) for event in history["events"]] == [
        (1, "order.placed")
    ]
    # AND the projected order is the order as placed
    assert json_body(client.http.get(f"/orders/{mine[0]}"))["id"] == mine[0]


def test_an_order_the_projection_has_not_seen_is_read_from_its_events(client: Client) -> None:
    # GIVEN an order just placed, the projector not run yet
    order = json_body(post_json(client, "/orders", ORDER))
    # WHEN it is read
    response = client.http.get(f"/orders/{order['id']}")
    # THEN it is answered from its events, as placed
    assert response.status_code == 200
    assert json_body(response) == order


def test_history_and_user_orders_refuse_what_they_do_not_know(client: Client) -> None:
    # GIVEN no such order, and a token the service never handed out
    # WHEN they are asked for
    unknown = client.http.get("/orders/o-none/events")
    forged = client.http.get("/users/u-ann/orders?next_token=bm90LW91cnM")
    # THEN 404 for the order, 400 naming next_token for the token
    assert unknown.status_code == 404
    assert (forged.status_code, json_body(forged)["error"]["field"]) == (400, "next_token")
    # AND a user without orders has an empty first page
    assert json_body(client.http.get("/users/u-nobody/orders")) == {
        "user_id": "u-nobody",
        "orders": [],
        "next_token": None,
    }


def test_a_rebuilt_projection_equals_the_live_one_and_repairs_what_differs(
    orders: LoadedService, client: Client
) -> None:
    # GIVEN orders placed and projected
    placed = [json_body(post_json(client, "/orders", ORDER))["id"] for _ in range(3)]
    project_appended(orders)
    rebuild = orders.app_module.rebuild_projection_handler
    # WHEN the projection is rebuilt from the events and compared
    report = rebuild({}, None)
    # THEN it matches
    assert (report["orders"], report["matches"]) == (3, True)
    # WHEN one projected order is lost, another is stale, and a stray one appears
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    table = os.environ["ORDERS_TABLE"]
    dynamodb.delete_item(TableName=table, Key={"id": {"S": placed[0]}})
    stray = dynamodb.get_item(TableName=table, Key={"id": {"S": placed[1]}})["Item"]
    dynamodb.put_item(TableName=table, Item={**stray, "id": {"S": "o-stray"}})
    dynamodb.update_item(
        TableName=table,
        Key={"id": {"S": placed[2]}},
        UpdateExpression="SET version = :zero",
        ExpressionAttributeValues={":zero": {"N": "0"}},
    )
    compared = rebuild({}, None)
    # THEN each difference is named, and nothing is written without being asked
    assert (compared["missing"], compared["stale"], compared["extra"]) == (
        [placed[0]],
        [placed[2]],
        ["o-stray"],
    )
    assert rebuild({}, None)["matches"] is False
    # WHEN the rebuild is applied
    applied = rebuild({"apply": True}, None)
    # THEN the live projection matches the events again
    assert applied["applied"] is True
    assert rebuild({}, None)["matches"] is True


def test_orders_reaches_sns_only_through_the_stream_publisher() -> None:
    # GIVEN every module of the orders service
    root = Path(__file__).parents[3] / "functions" / "orders"
    sources = [root / "app.py", *sorted((root / "chalicelib").glob("*.py"))]
    # WHEN the names they use are listed, function by function
    users: list[str] = []
    for source in sources:
        tree = ast.parse(source.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            names = {
                node.id if isinstance(node, ast.Name) else node.attr
                for node in ast.walk(function)
                if isinstance(node, ast.Name | ast.Attribute)
            }
            if names & {"Publisher", "sns", "Outbox", "publish"}:
                users.append(f"{source.name}:{function.name}")
    # THEN only the stream publisher's wiring builds a publisher: nothing else publishes
    assert users == ["wiring.py:build_stream_publisher"]


def test_an_orders_events_that_follow_one_another_in_a_batch_are_one_write(
    orders: LoadedService, client: Client
) -> None:
    # GIVEN an order projected as placed, then paid and reserved: the second outcome's record
    # and order.confirmed appended together, so they come in one batch
    order_id = json_body(post_json(client, "/orders", ORDER))["id"]
    assert project_appended(orders) == {"batchItemFailures": []}
    saga = orders.app_module.order_saga()
    for data in (
        PaymentProcessed(order_id=order_id, payment_id="p-1", amount_cents=1, currency="EUR"),
        InventoryReserved(order_id=order_id, reservation_id="r-1"),
    ):
        saga.take_in(new_event(data.event_type, data, source="test"), data)
    records = stream_event(os.environ["ORDER_EVENTS_TABLE"])
    assert len(records["Records"]) == 3  # payment_recorded, stock_recorded, confirmed
    writes: list[str] = []
    views_client = orders.app_module.projector()._views._client  # the projection's client
    views_client.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: writes.append(model.name)
    )
    # WHEN the projector runs over the batch
    assert orders.app_module.project_orders(records, None) == {"batchItemFailures": []}
    # THEN the three events are one conditional write, and the order shows confirmed at its
    # last version, as a rebuild from its events has it
    assert writes == ["UpdateItem"]
    assert json_body(client.http.get(f"/orders/{order_id}"))["status"] == "confirmed"
    assert orders.app_module.rebuild_projection_handler({}, None)["matches"] is True


def test_the_projector_follows_a_saga_one_write_per_event_and_repairs_a_gap_from_the_events(
    orders: LoadedService, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN two orders taken through the saga: one cancelled (payment failed), one confirmed
    cancelled = json_body(post_json(client, "/orders", ORDER))["id"]
    confirmed = json_body(post_json(client, "/orders", ORDER))["id"]
    saga = orders.app_module.order_saga()
    outcomes: list[tuple[str, EventData]] = [
        (cancelled, PaymentFailed(order_id=cancelled, reason="card declined")),
        (confirmed, InventoryReserved(order_id=confirmed, reservation_id="r-1")),
        (
            confirmed,
            PaymentProcessed(order_id=confirmed, payment_id="p-1", amount_cents=1, currency="EUR"),
        ),
    ]
    for _, data in outcomes:
        saga.take_in(new_event(data.event_type, data, source="test"), data)
    # WHEN the projector runs over every record, then over the same records again
    records = stream_event(os.environ["ORDER_EVENTS_TABLE"])
    project = orders.app_module.project_orders
    streams = orders.app_module.projector()._streams  # the event store behind the projector
    read = streams.read
    reads: list[str] = []

    def counted_read(stream: str, *, after_version: int = 0) -> Any:
        reads.append(stream)
        return read(stream, after_version=after_version)

    monkeypatch.setattr(streams, "read", counted_read)
    assert project(records, None) == {"batchItemFailures": []}
    # (one write per event in stream order: nothing read back)
    assert reads == []
    assert project(records, None) == {"batchItemFailures": []}
    # THEN the read model shows each order where its events leave it
    first = json_body(client.http.get(f"/orders/{cancelled}"))
    assert (first["status"], first["cancel_reason"]) == (
        "cancelled",
        "payment failed: card declined",
    )
    assert json_body(client.http.get(f"/orders/{confirmed}"))["status"] == "confirmed"
    assert orders.app_module.rebuild_projection_handler({}, None)["matches"] is True
    # WHEN an order's item is lost and only its last record comes again (a gap)
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    dynamodb.delete_item(TableName=os.environ["ORDERS_TABLE"], Key={"id": {"S": confirmed}})
    last = [
        record
        for record in records["Records"]
        if record["dynamodb"]["Keys"]["stream_id"]["S"] == f"order-{confirmed}"
    ][-1:]
    assert project({"Records": last}, None) == {"batchItemFailures": []}
    # THEN the order is rebuilt from its events, and the read model matches them again
    assert json_body(client.http.get(f"/orders/{confirmed}"))["status"] == "confirmed"
    assert orders.app_module.rebuild_projection_handler({}, None)["matches"] is True
