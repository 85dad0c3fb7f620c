"""API Gateway's own answers, in the services' one error shape.

A client of the REST APIs gets every refusal of a service as ``{"error": {"code", "message",
"field", "correlation_id"}}`` (:mod:`lambdamesh_toolkit.errors`, written by
:mod:`lambdamesh_toolkit.http_api`). Some answers never reach a service: API Gateway gives them
itself, as ``{"message": ...}``, with statuses of its own: ``403 Missing Authentication Token``
for a path or method no route matches, 413 for a body that is too large, 415, 429 when
throttled, 502 when the function crashes, 504 when it times out. A client would have to parse
two shapes, and read "not found" in a 403.

API Gateway lets an API replace the status, headers and body of each kind of these answers
(*gateway responses*); in the OpenAPI/Swagger document that is the
``x-amazon-apigateway-gateway-responses`` extension. Chalice cannot declare it, so deploy adds
:func:`gateway_responses` to the document of every app with a REST API
(:func:`lambdamesh.deploy.template.add_gateway_responses`). :data:`GATEWAY_ANSWERS` is the one
table of what each kind becomes; ``DEFAULT_4XX`` and ``DEFAULT_5XX`` cover every kind not named,
with the gateway's own status.

A body template is substituted by API Gateway, not run as VTL: only ``$context`` and
``$stageVariables`` values, pasted as they are. ``$context.error.messageString`` is the message
already as a JSON string literal (quotes included), ``$context.requestId`` the id API Gateway
gives the request (also in its ``x-amzn-RequestId`` header): the answer's correlation id, to quote
when reporting it. What a filled-in template looks like:

>>> template = gateway_responses()["DEFAULT_5XX"]["responseTemplates"][JSON]
>>> filled = template.replace("$context.error.messageString", '"Internal server error"')
>>> json.loads(filled.replace("$context.requestId", "r-1"))["error"]
{'code': 'bad_gateway', 'message': 'Internal server error', 'field': None, 'correlation_id': 'r-1'}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

EXTENSION: Final = "x-amazon-apigateway-gateway-responses"
"""Where an OpenAPI/Swagger document declares its API's gateway responses."""

JSON: Final = "application/json"

GATEWAY_MESSAGE: Final = "$context.error.messageString"
"""API Gateway's own message for the answer, as a JSON string literal."""

NO_ROUTE_MESSAGE: Final = '"no route matches $context.httpMethod $context.path"'
"""The message when no route matches: the method and the path (stage included) asked for."""

CORRELATION_ID: Final = "$context.requestId"
"""API Gateway's id of the request, the correlation id of an answer no service gave."""


@dataclass(frozen=True)
class GatewayAnswer:
    """What one kind of API Gateway's own answers becomes.

    Attributes
    ----------
    code : str
        The error code of the body.
    status : int | None
        The status answered; ``None`` keeps the gateway's own (``DEFAULT_4XX``/``DEFAULT_5XX``
        cover answers of several statuses).
    message : str
        The body's message: a JSON string literal once API Gateway has substituted it.
    """

    code: str
    status: int | None
    message: str = GATEWAY_MESSAGE


GATEWAY_ANSWERS: Final[Mapping[str, GatewayAnswer]] = MappingProxyType(
    {
        # No resource or no method matches: API Gateway says 403 "Missing Authentication Token".
        "MISSING_AUTHENTICATION_TOKEN": GatewayAnswer("not_found", 404, NO_ROUTE_MESSAGE),
        "UNSUPPORTED_MEDIA_TYPE": GatewayAnswer("unsupported_media_type", 415),
        "REQUEST_TOO_LARGE": GatewayAnswer("payload_too_large", 413),
        "THROTTLED": GatewayAnswer("throttled", 429),
        # An IAM-authorised route: a signature that is malformed, wrong or expired, or a signer
        # whose policies do not allow execute-api:Invoke on it.
        "INVALID_SIGNATURE": GatewayAnswer("forbidden", 403),
        "EXPIRED_TOKEN": GatewayAnswer("forbidden", 403),
        "ACCESS_DENIED": GatewayAnswer("forbidden", 403),
        # Every other 4xx (bad request body or parameters, access denied, quota, ...).
        "DEFAULT_4XX": GatewayAnswer("bad_request", None),
        # Every 5xx: 502 when the function crashes or answers nonsense, 504 on timeout, ...
        "DEFAULT_5XX": GatewayAnswer("bad_gateway", None),
    }
)
"""Response type (API Gateway's name) → what its answer becomes."""


def body_template(answer: GatewayAnswer) -> str:
    """The ``application/json`` body template of ``answer``: the services' error shape.

    >>> print(body_template(GatewayAnswer("throttled", 429)))  # doctest: +NORMALIZE_WHITESPACE
    {"error": {"code": "throttled", "message": $context.error.messageString, "field": null,
               "correlation_id": "$context.requestId"}}
    """
    return (
        f'{{"error": {{"code": {json.dumps(answer.code)}, "message": {answer.message}, '
        f'"field": null, "correlation_id": "{CORRELATION_ID}"}}}}'
    )


def gateway_response(answer: GatewayAnswer) -> dict[str, Any]:
    """One entry of :data:`EXTENSION`: status (when set), JSON content type, body template.

    >>> gateway_response(GATEWAY_ANSWERS["REQUEST_TOO_LARGE"])["statusCode"]
    '413'
    >>> gateway_response(GATEWAY_ANSWERS["REQUEST_TOO_LARGE"])["responseParameters"]
    {'gatewayresponse.header.Content-Type': "'application/json'"}
    >>> "statusCode" in gateway_response(GATEWAY_ANSWERS["DEFAULT_4XX"])
    False
    """
    response: dict[str, Any] = {
        # A header value in quotes is a literal; unquoted it would name a request value.
        "responseParameters": {"gatewayresponse.header.Content-Type": f"'{JSON}'"},
        "responseTemplates": {JSON: body_template(answer)},
    }
    if answer.status is not None:
        response["statusCode"] = str(answer.status)
    return response


def gateway_responses() -> dict[str, dict[str, Any]]:
    """The value of :data:`EXTENSION`: every answer of :data:`GATEWAY_ANSWERS` (a new dict).

    >>> sorted(gateway_responses())  # doctest: +NORMALIZE_WHITESPACE
    ['ACCESS_DENIED', 'DEFAULT_4XX', 'DEFAULT_5XX', 'EXPIRED_TOKEN', 'INVALID_SIGNATURE',
     'MISSING_AUTHENTICATION_TOKEN', 'REQUEST_TOO_LARGE', 'THROTTLED', 'UNSUPPORTED_MEDIA_TYPE']
    """
    return {kind: gateway_response(answer) for kind, answer in GATEWAY_ANSWERS.items()}
