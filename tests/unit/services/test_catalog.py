"""The catalog service: REST routes, the ``GetProduct`` and ``GetProducts`` RPC, seeding, and
the stock it shows as a projection of inventory's ``inventory.stock_changed``, under moto."""

from __future__ import annotations

import doctest
import itertools
import json
from typing import Any

import boto3
import pytest
from chalice.test import Client
from pydantic import ValidationError

from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.catalog import (
    GetProductResponse,
    GetProductsRequest,
    GetProductsResponse,
    Product,
    ProductList,
)
from lambdamesh_toolkit.contracts.events import EventEnvelope, InventoryStockChanged
from lambdamesh_toolkit.contracts.orders import MAX_ORDER_ITEMS
from lambdamesh_toolkit.contracts.rpc import RpcRequest, RpcResponse
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.errors import InvalidRequest, NotFound
from lambdamesh_toolkit.events.envelope import derived_event_id, new_event
from tests.unit.services.conftest import ServiceFactory, sqs_event_of
from tests.unit.services.service_loader import LoadedService, load_service, service_resources
from tests.unit.services.support import captured_log, json_body

INVENTORY_QUEUE = "lambdamesh-catalog-inventory"
PRODUCTS_TABLE = "test-catalog-ProductsTable"


@pytest.fixture
def catalog(deployed_service: ServiceFactory, event_tables: dict[str, str]) -> LoadedService:
    return deployed_service("catalog", **event_tables)


@pytest.fixture
def client(catalog: LoadedService) -> Client:
    return catalog.client()


@pytest.fixture
def seeded(client: Client) -> list[str]:
    answer = client.lambda_.invoke("seed", {})
    added: list[str] = answer.payload["added"]
    return added


def rpc_payload(method: str, payload: dict[str, Any], correlation_id: str = "c-1") -> Any:
    return RpcRequest(
        method=method, version=1, correlation_id=correlation_id, payload=payload
    ).model_dump(mode="json")


def test_seed_adds_at_least_five_products_once(client: Client) -> None:
    # GIVEN an empty catalog
    # WHEN the seed function runs twice
    first = client.lambda_.invoke("seed", {}).payload
    second = client.lambda_.invoke("seed", {}).payload
    # THEN the first run adds them all, the second finds them all present
    assert len(first["added"]) >= 5
    assert first["present"] == []
    assert second == {"added": [], "present": first["added"]}


def test_get_products_lists_the_seeded_products(client: Client, seeded: list[str]) -> None:
    # GIVEN a seeded catalog
    # WHEN the products are listed
    response = client.http.get("/products")
    # THEN all of them come back in one page
    assert response.status_code == 200
    page = ProductList.model_validate(json_body(response))
    assert sorted(product.id for product in page.products) == sorted(seeded)
    assert page.next_token is None


def test_get_products_pages_with_limit_and_next_token(client: Client, seeded: list[str]) -> None:
    # GIVEN a seeded catalog
    # WHEN it is read two products at a time, following next_token
    seen: list[str] = []
    token: str | None = None
    for _ in range(len(seeded) + 1):
        query = "?limit=2" + (f"&next_token={token}" if token else "")
        page = ProductList.model_validate(json_body(client.http.get("/products" + query)))
        assert len(page.products) <= 2
        seen.extend(product.id for product in page.products)
        token = page.next_token
        if token is None:
            break
    # THEN every product is seen exactly once
    assert sorted(seen) == sorted(seeded)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?limit=0", "limit"),
        ("?limit=many", "limit"),
        ("?next_token=%25%25", "next_token"),
        ("?next_token=%C3%A9t%C3%A9", "next_token"),
        ("?next_token=%E2%80%8B", "next_token"),
    ],
)
def test_bad_listing_query_is_400_naming_the_parameter(
    client: Client, query: str, field: str
) -> None:
    # GIVEN a query string the listing cannot honour
    # WHEN the products are listed with it
    response = client.http.get("/products" + query)
    # THEN 400 naming the parameter
    assert response.status_code == 400
    assert json_body(response)["error"]["field"] == field


