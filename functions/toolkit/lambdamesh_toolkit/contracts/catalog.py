"""Contracts of the catalog service, REST and RPC."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import AfterValidator, Field, StringConstraints

from lambdamesh_toolkit.contracts.base import (
    Cents,
    Contract,
    Currency,
    Identifier,
    MultilineText,
    ShortText,
    StrictInt,
    first_repeat,
)
from lambdamesh_toolkit.contracts.orders import MAX_ORDER_ITEMS


class Product(Contract):
    """A product on sale; ``stock`` is the level shown to shoppers."""

    contract_name: ClassVar[str] = "catalog.Product"

    id: Identifier
    name: ShortText
    description: Annotated[MultilineText, StringConstraints(max_length=4000)] = ""
    price_cents: Cents
    currency: Currency
    stock: Annotated[StrictInt, Field(ge=0)]


class ProductList(Contract):
    """Body of ``GET /products``: one page of products."""

    contract_name: ClassVar[str] = "catalog.ProductList"

    products: list[Product]
    next_token: str | None = None


class GetProductRequest(Contract):
    """RPC ``GetProduct`` request."""

    contract_name: ClassVar[str] = "catalog.GetProductRequest"

    product_id: Identifier


class GetProductResponse(Contract):
    """RPC ``GetProduct`` response."""

    contract_name: ClassVar[str] = "catalog.GetProductResponse"

    product: Product


def _distinct(product_ids: list[str]) -> list[str]:
    """``product_ids`` when no id repeats; a repeat names both places.

    >>> _distinct(["p-1", "p-2", "p-1"])
    Traceback (most recent call last):
    ...
    ValueError: product_ids[2] repeats product_ids[0] (p-1): ask for each product once
    """
    repeat = first_repeat(product_ids)
    if repeat is not None:
        index, first = repeat
        raise ValueError(
            f"product_ids[{index}] repeats product_ids[{first}] "
            f"({product_ids[index]}): ask for each product once"
        )
    return product_ids


class GetProductsRequest(Contract):
    """RPC ``GetProducts`` request: 1 to ``MAX_ORDER_ITEMS`` distinct product ids (an order's
    products, read together)."""

    contract_name: ClassVar[str] = "catalog.GetProductsRequest"

    product_ids: Annotated[
        list[Identifier],
        Field(min_length=1, max_length=MAX_ORDER_ITEMS, json_schema_extra={"uniqueItems": True}),
        AfterValidator(_distinct),
    ]


class GetProductsResponse(Contract):
    """RPC ``GetProducts`` response: the products found, in no particular order; an id the
    catalog has no product for is simply absent."""

    contract_name: ClassVar[str] = "catalog.GetProductsResponse"

    products: list[Product]
