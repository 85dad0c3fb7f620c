"""Helpers that keep Chalice route handlers thin.

A handler does three things: parse the body into a contract, call the
domain, return a contract. ``functions/users/app.py`` is the example: it builds
``api = HttpApi(app, logger)`` once, and its ``create_user`` route, decorated with
``@api.endpoint(status=201)`` under ``@app.route``, parses ``api.parse_body(CreateUser)``
and returns the registered ``User``. This module does the rest:

* the correlation id is read from ``X-Correlation-Id`` (or started) and bound
  to the logger, with the Lambda request id, before the handler runs;
* the request is an ``api`` hop (:mod:`lambdamesh_toolkit.hops`): the caller's ``traceparent``
  header is its parent (or it starts a trace), and its record gives the answer's status and
  ``signed``: whether the request carried a Signature Version 4 ``Authorization`` header (what
  a route requiring IAM authorisation is called with; API Gateway checks it on AWS, the
  emulator does not; the header's value is never logged);
* the request's deadline starts (``REQUEST_DEADLINE_S``, or the caller's
  ``X-Request-Deadline`` when earlier: :mod:`lambdamesh_toolkit.deadline`; a malformed or
  passed one is a 400 naming the header);
* a body that is not JSON or breaks the contract answers 400 naming the field;
* a :class:`~lambdamesh_toolkit.errors.ServiceError` answers its status with
  the JSON error body (``Retry-After`` for 503);
* anything else a handler raises answers a JSON 500 that says nothing of the cause and is
  logged with its traceback;
* every error body carries the correlation id, to quote when reporting it;
* every answer carries ``X-Correlation-Id``.
"""

from __future__ import annotations

import functools
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from chalice.app import Chalice, Request, Response
from pydantic import BaseModel, ValidationError

from lambdamesh_toolkit.aws.signing import is_sigv4_authorization
from lambdamesh_toolkit.contracts.base import IDENTIFIER_PATTERN
from lambdamesh_toolkit.correlation import (
    CORRELATION_HEADER,
    correlation_from_http_headers,
    current_correlation_id,
    header_of,
    use_correlation_id,
)
from lambdamesh_toolkit.deadline import (
    DEADLINE_HEADER,
    begin_deadline,
    configured_budget_s,
    current_deadline,
    deadline_from_header,
    use_deadline,
)
from lambdamesh_toolkit.errors import InvalidRequest, NotFound, ServiceError, invalid_request_from
from lambdamesh_toolkit.faults import refuse_if_unavailable
from lambdamesh_toolkit.hops import API, inbound_hop
from lambdamesh_toolkit.logging import bind_invocation
from lambdamesh_toolkit.openapi import ENDPOINT_DOC_ATTRIBUTE, describe_endpoint
from lambdamesh_toolkit.trace_context import TRACEPARENT

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

JSON_CONTENT_TYPE = "application/json"
AUTHORIZATION_HEADER = "Authorization"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
#: What Chalice reads of an API Gateway proxy event (values may be null, keys must be there).
PROXY_EVENT_KEYS = (
    "headers",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "body",
)
#: Answer bodies a handler may return besides a ``Response``.
Answer = BaseModel | Mapping[str, Any] | list[Any] | None


def parse_body[ModelT: BaseModel](request: Request, model_type: type[ModelT]) -> ModelT:
    """Validate the request body as ``model_type``.

    Parameters
    ----------
    request : chalice.app.Request
        The current request.
    model_type : type[BaseModel]
        The contract of the body.

    Returns
    -------
    BaseModel
        The validated body.

    Raises
    ------
    InvalidRequest
        Empty body, invalid JSON (``field="body"``), or a contract violation
        naming the first field at fault (``items[0].quantity``).
    """
    raw = request.raw_body
    if not raw:
        raise InvalidRequest("body", "a JSON body is required")
    try:
        return model_type.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid_request_from(exc) from None