def test_get_product_returns_it(client: Client, seeded: list[str]) -> None:
    # GIVEN a seeded catalog
    # WHEN one product is fetched
    response = client.http.get(f"/products/{seeded[0]}")
    # THEN it comes back
    assert response.status_code == 200
    assert Product.model_validate(json_body(response)).id == seeded[0]


def test_get_unknown_product_is_404(client: Client, seeded: list[str]) -> None:
    # GIVEN a seeded catalog
    # WHEN a product it lacks is fetched
    response = client.http.get("/products/p-unicorn")
    # THEN 404, with a correlation id on the answer
    assert response.status_code == 404
    assert json_body(response)["error"]["code"] == "not_found"
    assert response.headers["X-Correlation-Id"]


def test_rpc_get_product_answers_the_product(client: Client, seeded: list[str]) -> None:
    # GIVEN a seeded catalog
    # WHEN GetProduct is invoked
    answer = client.lambda_.invoke("rpc", rpc_payload("GetProduct", {"product_id": seeded[0]}))
    # THEN an ok envelope carrying the product
    response = RpcResponse.model_validate(answer.payload)
    assert response.ok
    assert GetProductResponse.model_validate(response.result).product.id == seeded[0]


def test_rpc_get_unknown_product_answers_not_found(client: Client, seeded: list[str]) -> None:
    # GIVEN a seeded catalog
    # WHEN GetProduct asks for a product it lacks
    answer = client.lambda_.invoke("rpc", rpc_payload("GetProduct", {"product_id": "p-none"}))
    # THEN an error envelope with code not_found (not a crash)
    response = RpcResponse.model_validate(answer.payload)
    assert not response.ok
    assert response.error is not None
    assert response.error.code == NotFound.code


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"method": "GetProduct"}, "version"),
        (rpc_payload("GetProduct", {"product_id": "bad id!"}), "payload.product_id"),
        (rpc_payload("DeleteEverything", {}), "method"),
    ],
)
def test_rpc_refuses_a_malformed_call_naming_the_field(
    client: Client, event: dict[str, Any], field: str
) -> None:
    # GIVEN an invocation that breaks the envelope or the payload contract
    # WHEN the RPC function is invoked with it
    answer = client.lambda_.invoke("rpc", event)
    # THEN an invalid_request error naming the field
    response = RpcResponse.model_validate(answer.payload)
    assert response.error is not None
    assert response.error.code == InvalidRequest.code
    assert response.error.field == field


def test_rpc_logs_carry_the_callers_correlation_id(
    catalog: LoadedService, client: Client, seeded: list[str]
) -> None:
    # GIVEN a call carrying a correlation id in its envelope, the log captured
    with captured_log(catalog) as log:
        # WHEN it is refused (the refusal is logged)
        client.lambda_.invoke("rpc", rpc_payload("GetProduct", {"product_id": "p-x"}, "trace-9"))
    # THEN the log line carries the caller's correlation id
    assert '"correlation_id":"trace-9"' in log.getvalue()


# --- GetProducts: an order's products in one read ------------------------------------


def products_answered(answer: Any) -> list[Product]:
    """The products of an ok ``GetProducts`` envelope."""
    response = RpcResponse.model_validate(answer.payload)
    assert response.ok, response.error
    return GetProductsResponse.model_validate(response.result).products


@pytest.fixture
def dynamodb_calls(
    catalog: LoadedService, seeded: list[str], monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """Every DynamoDB operation the catalog's functions send after seeding, by name."""
    settings = load_settings(catalog.module("chalicelib.settings").CatalogSettings)
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    sent: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb",
        lambda model, **_: sent.append(model.name),
        unique_id="count-catalog-calls",
    )
    built = catalog.module("chalicelib.wiring").build_catalog(settings, dynamodb=dynamodb)
    monkeypatch.setattr(catalog.app_module, "catalog", lambda: built)
    return sent


