"""An API's gateway responses answer with their own body and headers, as they do on AWS.

API Gateway answers some requests itself: no route matches (``MISSING_AUTHENTICATION_TOKEN``),
the body is too large, the function crashed (``DEFAULT_5XX``) ... An API's *gateway responses*
(``PutGatewayResponse``, or ``x-amazon-apigateway-gateway-responses`` in the OpenAPI document it
is imported from) replace those answers. On AWS the response for the answer's type (else the
API's ``DEFAULT_4XX``/``DEFAULT_5XX``) gives the status, its ``responseTemplates`` the body (the
template of the media type the request accepts, ``application/json`` by default, with
``$context`` values substituted, ``$context.error.messageString`` being the message as a JSON
string literal) and its ``responseParameters`` the headers (``gatewayresponse.header.X``: a
quoted literal, or a value of the request).

LocalStack 4.14.0 falls short twice:

* importing an OpenAPI document (``ImportRestApi``, ``PutRestApi``, hence CloudFormation's
  ``AWS::ApiGateway::RestApi`` ``Body`` and SAM's ``DefinitionBody``) ignores the extension:
  ``helpers.import_api_from_openapi_spec`` never reads it, so the API has no gateway response;
* answering, ``GatewayExceptionHandler.create_exception_response`` takes the configured
  ``statusCode`` but writes its own ``{"message": ...}`` body and headers (the TODOs of
  ``_build_response_content`` and ``_build_response_headers``), and sets
  ``$context.error.messageString`` to the bare message.

:func:`apply_gateway_responses`, an ``on_infra_start`` hook, mends both. The import, as the
provider calls it (``legacy.provider.import_api_from_openapi_spec``), also stores the document's
gateway responses on the API (:func:`imported_gateway_responses`; an import that overwrites
replaces the API's). ``create_exception_response`` then, when the API configures a response for
the answer (:func:`configured_response`), renders its template (:func:`choose_template`) with
LocalStack's own API Gateway VTL engine against the invocation's ``$context``, messageString
quoted as on AWS (:func:`aws_context`), and sets the headers its parameters name
(:func:`response_headers`). A response configured without templates has LocalStack's
(and AWS's) default, ``{"message":$context.error.messageString}``; an answer the API configures
nothing for stays LocalStack's own.

Both methods live in modules whose import builds LocalStack's service catalog (about 2 s here,
otherwise spent on the first API Gateway request), so the hook does not import them: it asks
wrapt (in LocalStack's own dependencies) to patch each as its module is imported, at once if it
already is. A method that is not there then leaves LocalStack as it is, with a warning.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)

LOG = logging.getLogger(__name__)


EXTENSION: Final = "x-amazon-apigateway-gateway-responses"
JSON: Final = "application/json"
HEADER_TARGET: Final = "gatewayresponse.header."
DEFAULT_4XX: Final = "DEFAULT_4XX"
DEFAULT_5XX: Final = "DEFAULT_5XX"
OVERWRITE: Final = "overwrite"
"""The ``PutRestApi`` mode that replaces the API's definition instead of merging into it."""

EXCEPTION_HANDLER_MODULE: Final = (
    "localstack.services.apigateway.next_gen.execute_api.handlers.gateway_exception"
)
PROVIDER_MODULE: Final = "localstack.services.apigateway.legacy.provider"

#: Where a request value named by a response parameter comes from (prefix → field).
REQUEST_SOURCES: Final = (
    ("method.request.header.", "headers"),
    ("method.request.querystring.", "querystring"),
    ("method.request.path.", "path"),
    ("stageVariables.", "stage_variables"),
)


Render = Callable[[str, Mapping[str, Any]], str]
"""Renders a template against its variables (``context``, ``stageVariables``, ``input``)."""


