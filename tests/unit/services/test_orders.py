"""The orders service under moto, users and catalog faked at the client boundary."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from chalice.test import Client

from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.catalog import Product
from lambdamesh_toolkit.contracts.events import EventEnvelope, OrderPlaced
from lambdamesh_toolkit.contracts.orders import CreateOrder, Order, OrderItemRequest
from lambdamesh_toolkit.errors import Conflict, DependencyUnavailable, Unprocessable
from lambdamesh_toolkit.events.publishing import Publisher
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
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    items: list[dict[str, Any]] = dynamodb.scan(TableName=os.environ["ORDERS_TABLE"])["Items"]
    return items


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
    # GIVEN a user the user service does not know
    # WHEN they order
    response = post_json(client, "/orders", {**ORDER, "user_id": "u-ghost"})
    # THEN 422 naming user_id; the catalog was not asked, nothing stored
    assert response.status_code == 422
    assert json_body(response)["error"]["field"] == "user_id"
    assert catalog_rpc.calls == []
    assert stored_orders() == []


def test_unknown_product_is_422_naming_its_item(client: Client) -> None:
    # GIVEN an order whose second item is not in the catalog
    body = {**ORDER, "items": [ORDER["items"][0], {"product_id": "p-unicorn", "quantity": 1}]}
    # WHEN it is posted
    response = post_json(client, "/orders", body)
    # THEN 422 naming items[1].product_id
    assert response.status_code == 422
    assert json_body(response)["error"]["field"] == "items[1].product_id"


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


# --- Idempotency-Key ----------------------------------------------------------------


def test_same_key_and_body_answers_the_same_order_once_201_then_200(
    client: Client, users_api: FakeUsersApi
) -> None:
    # GIVEN an order posted with an idempotency key
    key = {"Idempotency-Key": "k-1"}
    first = post_json(client, "/orders", ORDER, headers=key)
    # WHEN the same body is posted again with the same key, keys in another order
    reordered = {"items": ORDER["items"], "user_id": ORDER["user_id"]}
    second = post_json(client, "/orders", reordered, headers=key)
    # THEN 201 then 200 with the same body; one order stored; the repeat called nobody
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.body == first.body
    assert len(stored_orders()) == 1
    assert len(users_api.calls) == 1


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


def test_repeat_while_the_first_runs_is_409_and_never_a_second_order(
    client: Client, desk: Any, users_api: FakeUsersApi
) -> None:
    # GIVEN a repeat of the request arriving while the first one is asking the user service
    request = CreateOrder.model_validate(ORDER)
    outcomes: list[Any] = []

    def repeat_meanwhile() -> None:
        with pytest.raises(Conflict) as busy:
            desk.place(request, "k-4")
        outcomes.append(busy.value)

    users_api.on_get = repeat_meanwhile
    # WHEN the first completes, and the client tries once more afterwards
    first = post_json(client, "/orders", ORDER, headers={"Idempotency-Key": "k-4"})
    later = post_json(client, "/orders", ORDER, headers={"Idempotency-Key": "k-4"})
    # THEN the overlapping repeat was refused (409), the later one replays; one order
    assert len(outcomes) == 1
    assert (first.status_code, later.status_code) == (201, 200)
    assert json_body(later)["id"] == json_body(first)["id"]
    assert len(stored_orders()) == 1


def test_a_dead_requests_claim_is_taken_over_after_its_lease(
    orders: LoadedService, client: Client, desk: Any
) -> None:
    # GIVEN a claim left IN_PROGRESS by a request that died, its lease run out
    idempotency = orders.module("chalicelib.idempotency")
    store = orders.module("chalicelib.store")
    repository = store.DynamoOrderRepository(
        boto3.client("dynamodb", region_name="us-east-1"),
        os.environ["ORDERS_TABLE"],
        os.environ["ORDER_IDEMPOTENCY_TABLE"],
    )
    request = CreateOrder.model_validate(ORDER)
    long_ago = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp())
    dead = idempotency.new_claim("k-5", idempotency.fingerprint(request), "o-dead", long_ago)
    assert repository.claim(dead) is None
    # WHEN the client retries with that key
    response = post_json(client, "/orders", ORDER, headers={"Idempotency-Key": "k-5"})
    # THEN the retry takes over and places the order under the id the key was given
    assert response.status_code == 201
    assert json_body(response)["id"] == "o-dead"
    # AND the dead request, should it wake up, can no longer complete its claim
    late_order = Order.model_validate(json_body(response))
    late_event = orders.module("chalicelib.domain").placed_event(late_order)
    assert repository.complete(dead, late_order, late_event) is False
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


@pytest.mark.parametrize(
    ("status", "same_body", "lease_over", "verdict"),
    [
        ("COMPLETED", True, False, "REPLAY"),
        ("COMPLETED", True, True, "REPLAY"),
        ("COMPLETED", False, False, "MISMATCH"),
        ("IN_PROGRESS", False, True, "MISMATCH"),
        ("IN_PROGRESS", True, False, "IN_PROGRESS"),
        ("IN_PROGRESS", True, True, "TAKE_OVER"),
    ],
)
def test_idempotency_decision(
    service_modules: LoadedService, status: str, same_body: bool, lease_over: bool, verdict: str
) -> None:
    # GIVEN a claim in some state, and a request with the same or another body
    idempotency = service_modules.module("chalicelib.idempotency")
    claim = idempotency.new_claim("k", "fp-1", "o-1", now_s=1000)
    claim = idempotency.IdempotencyClaim(
        **{**claim.__dict__, "status": idempotency.ClaimStatus(status)}
    )
    now = claim.lease_expires_at + (0 if lease_over else -1)
    # WHEN the decision is made
    decided = idempotency.decide(claim, "fp-1" if same_body else "fp-2", now)
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


# --- order.placed ---------------------------------------------------------------------


def stored_order(order_id: str) -> dict[str, Any]:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    item: dict[str, Any] = dynamodb.get_item(
        TableName=os.environ["ORDERS_TABLE"], Key={"id": {"S": order_id}}
    )["Item"]
    return item


def test_placing_an_order_publishes_order_placed_on_the_fifo_topic(
    client: Client, orders_topic: TopicInbox
) -> None:
    # GIVEN a request carrying a correlation id
    # WHEN an order is placed
    response = post_json(client, "/orders", ORDER, headers={"X-Correlation-Id": "trace-p1"})
    order = json_body(response)
    # THEN one order.placed reaches the topic: the envelope, its attributes, group and dedup id
    [message] = orders_topic.messages()
    envelope = EventEnvelope.model_validate(message["body"])
    assert (envelope.type, envelope.version, envelope.source) == ("order.placed", 1, "orders")
    assert (envelope.correlation_id, envelope.causation_id) == ("trace-p1", None)
    placed = OrderPlaced.model_validate(envelope.data)
    assert (placed.order_id, placed.user_id) == (order["id"], "u-ann")
    assert [line.model_dump(mode="json") for line in placed.lines] == order["lines"]
    assert (placed.total_cents, placed.currency) == (order["total_cents"], order["currency"])
    assert message["attributes"] == {
        "type": "order.placed",
        "version": "1",
        "correlation_id": "trace-p1",
    }
    assert (message["group_id"], message["deduplication_id"]) == (order["id"], envelope.id)
    # AND the order's record names the event and says it was published
    record = stored_order(order["id"])
    assert record["placed_event_id"] == {"S": envelope.id}
    assert record["placed_published"] == {"BOOL": True}


def test_an_order_without_a_key_publishes_order_placed_too(
    client: Client, orders_topic: TopicInbox
) -> None:
    # GIVEN no idempotency key
    # WHEN an order is placed
    order = json_body(post_json(client, "/orders", ORDER))
    # THEN its order.placed is published
    [message] = orders_topic.messages()
    assert message["body"]["data"]["order_id"] == order["id"]


class FlakyPublisher:
    """The real publisher, failing the first ``failures`` publishes as SNS being down would."""

    def __init__(self, topic_arn: str, failures: int) -> None:
        self._publisher = Publisher(topic_arn)
        self.failures = failures
        self.published: list[str] = []

    def publish(self, envelope: EventEnvelope, *, group_id: str | None = None) -> str:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("SNS endpoint unreachable")
        self.published.append(envelope.id)
        return self._publisher.publish(envelope, group_id=group_id)


@pytest.fixture
def flaky_client(
    orders: LoadedService,
    users_api: FakeUsersApi,
    catalog_rpc: FakeCatalogRpc,
    orders_topic: TopicInbox,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Client, FlakyPublisher]:
    """The orders API whose first publish fails."""
    publisher = FlakyPublisher(orders_topic.topic_arn, failures=1)
    settings = load_settings(orders.module("chalicelib.settings").OrdersSettings)
    desk = orders.module("chalicelib.wiring").build_order_desk(
        settings, users_http=users_api, catalog_rpc=catalog_rpc, publisher=publisher
    )
    monkeypatch.setattr(orders.app_module, "order_desk", lambda: desk)
    return orders.client(), publisher


def test_an_unpublished_placement_is_503_and_the_replay_publishes_it(
    flaky_client: tuple[Client, FlakyPublisher], orders_topic: TopicInbox
) -> None:
    # GIVEN the topic failing when the order is placed
    client, publisher = flaky_client
    key = {"Idempotency-Key": "k-pub-1"}
    first = post_json(client, "/orders", ORDER, headers=key)
    # THEN the client is told to retry; the order is stored, its event not published
    assert first.status_code == 503
    assert first.headers["Retry-After"] == "1"
    [record] = stored_orders()
    assert record["placed_published"] == {"BOOL": False}
    assert orders_topic.messages() == []
    # WHEN the client retries with the same key
    second = post_json(client, "/orders", ORDER, headers=key)
    # THEN it gets the order, and the stored order.placed (same event id) is published once
    assert second.status_code == 200
    assert json_body(second)["id"] == record["id"]["S"]
    [message] = orders_topic.messages()
    assert message["body"]["id"] == record["placed_event_id"]["S"]
    assert stored_order(record["id"]["S"])["placed_published"] == {"BOOL": True}
    # AND a further replay publishes nothing more
    third = post_json(client, "/orders", ORDER, headers=key)
    assert third.status_code == 200
    assert orders_topic.messages() == []
    assert publisher.published == [record["placed_event_id"]["S"]]