def json_response(
    body: Answer, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """Build a JSON ``Response`` carrying the correlation id.

    Parameters
    ----------
    body : BaseModel | Mapping | list | None
        A contract (serialised with its aliases and JSON types), plain JSON
        data, or ``None`` for an empty body (e.g. 204).
    status : int
        HTTP status.
    headers : Mapping[str, str] | None
        Extra headers.
    """
    if body is None:
        text = ""
    elif isinstance(body, BaseModel):
        text = body.model_dump_json()
    else:
        text = json.dumps(body, separators=(",", ":"))
    all_headers: dict[str, str | list[str]] = {
        CORRELATION_HEADER: current_correlation_id(),
        **(headers or {}),
    }
    if text:
        all_headers["Content-Type"] = JSON_CONTENT_TYPE
    return Response(body=text, headers=all_headers, status_code=status)


def error_response(error: ServiceError) -> Response:
    """Answer a ``ServiceError``: its status, JSON body (with the correlation id) and headers."""
    body = error.to_body()
    body["error"]["correlation_id"] = current_correlation_id()
    return json_response(body, status=error.status, headers=error.headers())


UNEXPECTED_ERROR_MESSAGE = (
    "the service failed unexpectedly; nothing more is said here, the logs have it under "
    "this correlation id"
)


def begin_request(request: Request | None, logger: Logger | None = None) -> str:
    """Adopt the caller's correlation id (or start one), start the deadline, bind the logger.

    Returns
    -------
    str
        The correlation id of this request.
    """
    headers = request.headers if request is not None else None
    correlation_id = use_correlation_id(correlation_from_http_headers(headers))
    begin_deadline(configured_budget_s(), inherited=None)
    if logger is not None:
        bind_invocation(logger, correlation_id, _request_id(request))
    return correlation_id


def adopt_callers_deadline(headers: Mapping[str, str] | None) -> None:
    """Keep the caller's ``X-Request-Deadline`` when it is earlier than this service's own.

    Raises
    ------
    InvalidRequest
        Naming the header when it is not epoch milliseconds, or when it has passed already:
        nobody waits for the answer any more.
    """
    raw = header_of(headers, DEADLINE_HEADER)
    if raw is None:
        return
    deadline = deadline_from_header(raw)
    if deadline is None:
        raise InvalidRequest(DEADLINE_HEADER, "must be epoch milliseconds (1 to 15 digits)")
    if deadline <= time.time():
        raise InvalidRequest(DEADLINE_HEADER, "has passed: nobody is waiting for this answer")
    current = current_deadline()
    use_deadline(deadline if current is None else min(current, deadline))


def _request_id(request: Request | None) -> str | None:
    if request is None:
        return None
    lambda_request_id = getattr(request.lambda_context, "aws_request_id", None)
    if isinstance(lambda_request_id, str):
        return lambda_request_id
    api_request_id = request.context.get("requestId")
    return api_request_id if isinstance(api_request_id, str) else None


class HttpApi:
    """The request plumbing of one Chalice app.

    Parameters
    ----------
    app : chalice.Chalice
        The app (its ``current_request`` is read per call).
    logger : aws_lambda_powertools.Logger | None
        Bound to each request's ids; logs refused requests.
    """

    def __init__(self, app: Chalice, logger: Logger | None = None) -> None:
        self.app = app
        self.logger = logger

    @property
    def request(self) -> Request:
        """The request being served."""
        request = self.app.current_request
        if request is None:
            raise RuntimeError("no current request: HttpApi used outside a route handler")
        return request

    def parse_body[ModelT: BaseModel](self, model_type: type[ModelT]) -> ModelT:
        """Validate the current request's body as ``model_type`` (see :func:`parse_body`)."""
        return parse_body(self.request, model_type)

    def endpoint[**P](
        self,
        *,
        status: int = 200,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        headers: Iterable[str] = (),
        answers: Mapping[int, type[BaseModel] | None] | None = None,
        errors: Iterable[int] = (),
    ) -> Callable[[Callable[P, Answer | Response]], Callable[P, Response]]:
        """Wrap a route handler: correlation, deadline, path checks, errors, JSON answer.

        The other parameters document the route (:mod:`lambdamesh_toolkit.openapi`); a path
        parameter is checked to be an identifier (400 naming it) before the handler runs.

        Parameters
        ----------
        status : int
            Status of a successful answer that is not already a ``Response``.
        body, query : type[BaseModel] | None
            The contracts of the request body and of the query string.
        headers : Iterable[str]
            Optional request headers the handler reads.
        answers : Mapping[int, type[BaseModel] | None] | None
            Success statuses and their bodies; default ``{status: <return annotation>}``.
        errors : Iterable[int]
            Error statuses the handler answers besides 400 and 500.
        """

        def decorate(view: Callable[P, Answer | Response]) -> Callable[P, Response]:
            @functools.wraps(view)
            def handle(*args: P.args, **kwargs: P.kwargs) -> Response:
                request = self.app.current_request
                begin_request(request, self.logger)
                sent = request.headers if request is not None else None
                with inbound_hop(
                    API,
                    route_of(request),
                    header_of(sent, TRACEPARENT),
                    logger=self.logger,
                    signed=is_sigv4_authorization(header_of(sent, AUTHORIZATION_HEADER)),
                ) as served:
                    response = self._answer(lambda: view(*args, **kwargs), sent, kwargs, status)
                    served.answered(response.status_code)
                    return response

            # Described when a document is asked for, not at every cold start.
            describe = functools.partial(
                describe_endpoint,
                view,
                status=status,
                answers=answers,
                body=body,
                query=query,
                headers=headers,
                errors=errors,
            )
            setattr(handle, ENDPOINT_DOC_ATTRIBUTE, describe)
            return handle

        return decorate

    def _answer(
        self,
        view: Callable[[], Answer | Response],
        headers: Mapping[str, str] | None,
        path_parameters: Mapping[str, object],
        status: int,
    ) -> Response:
        """Run a route's handler with the checks before it; its answer, or its error's."""
        try:
            refuse_if_unavailable()
            adopt_callers_deadline(headers)
            check_path_parameters(path_parameters)
            answer = view()
        except ServiceError as exc:
            self._log_refusal(exc)
            return error_response(exc)
        except Exception:
            # Whatever else went wrong is ours: the caller learns only that, and the
            # correlation id that finds the traceback in the logs.
            if self.logger is not None:
                self.logger.exception("request failed unexpectedly")
            return error_response(ServiceError(UNEXPECTED_ERROR_MESSAGE))
        if isinstance(answer, Response):
            answer.headers.setdefault(CORRELATION_HEADER, current_correlation_id())
            return answer
        return json_response(answer, status=status)

    def _log_refusal(self, exc: ServiceError) -> None:
        if self.logger is None:
            return
        # 5xx are our failures (a dependency is down), 4xx the caller's.
        log = self.logger.warning if exc.status >= 500 else self.logger.info
        log(
            "request refused",
            extra={"status": exc.status, "error_code": exc.code, "field": exc.field},
        )


def route_of(request: Request | None) -> str:
    """What an ``api`` hop entered: the method and the route's path, ``POST /orders/{order_id}``
    (the template, not the ids).

    >>> from types import SimpleNamespace
    >>> route_of(SimpleNamespace(method="GET", path="/users/{user_id}"))
    'GET /users/{user_id}'
    """
    if request is None:
        return "?"
    return f"{request.method} {request.path}"


def check_path_parameters(parameters: Mapping[str, object]) -> None:
    """Check that every path parameter is an identifier (what every id of the system is).

    An id no resource can have names nothing: 404, as for an id that is well formed but
    unknown, without a lookup (which a key too long for DynamoDB would turn into a crash).

    Raises
    ------
    NotFound
        For the first parameter that is not an identifier.
    """
    for name, value in parameters.items():
        if not isinstance(value, str) or len(value) > 64 or not _IDENTIFIER.fullmatch(value):
            raise NotFound(name.removesuffix("_id"), str(value)[:64], field=name)


class NotAnApiRequestError(ValueError):
    """An API function was invoked with something that is not an API Gateway proxy event.

    API Gateway never sends one; a direct ``Invoke`` with another payload gets this error, naming
    what is missing, instead of a ``KeyError`` from deep inside Chalice.
    """


def proxy_event_problem(event: Any) -> str | None:
    """What keeps ``event`` from being an API Gateway REST proxy event; ``None`` if nothing.

    >>> proxy_event_problem({"orders": []})
    'not an API Gateway proxy event: requestContext.resourcePath is missing'
    """
    if not isinstance(event, Mapping):
        return "not an API Gateway proxy event: the payload is not a JSON object"
    context = event.get("requestContext")
    for name in ("resourcePath", "httpMethod"):
        if not isinstance(context, Mapping) or not isinstance(context.get(name), str):
            return f"not an API Gateway proxy event: requestContext.{name} is missing"
    missing = [name for name in PROXY_EVENT_KEYS if name not in event]
    if missing:
        return f"not an API Gateway proxy event: {', '.join(missing)} missing"
    return None


CHALICE_ERROR_CODES: Mapping[str, str] = {
    "MethodNotAllowedError": "method_not_allowed",
    "UnsupportedMediaType": "unsupported_media_type",
    "BadRequest": "invalid_request",
    "BadRequestError": "invalid_request",
    "NotFoundError": "not_found",
    "InternalServerError": "internal_error",
}
"""Chalice's own error codes (``{"Code", "Message"}`` bodies) → the services' codes."""


def in_error_shape(answer: dict[str, Any], headers: Mapping[str, str] | None) -> dict[str, Any]:
    """A proxy answer Chalice refused by itself, rewritten in the services' error shape.

    Chalice answers a method the path has not got (405, under ``chalice local``), a body that is
    not JSON (415) and a few more before any handler runs, as ``{"Code", "Message"}``; every
    other answer, and anything not in that shape, is returned as it is.

    >>> chalice = {"statusCode": 415, "headers": {"Content-Type": "application/json"},
    ...            "body": '{"Code":"UnsupportedMediaType","Message":"Unsupported media type"}'}
    >>> answer = in_error_shape(chalice, {"X-Correlation-Id": "c-1"})
    >>> answer["statusCode"], json.loads(answer["body"])["error"]["code"]
    (415, 'unsupported_media_type')
    >>> answer["headers"]["X-Correlation-Id"], json.loads(answer["body"])["error"]["correlation_id"]
    ('c-1', 'c-1')
    >>> in_error_shape({"statusCode": 200, "body": '{"Code": "x", "Message": "y"}'}, None)["body"]
    '{"Code": "x", "Message": "y"}'
    """
    status = answer.get("statusCode")
    body = answer.get("body")
    if not isinstance(status, int) or status < 400 or not isinstance(body, str):
        return answer
    try:
        refusal = json.loads(body)
    except ValueError:
        return answer
    if not isinstance(refusal, dict) or set(refusal) != {"Code", "Message"}:
        return answer
    code = str(refusal["Code"])
    correlation_id = use_correlation_id(correlation_from_http_headers(headers))
    error = {
        "code": CHALICE_ERROR_CODES.get(code, re.sub(r"(?<!^)(?=[A-Z])", "_", code).lower()),
        "message": str(refusal["Message"]),
        "field": None,
        "correlation_id": correlation_id,
    }
    return {
        **answer,
        "headers": {
            **(answer.get("headers") or {}),
            "Content-Type": JSON_CONTENT_TYPE,
            CORRELATION_HEADER: correlation_id,
        },
        "body": json.dumps({"error": error}, separators=(",", ":")),
    }


class ApiApp(Chalice):
    """A Chalice app whose API entry point answers every refusal in the services' error shape.

    Use it instead of ``Chalice`` in a service with routes: invoked directly with another
    payload, the function answers :class:`NotAnApiRequestError` naming what is missing; what
    Chalice refuses before any handler runs (405, 415) is rewritten by :func:`in_error_shape`.
    """

    def __call__(self, event: Any, context: Any) -> dict[str, Any]:
        """Serve one API Gateway proxy event (Chalice's own entry point)."""
        problem = proxy_event_problem(event)
        if problem is not None:
            raise NotAnApiRequestError(problem)
        answer: dict[str, Any] = super().__call__(event, context)
        return in_error_shape(answer, event.get("headers"))