@dataclass(frozen=True)
class RequestValues:
    """The values of a request a response parameter can name.

    Attributes
    ----------
    headers : Mapping[str, str]
        Request headers (names in any case).
    querystring, path, stage_variables : Mapping[str, str]
        Query string and path parameters, and the stage's variables.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    querystring: Mapping[str, str] = field(default_factory=dict)
    path: Mapping[str, str] = field(default_factory=dict)
    stage_variables: Mapping[str, str] = field(default_factory=dict)

    def lookup(self, source: str) -> str | None:
        """The value ``source`` names (``'literal'``, ``method.request.header.X`` ...), if any.

        >>> values = RequestValues(headers={"Accept": "text/html"}, path={"id": "p-1"})
        >>> values.lookup("'application/json'"), values.lookup("method.request.header.accept")
        ('application/json', 'text/html')
        >>> values.lookup("method.request.path.id"), values.lookup("method.request.path.other")
        ('p-1', None)
        """
        if len(source) >= 2 and source[0] == source[-1] == "'":
            return source[1:-1]
        for prefix, attribute in REQUEST_SOURCES:
            if source.startswith(prefix):
                name = source.removeprefix(prefix)
                values: Mapping[str, str] = getattr(self, attribute)
                if attribute == "headers":
                    return next((v for k, v in values.items() if k.lower() == name.lower()), None)
                return values.get(name)
        return None


def imported_gateway_responses(
    document: Mapping[str, Any], known_types: Collection[str]
) -> dict[str, dict[str, Any]]:
    """The gateway responses an OpenAPI document declares, as ``PutGatewayResponse`` takes them.

    Entries of an unknown response type, or that are not objects, are left out (with a warning);
    ``statusCode`` becomes a string, as the API's model has it.

    >>> document = {EXTENSION: {
    ...     "MISSING_AUTHENTICATION_TOKEN": {"statusCode": 404, "responseTemplates": {JSON: "{}"}},
    ...     "NO_SUCH_TYPE": {"statusCode": "400"}}}
    >>> imported_gateway_responses(document, {"MISSING_AUTHENTICATION_TOKEN"})
    {'MISSING_AUTHENTICATION_TOKEN': {'statusCode': '404', 'responseParameters': {}, 'responseTemplates': {'application/json': '{}'}}}
    """  # noqa: E501 - a doctest's answer is one line
    declared = document.get(EXTENSION)
    if not isinstance(declared, Mapping):
        return {}
    imported: dict[str, dict[str, Any]] = {}
    for response_type, response in declared.items():
        if response_type not in known_types or not isinstance(response, Mapping):
            LOG.warning("gateway response %r is not one API Gateway has: ignored", response_type)
            continue
        status = response.get("statusCode")
        imported[response_type] = {
            "statusCode": None if status is None else str(status),
            "responseParameters": _strings(response.get("responseParameters")),
            "responseTemplates": _strings(response.get("responseTemplates")),
        }
    return imported


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(key): str(item) for key, item in value.items()}


def configured_response(
    response_type: str, default_status: str, configured: Mapping[str, Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """The API's own gateway response for an answer of ``response_type``, as AWS picks it.

    Its response for the type; else, for a type with a status of its own (``default_status``,
    ``""`` for ``DEFAULT_4XX``/``DEFAULT_5XX``), its ``DEFAULT_5XX`` or ``DEFAULT_4XX``; else
    ``None``: the answer is API Gateway's default.

    >>> configured = {"DEFAULT_4XX": {"statusCode": None}, "THROTTLED": {"statusCode": "429"}}
    >>> configured_response("THROTTLED", "429", configured)
    {'statusCode': '429'}
    >>> configured_response("MISSING_AUTHENTICATION_TOKEN", "403", configured)
    {'statusCode': None}
    >>> configured_response("INTEGRATION_TIMEOUT", "504", configured) is None
    True
    """
    own = configured.get(response_type)
    if own is not None:
        return own
    if not default_status:
        return None
    return configured.get(DEFAULT_5XX if default_status >= "500" else DEFAULT_4XX)


def choose_template(templates: Mapping[str, str], accept: Sequence[str]) -> str | None:
    """The response template for a request whose ``Accept`` headers are ``accept``.

    The template of the first media type accepted that has one, else ``application/json``'s,
    else the first; ``None`` when there is no template.

    >>> templates = {"application/json": "J", "text/html": "H"}
    >>> choose_template(templates, ["text/html;q=0.9, application/json"])
    'H'
    >>> choose_template(templates, ["*/*"]), choose_template({"text/xml": "X"}, [])
    ('J', 'X')
    >>> choose_template({}, ["application/json"]) is None
    True
    """
    if not templates:
        return None
    by_type = {media_type.lower(): template for media_type, template in templates.items()}
    for header in accept:
        for part in header.split(","):
            media_type = part.split(";", 1)[0].strip().lower()
            if media_type in by_type:
                return by_type[media_type]
    return by_type.get(JSON, next(iter(templates.values())))


def aws_context(context_variables: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``$context`` whose ``error.messageString`` is the message as AWS has it.

    AWS gives ``$context.error.messageString`` as a JSON string literal, quotes included, so
    that a template writes ``"message": $context.error.messageString``; LocalStack gives the
    bare message.

    >>> aws_context({"error": {"message": 'No "route"', "messageString": 'No "route"'}})["error"]
    {'message': 'No "route"', 'messageString': '"No \\\\"route\\\\""'}
    """
    variables = copy.deepcopy(dict(context_variables))
    error = variables.get("error")
    if isinstance(error, dict):
        error["messageString"] = json.dumps(error.get("message"))
    return variables


