"""The catalog service: ``GET /products``, ``GET /products/{product_id}``, RPC ``GetProduct``
(one product: reviews) and ``GetProducts`` (an order's products in one read: orders).

Three more functions besides the API: ``rpc`` serves the typed RPC other services invoke
directly; ``handle_inventory_events`` consumes ``lambdamesh-catalog-inventory``
(``inventory.stock_changed``) and keeps each product's ``stock`` at inventory's newest level
(``chalicelib/availability.py``); and ``seed`` adds the starting assortment (the deploy step
invokes it once per deployment; it never overwrites a product, so running it again is
harmless and never undoes a projected level).
"""

from __future__ import annotations

import functools
from typing import Any

from chalice.app import SQSEvent

from chalicelib.domain import Catalog, ProductQuery
from chalicelib.settings import CatalogSettings, StockProjectionSettings
from chalicelib.wiring import build_availability, build_catalog, build_inventory_events_consumer
from lambdamesh_toolkit.config import load_settings
from lambdamesh_toolkit.contracts.catalog import (
    GetProductRequest,
    GetProductResponse,
    GetProductsRequest,
    GetProductsResponse,
    Product,
    ProductList,
)
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.events.consuming import EventConsumer
from lambdamesh_toolkit.http_api import ApiApp, HttpApi
from lambdamesh_toolkit.logging import bind_invocation, get_logger
from lambdamesh_toolkit.rpc import RpcServer

app = ApiApp(app_name="lambdamesh-catalog")
logger = get_logger("catalog")
api = HttpApi(app, logger)
rpc = RpcServer("catalog", logger=logger)

INVENTORY_QUEUE = "lambdamesh-catalog-inventory"
"""Inventory's ``inventory.stock_changed``, fanned out from its topic (a standard queue)."""


@functools.cache
def catalog() -> Catalog:
    """The catalog, built on first use and kept by the warm container.

    Built lazily rather than at import so that ``chalice package`` (which imports this
    module to find the routes) needs no environment.
    """
    return build_catalog(load_settings(CatalogSettings))


@app.route("/products", methods=["GET"])
@api.endpoint(query=ProductQuery)
def list_products() -> ProductList:
    """A page of products (``?limit=1..100&next_token=...``)."""
    return catalog().list_products(ProductQuery.from_query_params(api.request.query_params))


@app.route("/products/{product_id}", methods=["GET"])
@api.endpoint(errors=(404,))
def get_product(product_id: str) -> Product:
    """The product with this id (404 when there is none)."""
    return catalog().get_product(product_id)


@rpc.method("GetProduct", GetProductRequest)
def get_product_rpc(request: GetProductRequest) -> GetProductResponse:
    """RPC ``GetProduct``: the product, or a ``not_found`` error."""
    product = catalog().get_product(request.product_id)
    # One line per call, so the caller's correlation id can be followed into this service.
    logger.info("rpc GetProduct served", extra={"product_id": product.id})
    return GetProductResponse(product=product)


@rpc.method("GetProducts", GetProductsRequest)
def get_products_rpc(request: GetProductsRequest) -> GetProductsResponse:
    """RPC ``GetProducts``: the products found (an unknown id is left out, not an error)."""
    products = catalog().get_products(request.product_ids)
    logger.info(
        "rpc GetProducts served",
        extra={"asked": len(request.product_ids), "found": len(products)},
    )
    return GetProductsResponse(products=products)


@app.lambda_function(name="rpc")
def rpc_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The RPC entry point: an ``RpcRequest`` in, an ``RpcResponse`` out."""
    return rpc.handle(event, context)


@functools.cache
def inventory_events() -> EventConsumer:
    """The consumer of inventory's events, built on first use and kept by the warm container."""
    settings = load_settings(StockProjectionSettings)
    return build_inventory_events_consumer(settings, build_availability(settings), logger)


@app.on_sqs_message(queue=INVENTORY_QUEUE, batch_size=10, maximum_batching_window_in_seconds=0)
def handle_inventory_events(event: SQSEvent) -> dict[str, Any]:
    """``inventory.stock_changed`` → the product's shown stock (partial batch response)."""
    return inventory_events().process(event.to_dict(), event.context)


@app.lambda_function(name="seed")
def seed_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Add the seed products that are missing; report what was added and what was there."""
    given = event.get("correlation_id") if isinstance(event, dict) else None
    correlation_id = use_correlation_id(given if isinstance(given, str) else None)
    bind_invocation(logger, correlation_id, getattr(context, "aws_request_id", None))
    report = catalog().seed()
    logger.info("catalog seeded", extra={"added": report.added, "present": report.present})
    return {"added": list(report.added), "present": list(report.present)}
