"""Contracts of the catalog service, REST and RPC."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import Field, StringConstraints

from lambdamesh_toolkit.contracts.base import (
    Cents,
    Contract,
    Currency,
    Identifier,
    MultilineText,
    ShortText,
    StrictInt,
)


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