def response_headers(parameters: Mapping[str, str], request: RequestValues) -> dict[str, str]:
    """The headers a gateway response's ``responseParameters`` set for ``request``.

    A parameter whose source names nothing the request has sets no header.

    >>> response_headers(
    ...     {"gatewayresponse.header.Content-Type": "'application/json'",
    ...      "gatewayresponse.header.X-Asked": "method.request.querystring.q",
    ...      "gatewayresponse.header.X-Missing": "method.request.header.X-None"},
    ...     RequestValues(querystring={"q": "shoes"}))
    {'Content-Type': 'application/json', 'X-Asked': 'shoes'}
    """
    headers: dict[str, str] = {}
    for target, source in parameters.items():
        if not target.startswith(HEADER_TARGET):
            continue
        value = request.lookup(source)
        if value is not None:
            headers[target.removeprefix(HEADER_TARGET)] = value
    return headers


def answer_as_configured(
    response: Any,
    exception: Any,
    context: Any,
    *,
    render: Render,
    default_status: Callable[[str], str],
) -> None:
    """Give ``response`` the body and headers of the gateway response configured for it.

    Parameters
    ----------
    response : Any
        LocalStack's answer (a ``Response``: ``set_data``, ``headers``), changed in place.
    exception : Any
        The ``BaseGatewayException`` answered (``type``).
    context : Any
        The ``RestApiInvocationContext`` (``deployment``, ``invocation_request``,
        ``context_variables`` with ``error`` set, ``stage_variables``).
    render : Render
        LocalStack's VTL rendering.
    default_status : Callable[[str], str]
        A response type's own status (``""`` for ``DEFAULT_4XX``/``DEFAULT_5XX``).
    """
    deployment = getattr(context, "deployment", None)
    configured = deployment.rest_api.gateway_responses if deployment is not None else {}
    response_type = str(exception.type)
    gateway_response = configured_response(response_type, default_status(response_type), configured)
    if gateway_response is None or getattr(context, "context_variables", None) is None:
        return
    request = context.invocation_request or {}
    headers = request.get("headers")
    header_pairs = list(headers.items()) if headers is not None else []
    stage_variables = context.stage_variables or {}
    values = RequestValues(
        headers=dict(header_pairs),
        querystring=request.get("query_string_parameters") or {},
        path=request.get("path_parameters") or {},
        stage_variables=stage_variables,
    )
    accept = [value for name, value in header_pairs if name.lower() == "accept"]
    template = choose_template(gateway_response.get("responseTemplates") or {}, accept)
    if template is not None:
        variables = {
            "context": aws_context(context.context_variables),
            "stageVariables": dict(stage_variables),
            "input": {
                "body": "",
                "params": {
                    "header": values.headers,
                    "querystring": values.querystring,
                    "path": values.path,
                },
            },
        }
        response.set_data(render(template, variables))
    for name, value in response_headers(
        gateway_response.get("responseParameters") or {}, values
    ).items():
        response.headers[name] = value


def answering_as_configured(
    create_exception_response: Callable[[Any, Any, Any], Any],
    *,
    render: Render,
    default_status: Callable[[str], str],
) -> Callable[[Any, Any, Any], Any]:
    """Wrap ``GatewayExceptionHandler.create_exception_response`` with :func:`answer_as_configured`.

    A failure to render leaves LocalStack's own answer (logged): an error answer never becomes
    an emulator failure.
    """

    def wrapped(self: Any, exception: Any, context: Any) -> Any:
        response = create_exception_response(self, exception, context)
        if response is None:
            return None
        try:
            answer_as_configured(
                response, exception, context, render=render, default_status=default_status
            )
        except Exception:
            LOG.exception(
                "gateway response for %s not rendered: LocalStack's own answer", exception
            )
        return response

    wrapped.__wrapped__ = create_exception_response  # type: ignore[attr-defined]
    return wrapped


