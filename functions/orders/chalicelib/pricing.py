"""Pricing an order from catalog products, and the item rules that go with it.

Money is integer cents throughout; an order is in one currency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from lambdamesh_toolkit.contracts.base import first_repeat
from lambdamesh_toolkit.contracts.catalog import Product
from lambdamesh_toolkit.contracts.orders import OrderItemRequest, OrderLine
from lambdamesh_toolkit.errors import Unprocessable


@dataclass(frozen=True)
class PricedItems:
    """The priced lines of an order, their total and its currency."""

    lines: tuple[OrderLine, ...]
    total_cents: int
    currency: str


def product_field(index: int) -> str:
    """The request field naming the product of item ``index``."""
    return f"items[{index}].product_id"


def check_distinct_products(items: Sequence[OrderItemRequest]) -> None:
    """Refuse a product listed twice: the client must say one quantity, not two.

    Raises
    ------
    Unprocessable
        Naming the second occurrence's ``items[i].product_id``.
    """
    repeat = first_repeat(item.product_id for item in items)
    if repeat is not None:
        index, first = repeat
        raise Unprocessable(
            product_field(index),
            f"product {items[index].product_id} is already in items[{first}];"
            " give one item with the total quantity",
        )


def price_items(
    items: Sequence[OrderItemRequest], products: Mapping[str, Product | None]
) -> PricedItems:
    """Price every item at the catalog's current price.

    The catalog's stock figure is for display only: stock is reserved later, by the
    inventory service, once the order is placed, so it is not checked here.

    Parameters
    ----------
    items
        The requested items, in request order.
    products
        The catalog's answer for every requested product id (``None``: no such product).

    Raises
    ------
    Unprocessable
        Naming ``items[i].product_id`` for an unknown product or one priced in another
        currency than the order's first item.
    """
    lines: list[OrderLine] = []
    currency: str | None = None
    for index, item in enumerate(items):
        product = products.get(item.product_id)
        if product is None:
            raise Unprocessable(
                product_field(index), f"no product {item.product_id} in the catalog"
            )
        if currency is not None and product.currency != currency:
            raise Unprocessable(
                product_field(index),
                f"product {product.id} is priced in {product.currency}; "
                f"an order is in one currency ({currency})",
            )
        currency = product.currency
        lines.append(
            OrderLine(
                product_id=product.id,
                name=product.name,
                quantity=item.quantity,
                unit_price_cents=product.price_cents,
                line_total_cents=product.price_cents * item.quantity,
            )
        )
    assert currency is not None, "an order has at least one item (the contract says so)"
    return PricedItems(
        lines=tuple(lines),
        total_cents=sum(line.line_total_cents for line in lines),
        currency=currency,
    )
