"""IAM authorisation on API Gateway routes: imported as on AWS, and checked as on AWS.

In an OpenAPI (or Swagger) document imported into API Gateway, a security scheme with
``x-amazon-apigateway-authtype: awsSigv4`` (``type: apiKey``, ``name: Authorization``,
``in: header``) means IAM authorisation: every method whose ``security`` names it (or, without
its own, the document's) becomes ``authorizationType: AWS_IAM``, and API Gateway answers it only
to a request signed with Signature Version 4 by a principal allowed ``execute-api:Invoke`` on
the method's ARN. LocalStack 4.14.0's open-source edition does neither: its import
(``helpers.import_api_from_openapi_spec``) turns a scheme into a method's authorisation only
through an ``x-amazon-apigateway-authorizer``, which IAM has none of, so the method stays
``NONE``, and nothing checks a signature.

:func:`apply_iam_authorization`, an ``on_infra_start`` hook, mends both:

* the import, as the provider calls it, is wrapped: each method :func:`iam_methods` finds in the
  document is made ``AWS_IAM`` afterwards;
* a handler joins the REST API gateway's ``preprocess_request`` handlers (LocalStack's own place
  for extending an invocation), after the route is found: for an ``AWS_IAM`` method,
  :func:`authorize` answers a request without ``Authorization`` as API Gateway does
  (``MISSING_AUTHENTICATION_TOKEN``), one that is no SigV4 signature, is not for
  ``execute-api`` or does not match the request (:func:`signature_matches`, botocore's
  ``SigV4Auth`` recomputed with the signer's secret) with ``INVALID_SIGNATURE``, and one whose
  signer's role does not allow ``execute-api:Invoke`` on the method's ARN with
  ``ACCESS_DENIED`` (the role's policies evaluated as the permission audit evaluates them, and
  the decision recorded there too).

A request signed with credentials that are no assumed role (LocalStack's ``test`` keys, which
act as the account itself) is let through unchecked: the emulator knows no secret to verify and
the account may do anything. Nor are a signature's age or its session's expiry checked.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)
from lambdamesh_localstack.permission_audit import (
    DECISIONS,
    Decision,
    Permission,
    allowed,
    assumed_role,
    role_documents,
)

LOG = logging.getLogger(__name__)

AUTHTYPE: Final = "x-amazon-apigateway-authtype"
AUTHORIZER: Final = "x-amazon-apigateway-authorizer"
SIGV4: Final = "awssigv4"
"""The value of :data:`AUTHTYPE` (compared without case) that means IAM authorisation."""
ANY_METHOD: Final = "x-amazon-apigateway-any-method"
HTTP_METHODS: Final = frozenset({"get", "put", "post", "delete", "options", "head", "patch"})
AWS_IAM: Final = "AWS_IAM"
NONE: Final = "NONE"
PROVIDER_MODULE: Final = "localstack.services.apigateway.legacy.provider"
HANDLERS_MODULE: Final = "localstack.services.apigateway.next_gen.execute_api.handlers"
GATEWAY_RESPONSE_MODULE: Final = (
    "localstack.services.apigateway.next_gen.execute_api.gateway_response"
)
WHAT: Final = "IAM authorisation"
EXECUTE_API: Final = "execute-api"
INVOKE: Final = "execute-api:Invoke"

_SIGNATURE_PART = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]+)")


def _schemes(document: Mapping[str, Any]) -> Mapping[str, Any]:
    """Swagger 2.0's ``securityDefinitions`` or OpenAPI 3's ``components.securitySchemes``."""
    schemes: Mapping[str, Any] = document.get("securityDefinitions") or document.get(
        "components", {}
    ).get("securitySchemes", {})
    return schemes


def iam_methods(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """``(path, METHOD)`` of every method of the document that requires IAM authorisation.

    >>> sorted(iam_methods({
    ...     "securityDefinitions": {"sigv4": {"type": "apiKey", "name": "Authorization",
    ...         "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"}},
    ...     "paths": {"/users/{id}": {"get": {"security": [{"sigv4": []}]}},
    ...               "/users": {"post": {}, "x-amazon-apigateway-any-method": {
    ...                   "security": [{"sigv4": []}]}}},
    ... }))
    [('/users', 'ANY'), ('/users/{id}', 'GET')]
    """
    iam = {
        name
        for name, scheme in _schemes(document).items()
        if isinstance(scheme, Mapping)
        and str(scheme.get(AUTHTYPE, "")).lower() == SIGV4
        and AUTHORIZER not in scheme
    }
    default = document.get("security", [])
    found: set[tuple[str, str]] = set()
    for path, operations in (document.get("paths") or {}).items():
        for key, operation in (operations or {}).items():
            method = "ANY" if key == ANY_METHOD else key.upper()
            if (key != ANY_METHOD and key not in HTTP_METHODS) or not isinstance(
                operation, Mapping
            ):
                continue
            requirements = operation.get("security", default) or []
            if any(set(requirement) & iam for requirement in requirements):
                found.add((path, method))
    return found


def mark_iam_methods(rest_api: Any, document: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Make every method the document requires IAM for ``AWS_IAM``; the ones changed."""
    wanted = iam_methods(document)
    changed: list[tuple[str, str]] = []
    for resource in rest_api.resources.values():
        path = resource.get_path()
        for method_name, method in resource.resource_methods.items():
            if (path, method_name) in wanted and method.authorization_type == NONE:
                method.authorization_type = AWS_IAM
                changed.append((path, method_name))
    return sorted(changed)


