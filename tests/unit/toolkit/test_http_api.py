"""Thin Chalice handlers: body parsing, typed errors as answers."""

from __future__ import annotations

import io
import json
import re
import time
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from chalice.app import Chalice
from chalice.test import Client

from lambdamesh_toolkit.contracts.orders import CreateOrder
from lambdamesh_toolkit.deadline import DEADLINE_HEADER, current_deadline, header_value
from lambdamesh_toolkit.errors import DependencyUnavailable, NotFound
from lambdamesh_toolkit.hops import HOP_MESSAGE
from lambdamesh_toolkit.http_api import ApiApp, HttpApi, NotAnApiRequestError


def orders_app(logger: Logger | None = None) -> Chalice:
    app = Chalice(app_name="orders-api-test")
    api = HttpApi(app, logger)

    @app.route("/orders", methods=["POST"])
    @api.endpoint(status=201)
    def create_order() -> CreateOrder:
        return api.parse_body(CreateOrder)

    @app.route("/orders/{order_id}")
    @api.endpoint()
    def get_order(order_id: str) -> dict[str, Any]:
        if order_id == "broken":
            raise KeyError("secret-table-name")
        if order_id == "down":
            raise DependencyUnavailable("users-api", 2.5, reason="circuit open")
        raise NotFound("order", order_id)

    return app


def post(body: bytes) -> Any:
    with Client(orders_app()) as client:
        return client.http.post("/orders", headers={"Content-Type": "application/json"}, body=body)


def test_valid_body_is_parsed_into_the_contract() -> None:
    # GIVEN / WHEN a valid order is posted
    response = post(b'{"user_id": "u-1", "items": [{"product_id": "p-1", "quantity": 2}]}')

    # THEN the handler received the model (echoed back here) with the success status
    assert response.status_code == 201
    assert json.loads(response.body)["items"] == [{"product_id": "p-1", "quantity": 2}]


def test_invalid_field_answers_400_naming_the_field() -> None:
    # GIVEN / WHEN an order with a zero quantity in its second item is posted
    response = post(
        b'{"user_id": "u-1", "items": [{"product_id": "p-1", "quantity": 1},'
        b' {"product_id": "p-2", "quantity": 0}]}'
    )

    # THEN the answer is 400 naming that field
    assert response.status_code == 400
    error = json.loads(response.body)["error"]
    assert error["code"] == "invalid_request"
    assert error["field"] == "items[1].quantity"


def test_unknown_field_is_refused_by_name() -> None:
    # GIVEN / WHEN an order with an unexpected field is posted
    response = post(b'{"user_id": "u-1", "items": [{"product_id": "p-1", "quantity": 1}], "x": 1}')

    # THEN the answer names it
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["field"] == "x"


def test_invalid_json_and_empty_body_answer_400_on_body() -> None:
    # GIVEN / WHEN a body that is not JSON, and no body, are posted
    broken = post(b'{"user_id": ')
    empty = post(b"")

    # THEN both answer 400 on the field "body"
    for response in (broken, empty):
        assert response.status_code == 400
        assert json.loads(response.body)["error"]["field"] == "body"


def test_service_errors_answer_their_status_and_body() -> None:
    # GIVEN / WHEN a missing order and an unavailable dependency are hit
    with Client(orders_app()) as client:
        missing = client.http.get("/orders/o-9")
        down = client.http.get("/orders/down")

    # THEN 404 with the typed body, and 503 with Retry-After rounded up
    assert missing.status_code == 404
    assert json.loads(missing.body)["error"]["code"] == "not_found"
    assert down.status_code == 503
    assert down.headers["Retry-After"] == "3"
    assert json.loads(down.body)["error"]["code"] == "dependency_unavailable"


def test_an_unexpected_error_answers_a_json_500_with_the_correlation_id_and_nothing_else() -> None:
    # GIVEN a handler that fails with an error nobody planned for, and a logger to read
    stream = io.StringIO()
    logger = Logger(service="orders-api-test", stream=stream)
    # WHEN it is called with a correlation id
    with Client(orders_app(logger)) as client:
        response = client.http.get("/orders/broken", headers={"X-Correlation-Id": "trace-500"})
    # THEN the answer is JSON 500 carrying the correlation id, in the header and the body
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Correlation-Id"] == "trace-500"
    error = json.loads(response.body)["error"]
    assert (error["code"], error["correlation_id"]) == ("internal_error", "trace-500")
    # AND nothing of the cause is in it, while the log has the traceback under that id
    assert "secret-table-name" not in response.body.decode()
    assert "KeyError" not in response.body.decode()
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    [line] = [line for line in lines if line["message"] != HOP_MESSAGE]
    assert line["level"] == "ERROR"
    assert line["correlation_id"] == "trace-500"
    assert "secret-table-name" in line["exception"]


def test_every_error_body_carries_the_correlation_id() -> None:
    # GIVEN / WHEN an unknown order is asked for under a correlation id
    with Client(orders_app()) as client:
        response = client.http.get("/orders/o-404", headers={"X-Correlation-Id": "trace-404"})
    # THEN the 404 body names it, beside the code and the message
    assert response.status_code == 404
    assert json.loads(response.body)["error"]["correlation_id"] == "trace-404"


def deadline_app() -> Chalice:
    app = Chalice(app_name="deadline-test")
    api = HttpApi(app)

    @app.route("/deadline")
    @api.endpoint()
    def deadline() -> dict[str, Any]:
        return {"deadline": current_deadline()}

    return app


