"""The catalog service's typed RPC as its callers see it: ``GetProduct``, ``GetProducts``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pydantic import BaseModel, TypeAdapter, ValidationError

from lambdamesh_toolkit.contracts.base import Identifier
from lambdamesh_toolkit.contracts.catalog import (
    GetProductRequest,
    GetProductResponse,
    GetProductsRequest,
    GetProductsResponse,
    Product,
)
from lambdamesh_toolkit.errors import DependencyUnavailable, NotFound


class RpcCaller(Protocol):
    """What this adapter needs of an RPC client (``lambdamesh_toolkit.rpc.RpcClient``)."""

    def call[T: BaseModel](self, method: str, request: BaseModel, response_type: type[T]) -> T:
        """Call ``method`` with ``request``; the typed response, or a ``ServiceError``."""
        ...


class CatalogRpcLookup:
    """Looks products up in the catalog by RPC.

    Parameters
    ----------
    rpc
        A client for the catalog's RPC function (timeouts, retries and breaker included).
    """

    def __init__(self, rpc: RpcCaller) -> None:
        self._rpc = rpc

    def get_product(self, product_id: str) -> Product | None:
        """Look a product up by its id.

        Parameters
        ----------
        product_id
            The product's id, as the caller got it (a malformed id finds nothing).

        Returns
        -------
        Product | None
            The product, or ``None`` when the catalog has none.

        Raises
        ------
        DependencyUnavailable
            When the catalog cannot be reached (timeouts, retries exhausted, breaker open).
        """
        try:
            request = GetProductRequest(product_id=product_id)
        except ValidationError:
            # Not a well-formed product id (e.g. from a URL path): no such product exists.
            return None
        try:
            answer = self._rpc.call("GetProduct", request, GetProductResponse)
        except NotFound:
            return None
        except DependencyUnavailable as error:
            raise _with_retry_hint(error) from error
        return answer.product

    def get_products(self, product_ids: Sequence[str]) -> dict[str, Product | None]:
        """Look products up by their ids, in one ``GetProducts`` call.

        Parameters
        ----------
        product_ids
            Distinct product ids, as the caller got them, at most ``MAX_ORDER_ITEMS``; a
            malformed one finds nothing and is not sent. When none is well formed, the
            catalog is not called at all.

        Returns
        -------
        dict[str, Product | None]
            Every asked id, with its product or ``None`` when the catalog has none.

        Raises
        ------
        DependencyUnavailable
            When the catalog cannot be reached (timeouts, retries exhausted, breaker open).
        """
        found: dict[str, Product | None] = dict.fromkeys(product_ids)
        well_formed = [product_id for product_id in found if _is_product_id(product_id)]
        if not well_formed:
            return found
        request = GetProductsRequest(product_ids=well_formed)
        try:
            answer = self._rpc.call("GetProducts", request, GetProductsResponse)
        except DependencyUnavailable as error:
            raise _with_retry_hint(error) from error
        for product in answer.products:
            if product.id in found:  # an id not asked for is the catalog's mistake: ignored
                found[product.id] = product
        return found


_PRODUCT_ID: TypeAdapter[str] = TypeAdapter(Identifier)


def _is_product_id(value: str) -> bool:
    """Whether ``value`` is a well-formed product id (one ``GetProductsRequest`` accepts)."""
    try:
        _PRODUCT_ID.validate_python(value)
    except ValidationError:
        return False
    return True


DEFAULT_RETRY_AFTER_S = 1.0
"""The ``Retry-After`` hint when the client gave none (retries exhausted, not a breaker)."""


def _with_retry_hint(error: DependencyUnavailable) -> DependencyUnavailable:
    """``error``, with a retry hint if it had none: a 503 always tells when to come back."""
    if error.retry_after_s is not None:
        return error
    return DependencyUnavailable(error.dependency, DEFAULT_RETRY_AFTER_S, reason=error.reason)