def importing_gateway_responses(
    import_api: Callable[..., tuple[Any, list[str]]],
    *,
    store: Callable[[Any, str, Mapping[str, dict[str, Any]], bool], None],
    known_types: Collection[str],
) -> Callable[..., tuple[Any, list[str]]]:
    """Wrap ``import_api_from_openapi_spec`` so that it stores the document's gateway responses.

    ``store(context, rest_api_id, responses, replace)`` puts them on the API, replacing the
    API's own when the import overwrites it.
    """

    def wrapped(
        rest_api: Any, context: Any, open_api_spec: dict[str, Any], mode: str
    ) -> tuple[Any, list[str]]:
        result = import_api(rest_api, context=context, open_api_spec=open_api_spec, mode=mode)
        responses = imported_gateway_responses(open_api_spec, known_types)
        if responses or mode == OVERWRITE:
            store(context, rest_api.id, responses, mode == OVERWRITE)
        return result

    wrapped.__wrapped__ = import_api  # type: ignore[attr-defined]
    return wrapped


def patch_exception_handler(module: ModuleType) -> None:
    """Make the module's ``GatewayExceptionHandler`` answer as configured (idempotent)."""
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (  # type: ignore[import-not-found,unused-ignore]
        GatewayResponseCode,
    )
    from localstack.services.apigateway.next_gen.execute_api.template_mapping import (  # type: ignore[import-not-found,unused-ignore]
        ApiGatewayVtlTemplate,
    )

    engine = ApiGatewayVtlTemplate()

    def render(template: str, variables: Mapping[str, Any]) -> str:
        # The engine changes the variables it is given (its string helpers).
        return str(engine.render_vtl(template=template.strip(), variables=dict(variables)))

    def default_status(response_type: str) -> str:
        member = GatewayResponseCode.__members__.get(response_type)
        return "" if member is None else str(member.value)

    wrap_once(
        getattr(module, "GatewayExceptionHandler", None),
        "create_exception_response",
        lambda create: answering_as_configured(
            create, render=render, default_status=default_status
        ),
        "gateway responses",
    )


def patch_openapi_import(module: ModuleType) -> None:
    """Make the provider's OpenAPI import store the document's gateway responses (idempotent)."""
    from localstack.aws.api.apigateway import (  # type: ignore[import-not-found,unused-ignore]
        GatewayResponseType,
    )
    from localstack.services.apigateway.helpers import (  # type: ignore[import-not-found,unused-ignore]
        get_apigateway_store,
    )
    from localstack.services.apigateway.next_gen.execute_api.gateway_response import (  # type: ignore[import-not-found,unused-ignore]
        DEFAULT_GATEWAY_RESPONSES,
        build_gateway_response,
    )

    def store(
        context: Any, rest_api_id: str, responses: Mapping[str, dict[str, Any]], replace: bool
    ) -> None:
        container = get_apigateway_store(context=context).rest_apis[rest_api_id]
        if replace:
            container.gateway_responses.clear()
        for response_type, response in responses.items():
            kind = GatewayResponseType(response_type)
            container.gateway_responses[kind] = build_gateway_response(
                kind,
                status_code=response["statusCode"],
                response_parameters=response["responseParameters"],
                response_templates=response["responseTemplates"],
                default_response=False,
            )

    # The provider calls the name from its module's globals: replaced there.
    wrap_once(
        module,
        "import_api_from_openapi_spec",
        lambda import_api: importing_gateway_responses(
            import_api,
            store=store,
            known_types=frozenset(map(str, DEFAULT_GATEWAY_RESPONSES)),
        ),
        "gateway responses",
    )


def apply_gateway_responses() -> None:
    """Patch the import and the exception handler as their modules are imported (idempotent)."""
    patch_when_imported(
        {
            PROVIDER_MODULE: patch_openapi_import,
            EXCEPTION_HANDLER_MODULE: patch_exception_handler,
        },
        "gateway responses",
    )


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    # As in esm_tuning: registers the hook with plux, which resolves the entry point to it.
    _localstack_hooks.on_infra_start(name="lambdamesh_gateway_responses")(apply_gateway_responses)