def test_a_request_gets_the_budget_of_its_service_from_its_arrival(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a service whose requests get 5 s
    monkeypatch.setenv("REQUEST_DEADLINE_S", "5")
    # WHEN a request without a deadline of its own arrives
    before = time.time()
    with Client(deadline_app()) as client:
        response = client.http.get("/deadline")
    after = time.time()
    # THEN the handler works under a deadline 5 s from the arrival
    deadline = json.loads(response.body)["deadline"]
    assert before + 5 <= deadline <= after + 5


def test_a_callers_earlier_deadline_is_kept_and_a_later_one_is_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a service whose requests get 20 s
    monkeypatch.setenv("REQUEST_DEADLINE_S", "20")
    soon, late = time.time() + 10, time.time() + 60
    with Client(deadline_app()) as client:
        # WHEN callers send a deadline 10 s away, then one 60 s away (both far enough that a
        # stalled worker cannot see the first pass, nor the second come within the budget)
        kept = client.http.get("/deadline", headers={DEADLINE_HEADER: header_value(soon)})
        capped = client.http.get("/deadline", headers={DEADLINE_HEADER: header_value(late)})
    # THEN the earlier one is kept as sent, the later one cut to the service's own budget
    assert json.loads(kept.body)["deadline"] == int(soon * 1000) / 1000
    assert json.loads(capped.body)["deadline"] <= time.time() + 20


@pytest.mark.parametrize(
    ("payload", "named"),
    [
        ({"orders": []}, "requestContext.resourcePath"),
        ([1, 2], "not a JSON object"),
        ({"requestContext": {"resourcePath": "/orders"}}, "requestContext.httpMethod"),
        (
            {"requestContext": {"resourcePath": "/orders", "httpMethod": "GET"}},
            "headers, multiValueQueryStringParameters, pathParameters, stageVariables, body",
        ),
    ],
)
def test_an_api_function_invoked_with_another_payload_says_what_is_missing(
    payload: Any, named: str
) -> None:
    # GIVEN an API app
    app = ApiApp(app_name="direct-invoke-test")
    # WHEN it is invoked directly with a payload that is no API Gateway proxy event
    # THEN it refuses with an error naming what is missing
    with pytest.raises(NotAnApiRequestError, match=re.escape(named)):
        app(payload, None)


def test_an_api_app_serves_api_gateway_requests_as_chalice_does() -> None:
    # GIVEN an API app with a route
    app = ApiApp(app_name="direct-invoke-test")
    api = HttpApi(app)

    @app.route("/ping")
    @api.endpoint()
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    # WHEN API Gateway's request comes in
    with Client(app) as client:
        response = client.http.get("/ping")
    # THEN it is answered
    assert (response.status_code, json.loads(response.body)) == (200, {"pong": "yes"})


@pytest.mark.parametrize("order_id", ["o" * 65, "not%20an%20id", "%E2%80%8B", "-leading-dash"])
def test_a_path_id_no_resource_can_have_is_404_naming_it_without_a_lookup(order_id: str) -> None:
    # GIVEN the orders API, whose handler would look the id up
    # WHEN an order is asked for by an id that no order can have
    with Client(orders_app()) as client:
        response = client.http.get(f"/orders/{order_id}")
    # THEN 404 naming the parameter; the handler never ran (it answers "down" or "not found")
    assert response.status_code == 404
    error = json.loads(response.body)["error"]
    assert error["field"] == "order_id"


@pytest.mark.parametrize("deadline", ["4", "soon", "1e12", "-5", "9" * 16, "²"])
def test_a_passed_or_malformed_deadline_is_refused_naming_the_header(deadline: str) -> None:
    # GIVEN a caller sending a deadline that has passed, or that is not epoch milliseconds
    # WHEN it asks for anything
    with Client(deadline_app()) as client:
        response = client.http.get("/deadline", headers={DEADLINE_HEADER: deadline})
    # THEN 400 naming the header: nobody would wait for the answer
    assert response.status_code == 400
    assert json.loads(response.body)["error"]["field"] == DEADLINE_HEADER


def ping_app() -> ApiApp:
    app = ApiApp(app_name="chalice-refusals-test")
    api = HttpApi(app)

    @app.route("/ping", methods=["POST"])
    @api.endpoint()
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    return app


@pytest.mark.parametrize(
    ("method", "content_type", "status", "code"),
    [
        ("POST", "text/plain", 415, "unsupported_media_type"),
        ("PUT", "application/json", 405, "method_not_allowed"),
    ],
)
def test_what_chalice_refuses_before_a_handler_runs_is_answered_in_the_error_shape(
    method: str, content_type: str, status: int, code: str
) -> None:
    # GIVEN an API app with a JSON POST route
    with Client(ping_app()) as client:
        # WHEN a body that is not JSON, or a method the path has not got, comes in
        response = client.http.request(
            method,
            "/ping",
            headers={"Content-Type": content_type, "X-Correlation-Id": "caller-7"},
            body=b"{}",
        )
    # THEN Chalice's refusal keeps its status but speaks the services' error shape, with the
    # caller's correlation id in the body and the header
    body = json.loads(response.body)
    assert response.status_code == status
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["field"] is None
    assert body["error"]["correlation_id"] == "caller-7"
    assert response.headers["X-Correlation-Id"] == "caller-7"
    assert response.headers["Content-Type"] == "application/json"
