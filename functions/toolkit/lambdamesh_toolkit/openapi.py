"""Each service's OpenAPI document, generated from its routes and their contracts.

A route declares what it takes and answers on :meth:`HttpApi.endpoint
<lambdamesh_toolkit.http_api.HttpApi.endpoint>` (body, query, headers, success statuses, error
statuses); its answer's model is its return annotation. :func:`openapi_document` walks a
Chalice app's routes and writes OpenAPI 3.1 (JSON Schema 2020-12, as pydantic emits it): every
body, query and answer a contract, every error the one shape :class:`ErrorBody`. Fuzzers
(``tests/e2e/test_fuzzing.py``) and clients read it; ``lambdamesh openapi`` writes it to files.

A route that requires IAM authorisation (Chalice's ``IAMAuthorizer``) declares it as API Gateway
documents it: the security scheme ``sigv4`` (:data:`SIGV4_SCHEME`: an ``apiKey`` in the
``Authorization`` header with ``x-amazon-apigateway-authtype: awsSigv4``) in
``components.securitySchemes``, named by the operation's ``security``, and a 403 among its
answers (API Gateway's refusal of a bad signature or of a caller the policy does not allow).
"""

from __future__ import annotations

import re
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalice.app import IAMAuthorizer
from pydantic import BaseModel, ConfigDict
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from lambdamesh_toolkit.contracts.base import IDENTIFIER_PATTERN
from lambdamesh_toolkit.correlation import CORRELATION_HEADER

if TYPE_CHECKING:
    from chalice.app import Chalice, RouteEntry

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
#: What each error status means, for the document's descriptions.
ERROR_MEANINGS: Mapping[int, str] = {
    400: "The request is malformed: the error names the field, parameter or header.",
    403: (
        "Refused by API Gateway (IAM authorisation): the signature is invalid or expired, or "
        "its signer may not call this route."
    ),
    404: "Nothing with this id.",
    409: "In conflict with what exists, or with a request still running.",
    413: "The body is larger than the API accepts.",
    415: "The body is not JSON.",
    422: "Well formed, but refused by a rule of the service: the error names the field.",
    500: "The service failed unexpectedly: quote the correlation id.",
    503: "A dependency cannot answer now: retry after Retry-After seconds.",
}
SIGV4_SCHEME_NAME = "sigv4"
"""The security scheme of routes that require IAM authorisation (Chalice's name for it)."""
SIGV4_SCHEME: Mapping[str, Any] = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "x-amazon-apigateway-authtype": "awsSigv4",
    "description": (
        "AWS Signature Version 4 (service execute-api) by a principal allowed execute-api:Invoke "
        "on the route: checked by API Gateway on AWS, not by the emulator."
    ),
}
"""IAM authorisation as API Gateway's OpenAPI extensions declare it."""