def importing_iam_authorization(
    import_api: Callable[..., tuple[Any, list[str]]],
) -> Callable[..., tuple[Any, list[str]]]:
    """Wrap ``import_api_from_openapi_spec`` so that IAM-authorised methods come out ``AWS_IAM``."""

    def wrapped(
        rest_api: Any, context: Any, open_api_spec: dict[str, Any], mode: str
    ) -> tuple[Any, list[str]]:
        result = import_api(rest_api, context=context, open_api_spec=open_api_spec, mode=mode)
        changed = mark_iam_methods(result[0] if result else rest_api, open_api_spec)
        if changed:
            LOG.debug("API %s: %s require AWS_IAM", rest_api.id, changed)
        return result

    wrapped.__wrapped__ = import_api  # type: ignore[attr-defined]
    return wrapped


class RefusalError(Exception):
    """Why API Gateway refuses a request to an ``AWS_IAM`` method, and its response type."""

    def __init__(self, response_type: str, message: str) -> None:
        super().__init__(message)
        self.response_type = response_type
        self.message = message


def signature_parts(authorization: str) -> dict[str, str] | None:
    """``Credential``, ``SignedHeaders`` and ``Signature`` of a SigV4 header (``None``: not one).

    >>> signature_parts("AWS4-HMAC-SHA256 Credential=K/20261203/r/execute-api/aws4_request, "
    ...                 "SignedHeaders=host;x-amz-date, Signature=ab12")["SignedHeaders"]
    'host;x-amz-date'
    >>> signature_parts("Bearer abc") is None
    True
    """
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return None
    parts = dict(_SIGNATURE_PART.findall(authorization))
    return parts if len(parts) == 3 else None


