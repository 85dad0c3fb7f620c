"""Every route of the deployed services, fuzzed from its OpenAPI document (schemathesis).

The documents come from the services' own routes and contracts
(:mod:`lambdamesh_toolkit.openapi`). Valid and invalid requests are generated for every
operation and sent through API Gateway on the emulator; each answer must be one the document
lists for that operation, in the documented shape and content type, never a 5xx, and an
invalid request must be refused with a 4xx. ``LAMBDAMESH_FUZZ_EXAMPLES`` sets the examples per
operation: a few in ``make test``, many in ``make fuzz``.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any
from urllib.parse import unquote

import pytest
import schemathesis
import urllib3
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from lambdamesh_toolkit.openapi import openapi_document
from tests.e2e.conftest import DeployedSystem
from tests.unit.services.service_loader import load_service

API_SERVICES = ("users", "catalog", "reviews", "orders")
FUZZ_EXAMPLES = int(os.environ.get("LAMBDAMESH_FUZZ_EXAMPLES", "10"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def routable(value: object) -> bool:
    """Whether a URL can carry a path parameter as it is (schemathesis sends it percent-encoded).

    An empty id leaves no segment (``/users/`` is ``/users``), and ``.`` or ``..`` (even
    encoded) are dot segments that clients and proxies normalise away. Any other id is sent:
    whether a route takes it or none matches (API Gateway's answer, a 404 in the error shape
    since deploy declares its gateway responses), the answer is one the document lists.
    """
    return unquote(str(value)) not in {"", ".", ".."}


def system_document() -> tuple[dict[str, Any], dict[str, str]]:
    """One document for the four APIs (their paths do not overlap); path → service.

    A route that requires IAM authorisation (``GET /users/{user_id}``) keeps its ``sigv4``
    security scheme. Schemathesis, given no credentials for it, sends the ``Authorization``
    header as a generated string (or, in negative mode, leaves it out); the emulator checks no
    signature, so such a request is answered as a signed one would be, and the answers are
    checked as usual. On AWS, API Gateway would refuse it before the function runs.
    """
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    schemes: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for service in API_SERVICES:
        doc = openapi_document(load_service(service).app, title=service)
        for path, item in doc["paths"].items():
            assert path not in paths, f"{path} is served by two services"
            paths[path] = item
            owner[path] = service
        for name, schema in doc["components"]["schemas"].items():
            assert schemas.setdefault(name, schema) == schema, f"two schemas named {name}"
        for name, scheme in doc["components"].get("securitySchemes", {}).items():
            assert schemes.setdefault(name, scheme) == scheme, f"two security schemes {name}"
    document = {
        "openapi": "3.1.0",
        "info": {"title": "lambdamesh", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": schemes},
    }
    return document, owner


DOCUMENT, OWNER = system_document()


OPERATIONS = [(path, method.upper()) for path, item in DOCUMENT["paths"].items() for method in item]


@pytest.fixture(scope="module")
def fuzz_schema() -> Any:
    return schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def existing_ids(deployed: DeployedSystem) -> dict[str, list[str]]:
    """Path parameter name → ids that exist: seeded products, a user and an order made here.

    Generated ids almost never name anything, so every request would stop at a 404; with these
    in their path, valid requests reach the services' real work (a review stored, an order read).
    """
    http = urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2.0, read=30.0))

    def call(method: str, url: str, body: Any = None) -> Any:
        response = http.request(
            method,
            url,
            body=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert response.status in (200, 201), (url, response.status, response.data)
        return json.loads(response.data)

    products = call("GET", deployed["catalog"].url("products?limit=10"))["products"]
    user = call(
        "POST",
        deployed["users"].url("users"),
        {"email": f"fuzz-{uuid.uuid4().hex[:8]}@example.com", "name": "Fuzz Target"},
    )
    stocked = next(p for p in products if p["stock"] > 0)
    order = call(
        "POST",
        deployed["orders"].url("orders"),
        {"user_id": user["id"], "items": [{"product_id": stocked["id"], "quantity": 1}]},
    )
    return {
        "product_id": [p["id"] for p in products],
        "user_id": [user["id"]],
        "order_id": [order["id"]],
    }


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(("path", "method"), OPERATIONS, ids=[f"{m} {p}" for p, m in OPERATIONS])
def test_every_route_answers_only_what_its_document_says(
    fuzz_schema: Any,
    deployed: DeployedSystem,
    existing_ids: dict[str, list[str]],
    path: str,
    method: str,
    mode: GenerationMode,
) -> None:
    # GIVEN generated requests for one operation, valid or invalid (a path id no URL can carry
    # as it is, empty, "." or "..", is left out); about half the valid ones name ids that exist
    operation = fuzz_schema[path][method]
    base_url = (deployed[OWNER[path]].api_url or "").rstrip("/")

    @given(
        case=operation.as_strategy(generation_mode=mode),
        existing=st.booleans(),
        pick=st.integers(min_value=0, max_value=99),
    )
    @settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def send(case: Any, existing: bool, pick: int) -> None:
        assume(all(routable(value) for value in (case.path_parameters or {}).values()))
        if existing and mode is GenerationMode.POSITIVE and case.path_parameters:
            for name in case.path_parameters:
                if name in existing_ids:
                    ids = existing_ids[name]
                    case.path_parameters[name] = ids[pick % len(ids)]
        # WHEN each is sent through API Gateway
        # THEN its answer is one the document lists for the operation, in the documented
        # shape and content type, never a 5xx; an invalid request is refused with a 4xx
        case.call_and_validate(base_url=base_url, checks=CHECKS, timeout=30)

    send()
