"""Each service's OpenAPI document, generated from its routes and contracts."""

from __future__ import annotations

from typing import Any

import pytest

from lambdamesh_toolkit.contracts.orders import CreateOrder
from lambdamesh_toolkit.contracts.users import CreateUser
from lambdamesh_toolkit.openapi import openapi_document
from tests.unit.services.service_loader import load_service

API_SERVICES = ("users", "catalog", "reviews", "orders")


def document(service: str) -> dict[str, Any]:
    return openapi_document(load_service(service).app, title=f"lambdamesh {service}")


def resolve(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    name = ref.removeprefix("#/components/schemas/")
    schema: dict[str, Any] = doc["components"]["schemas"][name]
    return schema


@pytest.mark.parametrize("service", API_SERVICES)
def test_every_route_is_documented_with_its_errors_in_one_shape(service: str) -> None:
    # GIVEN a service's app WHEN its document is generated
    doc = document(service)
    app = load_service(service).app
    # THEN every route and method is in it
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    assert documented == {
        (path, method) for path, methods in app.routes.items() for method in methods
    }
    for ops in doc["paths"].values():
        for operation in ops.values():
            # AND each answers 400 and 500 in the one error shape, every ref resolving
            assert {"400", "500"} <= set(operation["responses"])
            for answer in operation["responses"].values():
                for content in answer.get("content", {}).values():
                    assert resolve(doc, content["schema"]["$ref"])
            errors = [
                answer["content"]["application/json"]["schema"]["$ref"]
                for status, answer in operation["responses"].items()
                if int(status) >= 400
            ]
            assert len(set(errors)) == 1


def test_a_body_is_documented_by_its_contract() -> None:
    # GIVEN the users and orders documents
    users, orders = document("users"), document("orders")
    # WHEN the bodies of their POST routes are read
    user_body = users["paths"]["/users"]["post"]["requestBody"]["content"]["application/json"]
    order = orders["paths"]["/orders"]["post"]
    # THEN they are the contracts' schemas, integers strict, unknown fields refused
    assert resolve(users, user_body["schema"]["$ref"])["properties"].keys() == (
        CreateUser.model_json_schema()["properties"].keys()
    )
    order_body = resolve(
        orders, order["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert order_body["additionalProperties"] is False
    assert set(order_body["required"]) == set(CreateOrder.model_json_schema()["required"])
    # AND the key header and both success statuses are there
    assert {"200", "201", "409", "422", "503"} <= set(order["responses"])
    assert "Idempotency-Key" in {parameter["name"] for parameter in order["parameters"]}


def test_path_and_query_parameters_say_what_is_accepted() -> None:
    # GIVEN the reviews document
    doc = document("reviews")
    listing = doc["paths"]["/products/{product_id}/reviews"]["get"]
    parameters = {parameter["name"]: parameter for parameter in listing["parameters"]}
    # THEN the product id is an identifier, the limit a bounded integer, the token a string
    assert parameters["product_id"]["in"] == "path"
    assert parameters["product_id"]["schema"]["pattern"].startswith("^[A-Za-z0-9]")
    assert parameters["limit"]["schema"]["type"] == "integer"
    assert parameters["limit"]["schema"]["maximum"] == 100
    assert parameters["next_token"]["schema"]["type"] == "string"
    assert parameters["X-Correlation-Id"]["in"] == "header"
