"""API Gateway's own answers in the services' error shape: the templates deploy adds, and the
emulator's rendering of them (the plugin's pure parts, without LocalStack)."""

from __future__ import annotations

import doctest
import json
import re
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest

from lambdamesh.deploy.gateway_responses import EXTENSION, GATEWAY_ANSWERS, JSON, gateway_responses
from lambdamesh.deploy.packaging import package_app
from lambdamesh.deploy.template import add_gateway_responses, has_rest_api, prepare_template
from lambdamesh_localstack import gateway_responses as plugin
from lambdamesh_localstack.gateway_responses import (
    RequestValues,
    answer_as_configured,
    answering_as_configured,
    aws_context,
    choose_template,
    configured_response,
    imported_gateway_responses,
    importing_gateway_responses,
    response_headers,
)
from lambdamesh_toolkit.openapi import ErrorBody
from tests.unit.test_deploy_template import write_app

NO_ROUTES_SOURCE = """\
from chalice import Chalice

app = Chalice(app_name="lambdamesh-worker")


@app.on_sqs_message(queue="lambdamesh-worker-orders")
def on_order_placed(event):
    return None
"""

QUEUE_OUTPUTS = frozenset({"ConsumerOrdersQueueArn", "WorkerOrdersQueueArn"})
"""The messaging stack's Outputs of the two apps' queues."""

#: API Gateway's response types and their own statuses ("" for the defaults), as LocalStack
#: 4.14.0's ``GatewayResponseCode`` has them (the part these tests need).
OWN_STATUS = {
    "MISSING_AUTHENTICATION_TOKEN": "403",
    "REQUEST_TOO_LARGE": "413",
    "UNSUPPORTED_MEDIA_TYPE": "415",
    "THROTTLED": "429",
    "ACCESS_DENIED": "403",
    "INVALID_SIGNATURE": "403",
    "EXPIRED_TOKEN": "403",
    "INTEGRATION_FAILURE": "504",
    "INTEGRATION_TIMEOUT": "504",
    "DEFAULT_4XX": "",
    "DEFAULT_5XX": "",
}

#: ``$context`` of a request no route matched, once LocalStack has set the error.
CONTEXT: dict[str, Any] = {
    "httpMethod": "DELETE",
    "path": "/api/products",
    "requestId": "r-1",
    "stage": "api",
    "error": {
        "message": "Missing Authentication Token",
        "messageString": "Missing Authentication Token",
        "responseType": "MISSING_AUTHENTICATION_TOKEN",
    },
}


def substitute(template: str, variables: Mapping[str, Any]) -> str:
    """Fill ``$context.x.y`` in as API Gateway does for a gateway response (no VTL)."""

    def value(match: re.Match[str]) -> str:
        found: Any = variables["context"]
        for name in match.group(1).split("."):
            found = found[name]
        return str(found)

    return re.sub(r"\$context\.([A-Za-z]+(?:\.[A-Za-z]+)*)", value, template)


def own_status(response_type: str) -> str:
    return OWN_STATUS.get(response_type, "")


class RecordingResponse:
    """The parts of LocalStack's ``Response`` the rendering touches."""

    def __init__(self, body: str = '{"message": "Missing Authentication Token"}') -> None:
        self.body = body
        self.headers: dict[str, str] = {"Content-Type": JSON, "x-amzn-ErrorType": "X"}

    def set_data(self, body: str) -> None:
        self.body = body


def invocation(
    configured: Mapping[str, Mapping[str, Any]], headers: Mapping[str, str] | None = None
) -> SimpleNamespace:
    """An invocation context of an API configured with ``configured`` gateway responses."""
    return SimpleNamespace(
        deployment=SimpleNamespace(rest_api=SimpleNamespace(gateway_responses=configured)),
        invocation_request={"headers": dict(headers or {}), "query_string_parameters": {}},
        context_variables=CONTEXT,
        stage_variables=None,
    )


def missing_token() -> SimpleNamespace:
    return SimpleNamespace(
        type="MISSING_AUTHENTICATION_TOKEN", message="Missing Authentication Token"
    )


def deployed_responses() -> dict[str, dict[str, Any]]:
    """The gateway responses as the emulator stores them from the document deploy writes."""
    return imported_gateway_responses({EXTENSION: gateway_responses()}, OWN_STATUS)


