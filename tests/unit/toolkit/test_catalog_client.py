"""The catalog's RPC as its callers see it (``clients/catalog.py``): ``GetProducts``."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from pydantic import BaseModel

from lambdamesh_toolkit.clients.catalog import DEFAULT_RETRY_AFTER_S, CatalogRpcLookup
from lambdamesh_toolkit.contracts.catalog import GetProductsRequest, Product
from lambdamesh_toolkit.errors import DependencyUnavailable

KETTLE = Product(id="p-kettle", name="Kettle", price_cents=5900, currency="EUR", stock=3)
BEANS = Product(id="p-beans", name="Beans", price_cents=2490, currency="EUR", stock=100)


@dataclass
class RecordingRpc:
    """``RpcClient.call`` answering ``GetProducts`` from ``products``, or raising ``failure``."""

    products: dict[str, Product] = field(default_factory=lambda: {p.id: p for p in (KETTLE, BEANS)})
    failure: Exception | None = None
    calls: list[tuple[str, list[str]]] = field(default_factory=list)

    def call[T: BaseModel](self, method: str, request: BaseModel, response_type: type[T]) -> T:
        assert isinstance(request, GetProductsRequest)
        self.calls.append((method, list(request.product_ids)))
        if self.failure is not None:
            raise self.failure
        found = [self.products[i] for i in request.product_ids if i in self.products]
        return response_type.model_validate({"products": [p.model_dump() for p in found]})


def test_get_products_asks_once_and_answers_every_id_found_or_none() -> None:
    # GIVEN a catalog holding a kettle and beans
    rpc = RecordingRpc()
    # WHEN three ids are looked up, one of them unknown
    found = CatalogRpcLookup(rpc).get_products(["p-beans", "p-unicorn", "p-kettle"])
    # THEN one GetProducts call asked for all three, and every id has its answer
    assert rpc.calls == [("GetProducts", ["p-beans", "p-unicorn", "p-kettle"])]
    assert found == {"p-beans": BEANS, "p-unicorn": None, "p-kettle": KETTLE}


def test_a_malformed_id_finds_nothing_and_is_not_sent() -> None:
    # GIVEN a lookup given a well-formed id and a malformed one (as from a URL path)
    rpc = RecordingRpc()
    # WHEN they are looked up
    found = CatalogRpcLookup(rpc).get_products(["p-kettle", "bad id!"])
    # THEN only the well-formed id was sent; the malformed one answers None
    assert rpc.calls == [("GetProducts", ["p-kettle"])]
    assert found == {"p-kettle": KETTLE, "bad id!": None}


def test_no_well_formed_id_means_no_call_at_all() -> None:
    # GIVEN only malformed ids
    rpc = RecordingRpc()
    # WHEN they are looked up
    found = CatalogRpcLookup(rpc).get_products(["bad id!", ""])
    # THEN the catalog was not called, and each id answers None
    assert rpc.calls == []
    assert found == {"bad id!": None, "": None}


@pytest.mark.parametrize(
    ("given", "expected"), [(None, DEFAULT_RETRY_AFTER_S), (4.5, 4.5)], ids=["no-hint", "hint"]
)
def test_an_unreachable_catalog_is_dependency_unavailable_with_a_retry_hint(
    given: float | None, expected: float
) -> None:
    # GIVEN a catalog the RPC client gave up on, with or without a retry hint
    rpc = RecordingRpc(failure=DependencyUnavailable("catalog-rpc", given, reason="timeout"))
    # WHEN products are looked up
    with pytest.raises(DependencyUnavailable) as refused:
        CatalogRpcLookup(rpc).get_products(["p-kettle"])
    # THEN the error always says when to come back (the client's hint when it had one)
    assert refused.value.retry_after_s == expected
    assert refused.value.dependency == "catalog-rpc"
