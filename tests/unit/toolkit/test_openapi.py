"""Each service's OpenAPI document, generated from its routes and contracts."""

from __future__ import annotations

from typing import Any

import pytest
from chalice.app import AuthRequest, AuthResponse, Chalice, IAMAuthorizer

from lambdamesh_toolkit.contracts.orders import CreateOrder
from lambdamesh_toolkit.contracts.users import CreateUser
from lambdamesh_toolkit.http_api import HttpApi
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


def test_only_the_user_lookup_requires_iam_and_its_document_declares_sigv4() -> None:
    # GIVEN every API service's document
    docs = {service: document(service) for service in API_SERVICES}
    # WHEN the operations that name a security requirement are collected
    secured = {
        (service, method.upper(), path)
        for service, doc in docs.items()
        for path, ops in doc["paths"].items()
        for method, operation in ops.items()
        if operation.get("security")
    }
    # THEN only the lookup of a user is internal: every other route stays public
    assert secured == {("users", "GET", "/users/{user_id}")}
    lookup = docs["users"]["paths"]["/users/{user_id}"]["get"]
    assert lookup["security"] == [{"sigv4": []}]
    # AND its scheme is IAM authorisation as API Gateway's extensions declare it, as Chalice
    # declares it in the template deploy sends
    scheme = docs["users"]["components"]["securitySchemes"]["sigv4"]
    assert {key: value for key, value in scheme.items() if key != "description"} == (
        IAMAuthorizer().to_swagger()
    )
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    # AND API Gateway's refusal of a bad signature is among its answers, in the error shape
    assert lookup["responses"]["403"]["content"] == lookup["responses"]["404"]["content"]
    assert "securitySchemes" not in docs["catalog"]["components"]


def test_a_route_with_an_authorizer_other_than_iam_is_not_documented() -> None:
    # GIVEN a route behind a Lambda authorizer
    app = Chalice(app_name="custom-auth")
    api = HttpApi(app)

    @app.authorizer()
    def token(auth_request: AuthRequest) -> AuthResponse:
        return AuthResponse(routes=["*"], principal_id="p")

    @app.route("/things", authorizer=token)
    @api.endpoint()
    def things() -> dict[str, str]:
        return {}

    # WHEN its document is asked for  THEN it is refused, naming the route and the authorizer
    with pytest.raises(ValueError, match="GET /things: ChaliceAuthorizer is not documented"):
        openapi_document(app, title="custom")
