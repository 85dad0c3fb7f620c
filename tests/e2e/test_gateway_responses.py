"""API Gateway's own answers reach clients in the services' one error shape.

A request no route matches never reaches a function: API Gateway answers it itself (on AWS
``403 {"message": "Missing Authentication Token"}``). Deploy declares gateway responses in every
REST API's document (:mod:`lambdamesh.deploy.gateway_responses`), and the emulator renders them
(:mod:`lambdamesh_localstack.gateway_responses`): such a request gets a 404 ``not_found`` in JSON,
like any other refusal.
"""

from __future__ import annotations

import json

import pytest
import urllib3

from tests.e2e.conftest import DeployedSystem

REQUEST_TIMEOUT = urllib3.Timeout(connect=2.0, read=30.0)
_http = urllib3.PoolManager(retries=False)

UNROUTED = [
    # a path no resource has
    ("users", "GET", "no-such-route"),
    # a path under a resource that has no such child
    ("users", "GET", "users/u-1/no-such-child"),
    # a resource that exists, with a method it has not got
    ("catalog", "DELETE", "products"),
]


@pytest.mark.parametrize(
    ("service", "method", "path"), UNROUTED, ids=[f"{m} {p}" for _, m, p in UNROUTED]
)
def test_a_request_no_route_matches_is_a_json_not_found_in_the_error_shape(
    deployed: DeployedSystem, service: str, method: str, path: str
) -> None:
    # GIVEN the deployed system
    url = deployed[service].url(path)
    # WHEN a path or method that no route of the API matches is requested
    response = _http.request(
        method, url, headers={"Accept": "application/json"}, timeout=REQUEST_TIMEOUT
    )
    # THEN API Gateway answers 404 in JSON, not its 403 "Missing Authentication Token"
    assert response.status == 404, response.data
    assert response.headers["Content-Type"].startswith("application/json")
    # AND the body is the services' error shape: not_found, naming the method and the path,
    # with no field, and an id to quote
    body = json.loads(response.data)
    assert set(body) == {"error"}
    error = body["error"]
    assert error["code"] == "not_found"
    assert error["field"] is None
    assert error["message"].startswith(f"no route matches {method} /")
    assert error["message"].endswith(f"/{path}")
    assert isinstance(error["correlation_id"], str)
    assert error["correlation_id"]


def test_a_body_that_is_not_json_is_a_415_in_the_error_shape(deployed: DeployedSystem) -> None:
    # GIVEN the deployed users API, whose POST /users takes JSON
    url = deployed["users"].url("users")
    # WHEN a body is sent as text/plain
    response = _http.request(
        "POST",
        url,
        body=b"email=a@example.com",
        headers={"Content-Type": "text/plain", "X-Correlation-Id": "not-json-1"},
        timeout=REQUEST_TIMEOUT,
    )
    # THEN the answer is a 415 in the services' error shape, under the caller's correlation id
    assert response.status == 415, response.data
    body = json.loads(response.data)
    assert body["error"]["code"] == "unsupported_media_type"
    assert body["error"]["correlation_id"] == "not-json-1"
    assert response.headers["X-Correlation-Id"] == "not-json-1"


API_GATEWAY_BODY_LIMIT_BYTES = 10 * 1024 * 1024


def test_a_body_over_ten_megabytes_is_a_413_in_the_error_shape(deployed: DeployedSystem) -> None:
    # GIVEN the deployed orders API
    url = deployed["orders"].url("orders")
    # WHEN a JSON body one byte over API Gateway's 10 MB is posted
    body = b'{"pad":"' + b"x" * (API_GATEWAY_BODY_LIMIT_BYTES - 9) + b'"}'
    assert len(body) == API_GATEWAY_BODY_LIMIT_BYTES + 1
    response = _http.request(
        "POST",
        url,
        body=body,
        headers={"Content-Type": "application/json"},
        timeout=REQUEST_TIMEOUT,
    )
    # THEN API Gateway refuses it itself with 413, in the services' error shape
    assert response.status == 413, response.data[:500]
    error = json.loads(response.data)["error"]
    assert error["code"] == "payload_too_large"
    assert error["correlation_id"]
