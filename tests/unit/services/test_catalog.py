"""The catalog service: REST routes, the ``GetProduct`` RPC and seeding, under moto."""

from __future__ import annotations

from typing import Any

import pytest
from chalice.test import Client

from lambdamesh_toolkit.contracts.catalog import GetProductResponse, Product, ProductList
from lambdamesh_toolkit.contracts.rpc import RpcRequest, RpcResponse
from lambdamesh_toolkit.errors import InvalidRequest, NotFound
from tests.unit.services.conftest import ServiceFactory
from tests.unit.services.service_loader import LoadedService, load_service
from tests.unit.services.support import captured_log, json_body


@pytest.fixture
def catalog(deployed_service: ServiceFactory) -> LoadedService:
    return deployed_service("catalog")


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