def test_rpc_get_products_answers_the_found_products_and_leaves_unknown_ids_out(
    client: Client, seeded: list[str]
) -> None:
    # GIVEN a seeded catalog
    asked = [seeded[2], "p-none", seeded[0]]
    # WHEN GetProducts asks for two of its products and one it lacks
    answer = client.lambda_.invoke("rpc", rpc_payload("GetProducts", {"product_ids": asked}))
    # THEN an ok envelope with the two products, whole, and nothing for the unknown id
    products = products_answered(answer)
    assert [product.id for product in products] == [seeded[2], seeded[0]]
    shown = {product.id: product for product in products}
    for product_id in (seeded[0], seeded[2]):
        single = client.lambda_.invoke("rpc", rpc_payload("GetProduct", {"product_id": product_id}))
        expected = GetProductResponse.model_validate(
            RpcResponse.model_validate(single.payload).result
        ).product
        assert shown[product_id] == expected


def test_rpc_get_products_of_only_unknown_ids_answers_no_products(
    client: Client, seeded: list[str]
) -> None:
    # GIVEN a seeded catalog
    # WHEN GetProducts asks only for products it lacks
    answer = client.lambda_.invoke(
        "rpc", rpc_payload("GetProducts", {"product_ids": ["p-none", "p-gone"]})
    )
    # THEN an ok envelope with no products (not a not_found error)
    assert products_answered(answer) == []


def test_rpc_get_products_reads_several_ids_with_one_batch_get_item(
    client: Client, seeded: list[str], dynamodb_calls: list[str]
) -> None:
    # GIVEN a seeded catalog whose DynamoDB calls are counted
    # WHEN GetProducts asks for four products, one of them unknown
    asked = [*seeded[:3], "p-none"]
    answer = client.lambda_.invoke("rpc", rpc_payload("GetProducts", {"product_ids": asked}))
    # THEN the three products came from one BatchGetItem and no other call
    assert len(products_answered(answer)) == 3
    assert dynamodb_calls == ["BatchGetItem"]


def test_rpc_get_products_logs_one_line_with_how_many_were_asked_and_found(
    catalog: LoadedService, client: Client, seeded: list[str]
) -> None:
    # GIVEN a seeded catalog, the log captured
    with captured_log(catalog) as log:
        # WHEN GetProducts asks for two products, one unknown, under a correlation id
        client.lambda_.invoke(
            "rpc", rpc_payload("GetProducts", {"product_ids": [seeded[0], "p-none"]}, "trace-7")
        )
    # THEN one line says it was served, how many ids were asked and found, under that id
    lines = [json.loads(text) for text in log.getvalue().splitlines()]
    [served] = [line for line in lines if line["message"] == "rpc GetProducts served"]
    assert (served["asked"], served["found"], served["correlation_id"]) == (2, 1, "trace-7")


@pytest.mark.parametrize(
    ("product_ids", "field"),
    [
        (["p-burr-grinder", "p-milk-jug", "p-burr-grinder"], "payload.product_ids"),
        ([], "payload.product_ids"),
        ([f"p-{index}" for index in range(MAX_ORDER_ITEMS + 1)], "payload.product_ids"),
        (["p-milk-jug", "bad id!"], "payload.product_ids[1]"),
    ],
    ids=["duplicate", "none", "more-than-an-order-holds", "malformed"],
)
def test_rpc_get_products_refuses_a_bad_list_as_a_bad_request_naming_the_field(
    client: Client, seeded: list[str], product_ids: list[str], field: str
) -> None:
    # GIVEN a list of ids breaking the GetProductsRequest contract
    # WHEN GetProducts is invoked with it
    answer = client.lambda_.invoke("rpc", rpc_payload("GetProducts", {"product_ids": product_ids}))
    # THEN an invalid_request error naming the field (not a crash, not a read)
    response = RpcResponse.model_validate(answer.payload)
    assert response.error is not None
    assert (response.error.code, response.error.field) == (InvalidRequest.code, field)


