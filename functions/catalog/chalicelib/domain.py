"""The product catalog: listing products, finding one, and the seed assortment.

Plain Python: the storage is a port (:class:`ProductRepository`) that an adapter implements.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import Field, TypeAdapter, ValidationError

from lambdamesh_toolkit.contracts.base import Identifier
from lambdamesh_toolkit.contracts.catalog import Product, ProductList
from lambdamesh_toolkit.errors import InvalidRequest, NotFound
from lambdamesh_toolkit.paging import MAX_PAGE_SIZE, PageQuery, decode_token, encode_token

DEFAULT_PAGE_SIZE = 50
_PRODUCT_ID: TypeAdapter[str] = TypeAdapter(Identifier)


class ProductRepository(Protocol):
    """Where products live."""

    def get(self, product_id: str) -> Product | None:
        """The product with this id, or ``None``."""
        ...

    def get_products(self, product_ids: Sequence[str]) -> list[Product]:
        """The products with these (distinct) ids that exist, in no particular order."""
        ...

    def page(self, limit: int, after: str | None) -> tuple[list[Product], str | None]:
        """Up to ``limit`` products following the one with id ``after``.

        Returns the products and the id to continue after, ``None`` on the last page.
        """
        ...

    def add_if_absent(self, product: Product) -> bool:
        """Store the product unless one with its id exists; whether it was stored."""
        ...


SEED_PRODUCTS: tuple[Product, ...] = (
    Product(
        id="p-espresso-beans",
        name="Espresso beans, 1 kg",
        description="Dark roast, washed Arabica from Minas Gerais.",
        price_cents=2490,
        currency="EUR",
        stock=120,
    ),
    Product(
        id="p-pour-over-kettle",
        name="Pour-over kettle",
        description="Gooseneck kettle, 0.9 l, stainless steel.",
        price_cents=5900,
        currency="EUR",
        stock=35,
    ),
    Product(
        id="p-burr-grinder",
        name="Burr grinder",
        description="Conical steel burrs, 40 grind settings.",
        price_cents=14900,
        currency="EUR",
        stock=12,
    ),
    Product(
        id="p-paper-filters",
        name="Paper filters, 100 pcs",
        description="Unbleached cone filters, size 02.",
        price_cents=650,
        currency="EUR",
        stock=400,
    ),
    Product(
        id="p-ceramic-mug",
        name="Ceramic mug",
        description="Hand-glazed stoneware, 300 ml.",
        price_cents=1800,
        currency="EUR",
        stock=60,
    ),
    Product(
        id="p-milk-jug",
        name="Milk jug",
        description="Steaming pitcher, 600 ml, with latte-art spout.",
        price_cents=2200,
        currency="EUR",
        stock=0,
    ),
)
"""The assortment a fresh deployment starts with (one is out of stock on purpose). ``stock``
is what is shown until inventory announces a level (``chalicelib/availability.py``); it is the
same as inventory's seed (``functions/inventory/chalicelib/seed_data.py``)."""


class ProductQuery(PageQuery):
    """The query string of ``GET /products``: pages of 50 by default."""

    limit: int = Field(DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


def encode_page_token(last_id: str) -> str:
    """The opaque token that continues a listing after product ``last_id``."""
    return encode_token({"id": last_id})


def decode_page_token(token: str) -> str:
    """The product id a token continues after.

    Raises
    ------
    InvalidRequest
        Naming ``next_token`` when it does not decode to a product id.
    """
    product_id = decode_token(token, ("id",))["id"]
    try:
        return _PRODUCT_ID.validate_python(product_id)
    except ValidationError:
        raise InvalidRequest("next_token", "not a token this service handed out") from None


@dataclass(frozen=True)
class SeedReport:
    """What seeding did: ids added, ids already present (left as they were)."""

    added: tuple[str, ...]
    present: tuple[str, ...]


class Catalog:
    """Reads the catalog and seeds it.

    Parameters
    ----------
    repository
        Where products are stored.
    """

    def __init__(self, repository: ProductRepository) -> None:
        self._repository = repository

    def get_product(self, product_id: str) -> Product:
        """The product with this id.

        Raises
        ------
        NotFound
            When there is none.
        """
        product = self._repository.get(product_id)
        if product is None:
            raise NotFound("product", product_id)
        return product

    def get_products(self, product_ids: Sequence[str]) -> list[Product]:
        """The products with these (distinct) ids that the catalog has, in the order asked;
        an id it has none for is left out."""
        found = {product.id: product for product in self._repository.get_products(product_ids)}
        return [found[product_id] for product_id in product_ids if product_id in found]

    def list_products(self, query: ProductQuery) -> ProductList:
        """One page of products; ``next_token`` leads to the next page.

        Raises
        ------
        InvalidRequest
            Naming ``next_token`` when it is not one this service handed out.
        """
        after = None if query.next_token is None else decode_page_token(query.next_token)
        products, last_id = self._repository.page(query.limit, after)
        return ProductList(
            products=products,
            next_token=None if last_id is None else encode_page_token(last_id),
        )

    def seed(self, products: Iterable[Product] = SEED_PRODUCTS) -> SeedReport:
        """Add the products that are missing; never overwrite one (its stock may have moved)."""
        added: list[str] = []
        present: list[str] = []
        for product in products:
            (added if self._repository.add_if_absent(product) else present).append(product.id)
        return SeedReport(added=tuple(added), present=tuple(present))