def signature_matches(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    secret_key: str,
    session_token: str | None,
) -> bool:
    """Whether the request's SigV4 signature is the one its signer's secret gives.

    botocore's ``SigV4Auth`` recomputes it over what the ``Authorization`` header says was
    signed: the method, the URL's path and query, the body and the ``SignedHeaders``, at the
    request's own ``X-Amz-Date``, for the credential scope's region and service.
    """
    from botocore.auth import SigV4Auth  # type: ignore[import-untyped,unused-ignore]
    from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped,unused-ignore]
    from botocore.credentials import Credentials  # type: ignore[import-untyped,unused-ignore]

    lowered = {name.lower(): value for name, value in headers.items()}
    parts = signature_parts(lowered.get("authorization", ""))
    if parts is None:
        return False
    key, _, region, service, _ = (parts["Credential"].split("/") + [""] * 5)[:5]
    signed = parts["SignedHeaders"].split(";")
    if any(name not in lowered for name in signed) or "x-amz-date" not in lowered:
        return False
    request = AWSRequest(
        method=method, url=url, data=body, headers={name: lowered[name] for name in signed}
    )
    request.context["timestamp"] = lowered["x-amz-date"]
    signer = SigV4Auth(Credentials(key, secret_key, session_token), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    return hmac.compare_digest(expected, parts["Signature"])


def method_arn(region: str, account: str, api_id: str, stage: str, method: str, path: str) -> str:
    """The ARN ``execute-api:Invoke`` is checked on: the API, stage, method and path requested.

    >>> method_arn("us-east-1", "1", "abc", "api", "GET", "/users/u-1")
    'arn:aws:execute-api:us-east-1:1:abc/api/GET/users/u-1'
    """
    return f"arn:aws:execute-api:{region}:{account}:{api_id}/{stage}/{method}{path}"


def authorize(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    resource: str,
    account: str,
) -> None:
    """Check a request to an ``AWS_IAM`` method as API Gateway does.

    Raises
    ------
    RefusalError
        ``MISSING_AUTHENTICATION_TOKEN`` without an ``Authorization`` header,
        ``INVALID_SIGNATURE`` for one that is no SigV4 signature for ``execute-api`` or does not
        match, ``ACCESS_DENIED`` when the signer's role does not allow ``execute-api:Invoke`` on
        ``resource``.
    """
    authorization = next((v for k, v in headers.items() if k.lower() == "authorization"), "")
    if not authorization:
        raise RefusalError("MISSING_AUTHENTICATION_TOKEN", "Missing Authentication Token")
    parts = signature_parts(authorization)
    scope = parts["Credential"].split("/") if parts is not None else []
    if scope[3:4] != [EXECUTE_API]:
        raise RefusalError(
            "INVALID_SIGNATURE",
            "Authorization header requires a Signature Version 4 signature for execute-api",
        )
    caller = assumed_role(scope[0], account)
    if caller is None:
        return  # the account's own credentials: nothing to verify them with, everything allowed
    if not signature_matches(
        method,
        url,
        headers,
        body,
        secret_key=caller.secret_access_key,
        session_token=caller.session_token,
    ):
        raise RefusalError(
            "INVALID_SIGNATURE",
            "The request signature we calculated does not match the signature you provided.",
        )
    documents = role_documents(caller.account, caller.role_name) or []
    permission = Permission(INVOKE, resource)
    granted = allowed(documents, permission)
    DECISIONS.add(Decision(caller.role_name, caller.session, INVOKE, resource, granted))
    if not granted:
        raise RefusalError(
            "ACCESS_DENIED",
            f"User: arn:aws:sts::{caller.account}:assumed-role/{caller.role_name}/"
            f"{caller.session} is not authorized to perform: {INVOKE} on resource: {resource}",
        )


def _request_url(request: Any) -> str:
    """The URL the client sent (and signed): its ``Host`` and raw path and query."""
    raw = request.environ.get("RAW_URI") or request.full_path
    if raw.startswith(("http://", "https://")):
        return str(raw)
    return f"{request.scheme}://{request.host}{raw}"


def checking_iam_methods(refusals: Mapping[str, Callable[[str], Exception]]) -> Callable[..., None]:
    """The gateway handler: :func:`authorize` for every ``AWS_IAM`` method.

    ``refusals`` maps a response type to LocalStack's gateway exception of that type.
    """

    def check(chain: Any, context: Any, response: Any) -> None:
        method = context.resource_method or {}
        if method.get("authorizationType") != AWS_IAM:
            return
        request = context.invocation_request
        try:
            authorize(
                method=request["http_method"],
                url=_request_url(context.request),
                headers=dict(request["headers"].items()),
                body=request.get("body") or b"",
                resource=method_arn(
                    context.region,
                    context.account_id,
                    context.api_id,
                    context.stage,
                    request["http_method"],
                    request["path"],
                ),
                account=context.account_id,
            )
        except RefusalError as refusal_error:
            raise refusals[refusal_error.response_type](refusal_error.message) from None

    return check


def patch_gateway_handlers(module: ModuleType) -> None:
    """Add the check to the gateway's ``preprocess_request`` handlers (idempotent)."""
    from localstack.services.apigateway.next_gen.execute_api import (  # type: ignore[import-not-found,unused-ignore]
        gateway_response,
    )

    composite = getattr(module, "preprocess_request", None)
    if composite is None or any(
        getattr(handler, "__name__", "") == "check_iam_methods" for handler in composite.handlers
    ):
        return
    check = checking_iam_methods(
        {
            "MISSING_AUTHENTICATION_TOKEN": gateway_response.MissingAuthTokenError,
            "INVALID_SIGNATURE": gateway_response.InvalidSignatureError,
            "ACCESS_DENIED": gateway_response.AccessDeniedError,
        }
    )
    check.__name__ = "check_iam_methods"
    composite.append(check)


def patch_openapi_import(module: ModuleType) -> None:
    """Make the provider's OpenAPI import keep IAM authorisation (idempotent)."""
    # The provider calls the name from its module's globals: replaced there.
    wrap_once(module, "import_api_from_openapi_spec", importing_iam_authorization, WHAT)


def apply_iam_authorization() -> None:
    """Patch the OpenAPI import as its module is imported (``on_infra_start`` hook)."""
    patch_when_imported(
        {PROVIDER_MODULE: patch_openapi_import, HANDLERS_MODULE: patch_gateway_handlers}, WHAT
    )


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_iam_authorization")(apply_iam_authorization)