def test_a_duplicate_id_is_refused_naming_both_places() -> None:
    # GIVEN a list naming one product twice
    # WHEN it is made a GetProductsRequest
    with pytest.raises(ValidationError) as refused:
        GetProductsRequest(product_ids=["p-a", "p-b", "p-a"])
    # THEN the refusal says which entry repeats which
    assert "product_ids[2] repeats product_ids[0] (p-a)" in str(refused.value)


def test_a_stored_product_that_fails_validation_fails_get_products_as_it_fails_get_product(
    client: Client, seeded: list[str]
) -> None:
    # GIVEN a stored item that is not a valid product (negative stock)
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    item = dynamodb.get_item(TableName=PRODUCTS_TABLE, Key={"id": {"S": seeded[0]}})["Item"]
    dynamodb.put_item(TableName=PRODUCTS_TABLE, Item={**item, "stock": {"N": "-1"}})
    # WHEN GetProduct and GetProducts read it
    # THEN both fail the invocation alike (a crash the caller counts against the breaker),
    # neither answers the product nor takes it for a missing one
    with pytest.raises(ValidationError):
        client.lambda_.invoke("rpc", rpc_payload("GetProduct", {"product_id": seeded[0]}))
    with pytest.raises(ValidationError):
        client.lambda_.invoke(
            "rpc", rpc_payload("GetProducts", {"product_ids": [seeded[1], seeded[0]]})
        )