# --- the templates deploy adds ---------------------------------------------------------------


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Chalice's real templates of an app with routes (``api``) and of one without (``worker``)."""
    apps = tmp_path_factory.mktemp("apps")
    cache = tmp_path_factory.mktemp("cache")
    packaged = {
        "api": package_app(write_app(apps / "api"), cache, "us-east-1"),
        "worker": package_app(write_app(apps / "worker", NO_ROUTES_SOURCE), cache, "us-east-1"),
    }
    return {name: json.loads(app.template_file.read_text()) for name, app in packaged.items()}


def _document(template: Mapping[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    return document


def test_deploy_gives_every_rest_api_the_gateway_responses_and_nothing_to_other_apps(
    templates: dict[str, dict[str, Any]],
) -> None:
    # GIVEN Chalice's templates of an app with routes and of one without
    assert has_rest_api(templates["api"])
    assert not has_rest_api(templates["worker"])
    # WHEN each is prepared for deploy
    prepared = {
        name: prepare_template(t, "bucket", "k.zip", queue_outputs=QUEUE_OUTPUTS)
        for name, t in templates.items()
    }
    # THEN the REST API's document declares every gateway response of the table
    assert _document(prepared["api"])[EXTENSION] == gateway_responses()
    assert set(gateway_responses()) == set(GATEWAY_ANSWERS)
    # AND its routes are Chalice's, untouched, and the input template is unchanged
    assert _document(prepared["api"])["paths"] == _document(templates["api"])["paths"]
    assert EXTENSION not in _document(templates["api"])
    # AND the app without routes gets no API of any kind
    kinds = {resource["Type"] for resource in prepared["worker"]["Resources"].values()}
    assert not any(kind.startswith(("AWS::ApiGateway", "AWS::Serverless::Api")) for kind in kinds)
    assert EXTENSION not in json.dumps(prepared["worker"])


def test_a_gateway_response_the_document_declares_is_kept_and_applying_twice_changes_nothing(
    templates: dict[str, dict[str, Any]],
) -> None:
    # GIVEN a REST API whose document declares its own THROTTLED response
    own = {"statusCode": "503", "responseTemplates": {JSON: "{}"}}
    template = json.loads(json.dumps(templates["api"]))
    _document(template)[EXTENSION] = {"THROTTLED": own}
    # WHEN the gateway responses are added, twice
    once = add_gateway_responses(template)
    twice = add_gateway_responses(once)
    # THEN the declared one stays, the others are added, and the second pass changes nothing
    assert _document(once)[EXTENSION]["THROTTLED"] == own
    assert set(_document(once)[EXTENSION]) == set(GATEWAY_ANSWERS)
    assert twice == once


@pytest.mark.parametrize("response_type", sorted(GATEWAY_ANSWERS))
def test_every_gateway_response_answers_json_in_the_services_error_shape(
    response_type: str,
) -> None:
    # GIVEN the gateway response deploy declares for one kind of API Gateway's own answers
    response = gateway_responses()[response_type]
    answer = GATEWAY_ANSWERS[response_type]
    # WHEN API Gateway fills its JSON template in (messageString a JSON string literal on AWS)
    filled = substitute(response["responseTemplates"][JSON], {"context": aws_context(CONTEXT)})
    # THEN the body is the error shape every service answers with (the OpenAPI documents'
    # ErrorBody), with the table's code, no field, and API Gateway's request id to quote
    error = ErrorBody.model_validate_json(filled).error
    assert (error.code, error.field, error.correlation_id) == (answer.code, None, "r-1")
    assert error.message
    # AND it says it is JSON, with the table's status or, for the defaults, the gateway's own
    assert response["responseParameters"] == {"gatewayresponse.header.Content-Type": f"'{JSON}'"}
    assert response.get("statusCode") == (None if answer.status is None else str(answer.status))


def test_a_request_no_route_matches_is_told_so_with_its_method_and_path() -> None:
    # GIVEN the response for "no route matches" (API Gateway's 403 Missing Authentication Token)
    template = gateway_responses()["MISSING_AUTHENTICATION_TOKEN"]["responseTemplates"][JSON]
    # WHEN filled in for DELETE /api/products
    body = json.loads(substitute(template, {"context": aws_context(CONTEXT)}))
    # THEN it is a not_found naming the method and the path, not an authentication problem
    assert body["error"]["code"] == "not_found"
    assert body["error"]["message"] == "no route matches DELETE /api/products"
    assert gateway_responses()["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"


# --- the emulator: importing them ------------------------------------------------------------


def test_the_emulator_imports_every_gateway_response_deploy_declares() -> None:
    # GIVEN the document deploy writes, and one entry API Gateway has no type for
    document = {EXTENSION: {**gateway_responses(), "NOT_A_TYPE": {"statusCode": "400"}}}
    # WHEN its gateway responses are read as the import stores them
    imported = imported_gateway_responses(document, OWN_STATUS)
    # THEN every declared one is there, status as a string, parameters and templates as written
    assert set(imported) == set(GATEWAY_ANSWERS)
    assert imported["REQUEST_TOO_LARGE"] == {
        "statusCode": "413",
        "responseParameters": gateway_responses()["REQUEST_TOO_LARGE"]["responseParameters"],
        "responseTemplates": gateway_responses()["REQUEST_TOO_LARGE"]["responseTemplates"],
    }
    assert imported["DEFAULT_5XX"]["statusCode"] is None
    # AND a document without any declares none
    assert imported_gateway_responses({"paths": {}}, OWN_STATUS) == {}


def test_the_import_stores_the_documents_responses_and_an_overwrite_replaces_the_apis() -> None:
    # GIVEN LocalStack's import, wrapped, and a store that records what it is given
    stored: list[tuple[str, list[str], bool]] = []

    def import_api(rest_api: Any, **kwargs: Any) -> tuple[Any, list[str]]:
        return rest_api, []

    def store(context: Any, api_id: str, responses: Mapping[str, Any], replace: bool) -> None:
        stored.append((api_id, sorted(responses), replace))

    wrapped = importing_gateway_responses(import_api, store=store, known_types=OWN_STATUS)
    api = SimpleNamespace(id="a-1")
    # WHEN a document with gateway responses is merged, and one without overwrites the API
    assert wrapped(api, None, {EXTENSION: gateway_responses()}, "merge") == (api, [])
    wrapped(api, None, {"paths": {}}, "overwrite")
    # AND one without merges
    wrapped(api, None, {"paths": {}}, "merge")
    # THEN the first stored the responses, the overwrite emptied them, the last changed nothing
    assert stored == [("a-1", sorted(GATEWAY_ANSWERS), False), ("a-1", [], True)]


# --- the emulator: answering with them -------------------------------------------------------


def test_the_apis_own_response_or_the_default_of_its_status_class_is_the_one_answered() -> None:
    # GIVEN an API configured as deploy configures it
    configured = deployed_responses()
    # WHEN each kind of answer looks its response up
    # THEN a configured type gets its own, an unconfigured 4xx/5xx the default of its class
    assert configured_response("THROTTLED", "429", configured) is configured["THROTTLED"]
    assert configured_response("ACCESS_DENIED", "403", configured) is configured["ACCESS_DENIED"]
    assert configured_response("QUOTA_EXCEEDED", "429", configured) is configured["DEFAULT_4XX"]
    assert (
        configured_response("INTEGRATION_TIMEOUT", "504", configured) is configured["DEFAULT_5XX"]
    )
    assert configured_response("DEFAULT_5XX", "", configured) is configured["DEFAULT_5XX"]
    # AND an API that configures nothing leaves every answer to API Gateway's default
    assert configured_response("MISSING_AUTHENTICATION_TOKEN", "403", {}) is None
    assert configured_response("DEFAULT_4XX", "", {"THROTTLED": {}}) is None


def test_the_template_is_the_one_of_the_media_type_the_request_accepts() -> None:
    # GIVEN a response with JSON and HTML templates
    templates = {"application/json": "J", "Text/HTML": "H"}
    # WHEN requests accept HTML (among others), anything, or say nothing
    # THEN HTML gets its template, the others JSON's
    assert choose_template(templates, ["text/plain", "text/html; q=0.8"]) == "H"
    assert choose_template(templates, ["*/*"]) == "J"
    assert choose_template(templates, []) == "J"
    # AND without JSON's, the first template; without any, none
    assert choose_template({"text/xml": "X", "text/html": "H"}, ["image/png"]) == "X"
    assert choose_template({}, ["application/json"]) is None


def test_the_error_message_string_is_a_json_string_literal_as_on_aws() -> None:
    # GIVEN LocalStack's $context, whose messageString is the bare message
    # WHEN made AWS-like
    context = aws_context(CONTEXT)
    # THEN messageString is the message quoted as JSON, and LocalStack's $context is unchanged
    assert context["error"]["messageString"] == '"Missing Authentication Token"'
    assert json.loads(context["error"]["messageString"]) == CONTEXT["error"]["message"]
    assert CONTEXT["error"]["messageString"] == "Missing Authentication Token"


def test_response_parameters_set_headers_from_literals_and_from_the_request() -> None:
    # GIVEN parameters naming a literal, a request header, a query parameter, a path parameter,
    # a stage variable, a header the request has not got, and a target that is not a header
    parameters = {
        "gatewayresponse.header.Content-Type": "'application/json'",
        "gatewayresponse.header.X-Asked-For": "method.request.header.accept",
        "gatewayresponse.header.X-Query": "method.request.querystring.q",
        "gatewayresponse.header.X-Id": "method.request.path.id",
        "gatewayresponse.header.X-Stage": "stageVariables.colour",
        "gatewayresponse.header.X-Absent": "method.request.header.X-Nothing",
        "gatewayresponse.path.id": "'ignored'",
    }
    request = RequestValues(
        headers={"Accept": "text/html"},
        querystring={"q": "mug"},
        path={"id": "p-1"},
        stage_variables={"colour": "blue"},
    )
    # WHEN the headers are computed
    headers = response_headers(parameters, request)
    # THEN each header has its value, and what names nothing sets nothing
    assert headers == {
        "Content-Type": "application/json",
        "X-Asked-For": "text/html",
        "X-Query": "mug",
        "X-Id": "p-1",
        "X-Stage": "blue",
    }


def test_an_unmatched_request_is_answered_with_the_configured_body_and_headers() -> None:
    # GIVEN LocalStack's answer to a request no route matched, on an API configured by deploy
    response = RecordingResponse()
    context = invocation(deployed_responses(), {"Accept": "application/json"})
    # WHEN the configured response is applied
    answer_as_configured(
        response, missing_token(), context, render=substitute, default_status=own_status
    )
    # THEN the body is the services' not_found, as JSON; LocalStack's other headers stay
    body = ErrorBody.model_validate_json(response.body)
    assert (body.error.code, body.error.message) == (
        "not_found",
        "no route matches DELETE /api/products",
    )
    assert response.headers == {"Content-Type": JSON, "x-amzn-ErrorType": "X"}


def test_an_api_without_gateway_responses_keeps_localstacks_answer() -> None:
    # GIVEN LocalStack's answer on an API that configures no gateway response
    response = RecordingResponse()
    # WHEN the (absent) configured response is applied
    answer_as_configured(
        response, missing_token(), invocation({}), render=substitute, default_status=own_status
    )
    # THEN the answer is LocalStack's own
    assert response.body == '{"message": "Missing Authentication Token"}'


def test_the_wrapped_handler_falls_back_to_localstacks_answer_when_rendering_fails() -> None:
    # GIVEN LocalStack's create_exception_response, wrapped with a renderer that fails
    def create_exception_response(handler: Any, exception: Any, context: Any) -> RecordingResponse:
        return RecordingResponse()

    def broken(template: str, variables: Mapping[str, Any]) -> str:
        raise ValueError("bad template")

    wrapped = answering_as_configured(
        create_exception_response, render=broken, default_status=own_status
    )
    # WHEN an unmatched request is answered
    response = wrapped(object(), missing_token(), invocation(deployed_responses()))
    # THEN the answer is LocalStack's own, not a failure of the emulator
    assert response.body == '{"message": "Missing Authentication Token"}'
    assert wrapped.__wrapped__ is create_exception_response  # type: ignore[attr-defined]


def test_the_plugin_and_deploy_name_the_same_extension() -> None:
    # GIVEN both modules  THEN the extension is spelled the same in each
    assert plugin.EXTENSION == EXTENSION


def test_the_plugins_docstring_examples_run() -> None:
    # GIVEN the plugin's module (its LocalStack parts unimported)
    # WHEN its docstrings' examples run
    result = doctest.testmod(plugin, verbose=False, report=False)
    # THEN there are some, and every one gives what it shows
    assert result.attempted >= 10
    assert result.failed == 0