class ErrorDetail(BaseModel):
    """The ``error`` object of every error answer."""

    model_config = ConfigDict(extra="forbid", title="ErrorDetail")

    code: str
    message: str
    field: str | None = None
    correlation_id: str
    retry_after_s: float | None = None


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {...}}``."""

    model_config = ConfigDict(extra="forbid", title="ErrorBody")

    error: ErrorDetail


@dataclass(frozen=True)
class EndpointDoc:
    """What one route takes and answers, as :meth:`HttpApi.endpoint` records it.

    Attributes
    ----------
    answers : Mapping[int, type[BaseModel] | None]
        Success statuses and their bodies (``None``: no body).
    body : type[BaseModel] | None
        The request body's contract.
    query : type[BaseModel] | None
        The query string's model (its fields are the parameters).
    headers : tuple[str, ...]
        Optional request headers the route reads.
    errors : tuple[int, ...]
        Error statuses besides 400 and 500, which every route may answer.
    summary : str
        The first line of the handler's docstring.
    """

    answers: Mapping[int, type[BaseModel] | None]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: tuple[str, ...] = ()
    errors: tuple[int, ...] = ()
    summary: str = ""


def describe_endpoint(
    view: Callable[..., Any],
    *,
    status: int,
    answers: Mapping[int, type[BaseModel] | None] | None,
    body: type[BaseModel] | None,
    query: type[BaseModel] | None,
    headers: Iterable[str],
    errors: Iterable[int],
) -> EndpointDoc:
    """The :class:`EndpointDoc` of a handler (its answer model from its return annotation)."""
    if answers is None:
        returned = typing.get_type_hints(view).get("return")
        model = returned if isinstance(returned, type) and issubclass(returned, BaseModel) else None
        answers = {status: model}
    doc = (view.__doc__ or "").strip().splitlines()
    return EndpointDoc(
        answers=dict(answers),
        body=body,
        query=query,
        headers=tuple(headers),
        errors=tuple(sorted(set(errors))),
        summary=doc[0] if doc else view.__name__,
    )


def openapi_document(app: Chalice, *, title: str, version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route of ``app``.

    Raises
    ------
    ValueError
        When a route was not declared through ``HttpApi.endpoint`` (nothing to document).
    """
    routes: list[tuple[str, str, EndpointDoc]] = []
    secured: set[tuple[str, str]] = set()
    for path, methods in sorted(app.routes.items()):
        for method, entry in sorted(methods.items()):
            describe: Callable[[], EndpointDoc] | None = getattr(
                entry.view_function, ENDPOINT_DOC_ATTRIBUTE, None
            )
            if describe is None:
                raise ValueError(f"{method} {path} is not declared with HttpApi.endpoint")
            routes.append((path, method.lower(), describe()))
            if requires_iam(entry):
                secured.add((path, method.lower()))
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorBody, "serialization")}
    for _, _, doc in routes:
        if doc.body is not None:
            wanted.add((doc.body, "validation"))
        wanted.update((model, "serialization") for model in doc.answers.values() if model)
    found, definitions = models_json_schema(
        sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1])), ref_template=REF_TEMPLATE
    )
    refs: Refs = {
        (model, mode): ref
        for (model, mode), ref in found.items()
        if isinstance(model, type) and issubclass(model, BaseModel)
    }
    paths: dict[str, dict[str, Any]] = {}
    for path, method, doc in routes:
        signed = (path, method) in secured
        paths.setdefault(path, {})[method] = _operation(path, doc, refs, signed=signed)
    components: dict[str, Any] = {"schemas": definitions.get("$defs", {})}
    if secured:
        components["securitySchemes"] = {SIGV4_SCHEME_NAME: dict(SIGV4_SCHEME)}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": components,
    }


def requires_iam(entry: RouteEntry) -> bool:
    """Whether a route requires IAM authorisation.

    Raises
    ------
    ValueError
        For an authorizer of another kind (a Lambda or Cognito authorizer): none is documented.
    """
    authorizer = entry.authorizer
    if authorizer is None:
        return False
    if not isinstance(authorizer, IAMAuthorizer):
        raise ValueError(
            f"{entry.method} {entry.uri_pattern}: {type(authorizer).__name__} is not documented"
        )
    return True


#: Where :meth:`HttpApi.endpoint` keeps, on the handler, what builds the route's
#: :class:`EndpointDoc`.
ENDPOINT_DOC_ATTRIBUTE = "lambdamesh_endpoint"

Refs = Mapping[tuple[type[BaseModel], JsonSchemaMode], Mapping[str, Any]]


def _operation(path: str, doc: EndpointDoc, refs: Refs, *, signed: bool) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": IDENTIFIER_PATTERN, "maxLength": 64},
        }
        for name in re.findall(r"\{(\w+)\}", path)
    ]
    if doc.query is not None:
        query_schema = doc.query.model_json_schema()
        required = set(query_schema.get("required", []))
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "schema": _without_null(schema),
            }
            for name, schema in query_schema.get("properties", {}).items()
        ]
    parameters += [
        {"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
        for name in (*doc.headers, CORRELATION_HEADER)
    ]
    responses: dict[str, Any] = {}
    for status, model in sorted(doc.answers.items()):
        answer: dict[str, Any] = {"description": "Success."}
        if model is not None:
            answer["content"] = _json(refs[(model, "serialization")])
        responses[str(status)] = answer
    for status in sorted({400, 500, *doc.errors, *([403] if signed else [])}):
        responses[str(status)] = {
            "description": ERROR_MEANINGS.get(status, "Refused."),
            "content": _json(refs[(ErrorBody, "serialization")]),
        }
    operation: dict[str, Any] = {"summary": doc.summary, "responses": responses}
    if signed:
        operation["security"] = [{SIGV4_SCHEME_NAME: []}]
    if parameters:
        operation["parameters"] = parameters
    if doc.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": _json(refs[(doc.body, "validation")]),
        }
    return operation


def _without_null(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without the ``null`` branch (a query string has no null)."""
    choices = schema.get("anyOf")
    if not isinstance(choices, list):
        return dict(schema)
    kept = [choice for choice in choices if choice.get("type") != "null"]
    rest = {key: value for key, value in schema.items() if key not in {"anyOf", "default"}}
    return {**rest, **kept[0]} if len(kept) == 1 else {**rest, "anyOf": kept}


def _json(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": dict(schema)}}
