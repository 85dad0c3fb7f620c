"""Typed service errors, shared by the HTTP handlers and the RPC server alike.

A handler raises one of these; the edge (``http_api`` for API Gateway, ``rpc``
for Lambda invocation) turns it into the wire form, and the clients turn the
wire form back into the same class. The wire body is the ``error`` object of
:meth:`ServiceError.to_body`: a code, a message and the field at fault (``None``
when the error is about the whole request):

>>> NotFound("order", "o-1").to_body()
{'error': {'code': 'not_found', 'message': "order 'o-1' not found", 'field': None}}
>>> InvalidRequest("items[0].quantity", "must be positive").to_body()["error"]["field"]
'items[0].quantity'

``DependencyUnavailable`` adds ``retry_after_s`` when it is known, and the
clients rebuild the class from the wire with :func:`error_from_wire`:

>>> DependencyUnavailable("users-api", 2.5).to_body()["error"]["retry_after_s"]
2.5
>>> error_from_wire("conflict", "email taken", "email", dependency="users-api")
Conflict(code='conflict', message='email taken', field='email')
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pydantic import ValidationError


class ServiceError(Exception):
    """Base of every error a service answers with on purpose.

    Parameters
    ----------
    message : str
        Human-readable explanation, safe to show to the caller.
    field : str | None
        The request field at fault (dotted path, e.g. ``items[0].quantity``).

    Attributes
    ----------
    code : str
        Stable machine-readable code; the RPC envelope and HTTP body carry it.
    status : int
        HTTP status the error maps to.
    """

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_body(self) -> dict[str, Any]:
        """Return the JSON error body naming the code, message and field."""
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}

    def headers(self) -> dict[str, str]:
        """Return extra HTTP headers the error answer must carry."""
        return {}

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, message={self.message!r}, field={self.field!r})"


class InvalidRequest(ServiceError):  # noqa: N818 - an HTTP status name, not a bug
    """The request is malformed: bad JSON, a missing or ill-typed field (400)."""

    code: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message, field=field)


class NotFound(ServiceError):  # noqa: N818
    """The addressed resource does not exist (404).

    Parameters
    ----------
    resource : str
        Kind of resource, e.g. ``"product"``.
    id : str
        The identifier that was looked up.
    """

    code: ClassVar[str] = "not_found"
    status: ClassVar[int] = 404

    def __init__(
        self, resource: str, id: str, *, message: str | None = None, field: str | None = None
    ) -> None:
        super().__init__(message or f"{resource} {id!r} not found", field=field)
        self.resource = resource
        self.id = id


class Unprocessable(ServiceError):  # noqa: N818
    """The request is well-formed but breaks a business rule (422)."""

    code: ClassVar[str] = "unprocessable"
    status: ClassVar[int] = 422

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message, field=field)


class Conflict(ServiceError):  # noqa: N818
    """The request conflicts with the current state, e.g. a duplicate (409)."""

    code: ClassVar[str] = "conflict"
    status: ClassVar[int] = 409

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message, field=field)


class DependencyUnavailable(ServiceError):  # noqa: N818
    """A service this one depends on cannot answer now (503 + ``Retry-After``).

    Parameters
    ----------
    dependency : str
        Name of the dependency, e.g. ``"users-api"``.
    retry_after_s : float | None
        When the caller may try again, if known (the breaker's remaining
        recovery time, or the dependency's own ``Retry-After``).
    reason : str | None
        What went wrong (timeout, circuit open, ...); goes into the message.
    """

    code: ClassVar[str] = "dependency_unavailable"
    status: ClassVar[int] = 503

    def __init__(
        self,
        dependency: str,
        retry_after_s: float | None = None,
        *,
        reason: str | None = None,
    ) -> None:
        message = f"dependency {dependency!r} is unavailable"
        if reason:
            message = f"{message}: {reason}"
        super().__init__(message)
        self.dependency = dependency
        self.retry_after_s = retry_after_s
        self.reason = reason

    def headers(self) -> dict[str, str]:
        """Return ``Retry-After`` in whole seconds (at least 1) when known."""
        if self.retry_after_s is None:
            return {}
        return retry_after_header(self.retry_after_s)

    def to_body(self) -> dict[str, Any]:
        """Return the error body, with ``retry_after_s`` when known."""
        body = super().to_body()
        if self.retry_after_s is not None:
            body["error"]["retry_after_s"] = self.retry_after_s
        return body


def retry_after_header(seconds: float) -> dict[str, str]:
    """``Retry-After`` for a wait of ``seconds``: whole seconds, rounded up, at least 1.

    >>> retry_after_header(2.01), retry_after_header(0.2)
    ({'Retry-After': '3'}, {'Retry-After': '1'})
    """
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


_BY_CODE: dict[str, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        ServiceError,
        InvalidRequest,
        NotFound,
        Unprocessable,
        Conflict,
        DependencyUnavailable,
    )
}


def error_from_wire(
    code: str,
    message: str,
    field: str | None = None,
    *,
    dependency: str,
    retry_after_s: float | None = None,
) -> ServiceError:
    """Rebuild the typed error a dependency answered with.

    Parameters
    ----------
    code, message, field : str, str, str | None
        The ``error`` object of the wire body.
    dependency : str
        Name of the dependency that answered; a ``dependency_unavailable`` or an
        unknown code becomes ``DependencyUnavailable(dependency)`` because, from
        the caller's side, that dependency could not do its job.
    retry_after_s : float | None
        The dependency's own hint, kept on ``DependencyUnavailable``.

    Returns
    -------
    ServiceError
        An instance of the class registered for ``code``.
    """
    cls = _BY_CODE.get(code)
    if cls is InvalidRequest:
        return InvalidRequest(field, message)
    if cls is Unprocessable:
        return Unprocessable(field, message)
    if cls is Conflict:
        return Conflict(message, field=field)
    if cls is NotFound:
        # The wire form has no separate resource/id: the message says both,
        # the field names the lookup key when the server set it.
        return NotFound("resource", "", message=message, field=field)
    return DependencyUnavailable(dependency, retry_after_s, reason=f"{code}: {message}")


def field_path(loc: Sequence[int | str]) -> str | None:
    """Render a pydantic error location as a field path: ``items[0].quantity``.

    Returns ``None`` for an empty location (the error is about the whole body).
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or None


def invalid_request_from(exc: ValidationError, *, prefix: str | None = None) -> InvalidRequest:
    """Turn a pydantic ``ValidationError`` into ``InvalidRequest`` naming the field.

    The first error names the field; the message says how many more there are,
    so the answer stays short while the caller still learns everything is not
    fixed by one edit.

    Parameters
    ----------
    exc : pydantic.ValidationError
        The validation failure.
    prefix : str | None
        Field path to put in front (e.g. ``"payload"``).
    """
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return InvalidRequest(prefix or "body", f"body is not valid JSON: {first['msg']}")
    field = field_path([*([prefix] if prefix else []), *first["loc"]])
    message = first["msg"]
    if len(errors) > 1:
        message = f"{message} (and {len(errors) - 1} more error(s))"
    return InvalidRequest(field or prefix or "body", message)