class ScriptedBatchGets:
    """A DynamoDB client whose ``BatchGetItem`` answers from a script, recording requests."""

    def __init__(self, *answers: dict[str, Any]) -> None:
        self.answers = list(answers)
        self.requests: list[dict[str, Any]] = []

    def batch_get_item(self, *, RequestItems: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.requests.append(RequestItems)
        return self.answers.pop(0)


def product_item(product_id: str) -> dict[str, Any]:
    return {
        "id": {"S": product_id},
        "name": {"S": product_id},
        "description": {"S": ""},
        "price_cents": {"N": "100"},
        "currency": {"S": "EUR"},
        "stock": {"N": "1"},
    }


def test_get_products_asks_again_for_the_keys_dynamodb_left_unprocessed(
    catalog: LoadedService,
) -> None:
    # GIVEN DynamoDB answering the first BatchGetItem with one product and one key unprocessed
    left = {"t": {"Keys": [{"id": {"S": "p-b"}}]}}
    dynamodb = ScriptedBatchGets(
        {"Responses": {"t": [product_item("p-a")]}, "UnprocessedKeys": left},
        {"Responses": {"t": [product_item("p-b")]}, "UnprocessedKeys": {}},
    )
    store = catalog.module("chalicelib.store").DynamoProductRepository(dynamodb, "t")
    # WHEN two products are read
    products = store.get_products(["p-a", "p-b"])
    # THEN the unprocessed key was asked for again, alone, and both products are answered
    assert dynamodb.requests == [
        {"t": {"Keys": [{"id": {"S": "p-a"}}, {"id": {"S": "p-b"}}]}},
        left,
    ]
    assert sorted(product.id for product in products) == ["p-a", "p-b"]


def test_the_rpc_function_may_batch_read_the_products_table() -> None:
    # GIVEN catalog's resources.json
    resources = service_resources("catalog")["Resources"]
    # THEN the Rpc function's role allows GetItem (GetProduct) and BatchGetItem (GetProducts)
    # on the products table, and nothing else
    [policy] = resources["Rpc"]["Properties"]["Policies"]
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == ["dynamodb:BatchGetItem", "dynamodb:GetItem"]
    assert statement["Resource"] == [{"Fn::GetAtt": ["ProductsTable", "Arn"]}]


# --- the stock shown: a projection of inventory's events ----------------------------


def stock_changed(product_id: str, available: int, version: int) -> EventEnvelope:
    """``inventory.stock_changed`` as inventory's stream publisher builds it (derived id)."""
    use_correlation_id("trace-stock-1")
    data = InventoryStockChanged(product_id=product_id, available=available, stock_version=version)
    return new_event(
        "inventory.stock_changed",
        data,
        source="inventory",
        event_id=derived_event_id("inventory.stock_changed", product_id, str(version)),
    )


def deliver(client: Client, *envelopes: EventEnvelope) -> dict[str, Any]:
    """Hand envelopes to the inventory-queue consumer as one SQS batch; its answer."""
    event = sqs_event_of(INVENTORY_QUEUE, *envelopes)
    payload: dict[str, Any] = client.lambda_.invoke("handle_inventory_events", event).payload
    return payload


def shown_stock(client: Client, product_id: str) -> int:
    """The stock ``GET /products/{id}`` shows."""
    return int(json_body(client.http.get(f"/products/{product_id}"))["stock"])


def stored_version(product_id: str) -> int | None:
    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    item = dynamodb.get_item(TableName=PRODUCTS_TABLE, Key={"id": {"S": product_id}})["Item"]
    return int(item["stock_version"]["N"]) if "stock_version" in item else None


def test_a_stock_change_is_what_the_product_shows_in_every_answer(
    client: Client, seeded: list[str]
) -> None:
    # GIVEN a seeded catalog showing its seed level (12 grinders), no level projected yet
    assert shown_stock(client, "p-burr-grinder") == 12
    assert stored_version("p-burr-grinder") is None
    # WHEN inventory announces 9 grinders at version 2
    answer = deliver(client, stock_changed("p-burr-grinder", 9, 2))
    # THEN the batch succeeded and the product shows 9 in GET /products/{id}, the list and RPC
    assert answer == {"batchItemFailures": []}
    assert shown_stock(client, "p-burr-grinder") == 9
    listed = ProductList.model_validate(json_body(client.http.get("/products"))).products
    assert {product.id: product.stock for product in listed}["p-burr-grinder"] == 9
    rpc = client.lambda_.invoke("rpc", rpc_payload("GetProduct", {"product_id": "p-burr-grinder"}))
    assert (
        GetProductResponse.model_validate(
            RpcResponse.model_validate(rpc.payload).result
        ).product.stock
        == 9
    )
    # AND the product holds the version of the level it shows
    assert stored_version("p-burr-grinder") == 2


def test_an_older_or_repeated_level_changes_nothing(client: Client, seeded: list[str]) -> None:
    # GIVEN a product showing inventory's level at version 5
    deliver(client, stock_changed("p-ceramic-mug", 40, 5))
    # WHEN an older level arrives late, the same event again, and another event of version 5
    late = deliver(client, stock_changed("p-ceramic-mug", 44, 4))
    again = deliver(client, stock_changed("p-ceramic-mug", 40, 5))
    twin = stock_changed("p-ceramic-mug", 41, 5).model_copy(update={"id": derived_event_id("x")})
    same_version = deliver(client, twin)
    # THEN each is handled (nothing to retry) and the product still shows version 5's level
    assert late == again == same_version == {"batchItemFailures": []}
    assert shown_stock(client, "p-ceramic-mug") == 40
    assert stored_version("p-ceramic-mug") == 5


@pytest.mark.parametrize(
    "order", list(itertools.permutations(range(3))), ids=lambda order: "-".join(map(str, order))
)
def test_levels_delivered_in_any_order_end_at_the_newest(
    client: Client, seeded: list[str], order: tuple[int, ...]
) -> None:
    # GIVEN three successive levels of one product (versions 2, 3, 4)
    levels = [
        stock_changed("p-paper-filters", units, version)
        for units, version in ((390, 2), (380, 3), (385, 4))
    ]
    # WHEN they are delivered one by one in this order
    for position in order:
        assert deliver(client, levels[position]) == {"batchItemFailures": []}
    # THEN the product shows the level of version 4, whatever the order
    assert shown_stock(client, "p-paper-filters") == 385
    assert stored_version("p-paper-filters") == 4


def test_levels_in_one_batch_out_of_order_end_at_the_newest(
    client: Client, seeded: list[str]
) -> None:
    # GIVEN a batch holding a product's levels newest first, with a repeat
    batch = [
        stock_changed("p-milk-jug", units, version)
        for units, version in ((6, 3), (4, 2), (6, 3), (0, 1))
    ]
    # WHEN it is delivered
    answer = deliver(client, *batch)
    # THEN every record succeeded and the newest level stands
    assert answer == {"batchItemFailures": []}
    assert shown_stock(client, "p-milk-jug") == 6


def test_a_level_of_a_product_the_catalog_does_not_list_is_dropped_as_handled(
    catalog: LoadedService, client: Client, seeded: list[str]
) -> None:
    # GIVEN a stock level for a product the catalog does not list
    with captured_log(catalog) as log:
        # WHEN it is delivered
        answer = deliver(client, stock_changed("p-unicorn", 3, 1))
    # THEN it is not retried, no product appears, and a warning names the product
    assert answer == {"batchItemFailures": []}
    assert client.http.get("/products/p-unicorn").status_code == 404
    [line] = [json.loads(text) for text in log.getvalue().splitlines() if "p-unicorn" in text]
    assert line["level"] == "WARNING"
    assert line["projection"] == "unlisted"
    assert line["correlation_id"] == "trace-stock-1"


def test_the_seed_never_undoes_a_projected_level(client: Client, seeded: list[str]) -> None:
    # GIVEN a product showing a projected level
    deliver(client, stock_changed("p-espresso-beans", 7, 9))
    # WHEN the seed runs again
    report = client.lambda_.invoke("seed", {}).payload
    # THEN the product is left as it was: its projected level, not the seed's 120
    assert "p-espresso-beans" in report["present"]
    assert shown_stock(client, "p-espresso-beans") == 7
    assert stored_version("p-espresso-beans") == 9


def test_the_template_feeds_the_consumer_its_queue_with_scoped_grants() -> None:
    # GIVEN catalog's resources.json
    fragment = service_resources("catalog")
    resources = fragment["Resources"]
    # THEN the consumer gets the products table and the failures table, no processed marks
    # (a level is taken only when its version is newer) ...
    variables = resources["HandleInventoryEvents"]["Properties"]["Environment"]["Variables"]
    assert variables == {
        "PRODUCTS_TABLE": {"Ref": "ProductsTable"},
        "EVENT_FAILURES_TABLE": {"Ref": "EventFailuresTable"},
    }
    # AND its queue and the queue's DLQ are parameters named as deploy fills them
    assert {"CatalogInventoryQueueArn", "CatalogInventoryDeadLetterQueueArn"} <= set(
        fragment["Parameters"]
    )
    # AND its backoff and dead-lettering are allowed on those two queues only
    [policy] = resources["HandleInventoryEvents"]["Properties"]["Policies"]
    statements = {statement.get("Sid"): statement for statement in policy["Statement"]}
    assert statements["FailureRecords"]["Action"] == ["dynamodb:PutItem"]
    assert "EventIdempotencyTable" not in json.dumps(policy)
    assert statements["RetryBackoff"]["Resource"] == [{"Ref": "CatalogInventoryQueueArn"}]
    assert statements["DeadLetterAtOnce"]["Resource"] == [
        {"Ref": "CatalogInventoryDeadLetterQueueArn"}
    ]


# --- the catalog, without AWS --------------------------------------------------------


class MemoryProducts:
    def __init__(self) -> None:
        self.products: dict[str, Product] = {}

    def get(self, product_id: str) -> Product | None:
        return self.products.get(product_id)

    def page(self, limit: int, after: str | None) -> tuple[list[Product], str | None]:
        ids = sorted(self.products)
        start = 0 if after is None else ids.index(after) + 1
        chunk = ids[start : start + limit]
        more = start + limit < len(ids)
        return [self.products[i] for i in chunk], chunk[-1] if more else None

    def add_if_absent(self, product: Product) -> bool:
        if product.id in self.products:
            return False
        self.products[product.id] = product
        return True


@pytest.fixture
def domain() -> Any:
    return load_service("catalog").module("chalicelib.domain")


def test_seed_never_overwrites_a_product(domain: Any) -> None:
    # GIVEN a catalog where one seed product already exists with other stock
    repository = MemoryProducts()
    first = domain.SEED_PRODUCTS[0]
    moved = first.model_copy(update={"stock": 1})
    repository.products[first.id] = moved
    # WHEN it is seeded
    report = domain.Catalog(repository).seed()
    # THEN that product is reported present and left as it was
    assert report.present == (first.id,)
    assert repository.products[first.id] == moved
    assert len(report.added) == len(domain.SEED_PRODUCTS) - 1


def test_seed_products_are_valid_and_distinct(domain: Any) -> None:
    # GIVEN the seed list
    ids = [product.id for product in domain.SEED_PRODUCTS]
    # THEN it has at least five products with distinct ids
    assert len(ids) >= 5
    assert len(set(ids)) == len(ids)


def test_page_token_round_trips_and_rejects_garbage(domain: Any) -> None:
    # GIVEN a product id
    # WHEN it is turned into a token and back
    # THEN it survives; and a token that does not decode is refused naming next_token
    assert domain.decode_page_token(domain.encode_page_token("p-milk-jug")) == "p-milk-jug"
    with pytest.raises(InvalidRequest) as refused:
        domain.decode_page_token("%%%")
    assert refused.value.field == "next_token"


@pytest.fixture
def availability() -> Any:
    return load_service("catalog").module("chalicelib.availability")


class MemoryLevels:
    """Products' shown levels in a dict, applying the rule the table's condition states."""

    def __init__(self, availability: Any, listed: dict[str, int]) -> None:
        self.rules = availability
        self.levels: dict[str, tuple[int, int | None]] = {
            product_id: (units, None) for product_id, units in listed.items()
        }

    def project_stock(self, product_id: str, available: int, version: int) -> Any:
        if product_id not in self.levels:
            return self.rules.Projection.UNLISTED
        if not self.rules.is_newer(self.levels[product_id][1], version):
            return self.rules.Projection.OUTDATED
        self.levels[product_id] = (available, version)
        return self.rules.Projection.APPLIED


def test_whatever_the_order_and_repeats_the_newest_level_stands(availability: Any) -> None:
    # GIVEN four successive levels of a listed product
    events = [
        stock_changed("p-a", units, version) for units, version in ((5, 1), (3, 2), (4, 3), (1, 4))
    ]
    for order in itertools.permutations(events):
        levels = MemoryLevels(availability, {"p-a": 9})
        projector = availability.Availability(levels)
        # WHEN they are taken in in this order, then all of them again (redeliveries)
        results = [
            projector.on_stock_changed(event, InventoryStockChanged.model_validate(event.data))
            for event in (*order, *order)
        ]
        # THEN the product ends at version 4's level, and no repeat was applied
        assert levels.levels["p-a"] == (1, 4)
        assert results[len(order) :] == [availability.Projection.OUTDATED] * len(order)


def test_a_level_for_an_unlisted_product_creates_nothing(availability: Any) -> None:
    # GIVEN a catalog listing one product
    levels = MemoryLevels(availability, {"p-a": 9})
    event = stock_changed("p-b", 2, 1)
    # WHEN a level for another product is taken in
    result = availability.Availability(levels).on_stock_changed(
        event, InventoryStockChanged.model_validate(event.data)
    )
    # THEN it is reported unlisted and no product appears
    assert result == availability.Projection.UNLISTED
    assert set(levels.levels) == {"p-a"}


def test_the_examples_in_availability_run() -> None:
    # GIVEN the module's docstring examples  WHEN they run as doctests
    result = doctest.testmod(
        load_service("catalog").module("chalicelib.availability"), report=False
    )
    # THEN there are some, and every one holds
    assert result.attempted > 0
    assert result.failed == 0
