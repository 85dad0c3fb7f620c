"""Transformations of Chalice's SAM template before it becomes a stack.

Pure functions on the parsed JSON: each returns a new template and leaves its input alone.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from lambdamesh.deploy.gateway_responses import EXTENSION, gateway_responses

Template = dict[str, Any]

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
SQS_QUEUE = "AWS::SQS::Queue"
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
REST_API = "RestAPI"
"""Chalice's logical id of the app's REST API (``AWS::Serverless::Api``)."""


def _resources(template: Template) -> dict[str, Any]:
    resources: dict[str, Any] = template.get("Resources", {})
    return resources


def _functions(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical_id, resource in _resources(template).items():
        if resource.get("Type") == SERVERLESS_FUNCTION:
            yield logical_id, resource.setdefault("Properties", {})


def rewrite_code_uris(template: Template, bucket: str, key: str) -> Template:
    """Point every function's ``CodeUri`` at ``s3://bucket/key``.

    Chalice writes ``./deployment.zip``, which only ``aws cloudformation package`` would
    resolve; CloudFormation itself needs an S3 location.
    """
    result = copy.deepcopy(template)
    for _, properties in _functions(result):
        properties["CodeUri"] = f"s3://{bucket}/{key}"
    return result


def _is_sqs_arn(value: Any, template: Template) -> bool:
    """Whether an ``EventSourceArn`` names an SQS queue (literal ARN or the template's queue)."""
    if isinstance(value, str):
        return ":sqs:" in value
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            target = value["Fn::GetAtt"]
            logical_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
            return bool(_resources(template).get(logical_id, {}).get("Type") == SQS_QUEUE)
        if "Fn::Sub" in value:
            pattern = value["Fn::Sub"]
            return ":sqs:" in (pattern[0] if isinstance(pattern, list) else str(pattern))
    return False


def add_partial_batch_responses(template: Template) -> Template:
    """Add ``FunctionResponseTypes: [ReportBatchItemFailures]`` to every SQS event source.

    Chalice's ``on_sqs_message`` has no way to say it; without it Lambda ignores the
    ``batchItemFailures`` a handler returns and redelivers the whole batch on any error.
    Covers SAM ``SQS`` events and plain ``AWS::Lambda::EventSourceMapping`` resources on a
    queue (from a merge template).
    """
    result = copy.deepcopy(template)
    for _, properties in _functions(result):
        for event in properties.get("Events", {}).values():
            if event.get("Type") == "SQS":
                _add_response_type(event.setdefault("Properties", {}))
    for resource in _resources(result).values():
        if resource.get("Type") == EVENT_SOURCE_MAPPING:
            properties = resource.setdefault("Properties", {})
            if _is_sqs_arn(properties.get("EventSourceArn"), result):
                _add_response_type(properties)
    return result


def _add_response_type(properties: dict[str, Any]) -> None:
    types: list[str] = properties.setdefault("FunctionResponseTypes", [])
    if REPORT_BATCH_ITEM_FAILURES not in types:
        types.append(REPORT_BATCH_ITEM_FAILURES)


def declared_parameters(template: Template) -> dict[str, dict[str, Any]]:
    """The template's ``Parameters`` section (name → declaration)."""
    parameters: dict[str, dict[str, Any]] = template.get("Parameters", {})
    return parameters


def function_logical_ids(template: Template) -> list[str]:
    """Logical ids of the template's functions (SAM or plain Lambda)."""
    return sorted(
        logical_id
        for logical_id, resource in _resources(template).items()
        if resource.get("Type") in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION)
    )


def has_rest_api(template: Template) -> bool:
    """Whether Chalice emitted a REST API (the app has routes)."""
    return REST_API in _resources(template)


def add_gateway_responses(template: Template) -> Template:
    """Make API Gateway's own answers (no route matches, 413, 5xx, ...) the services' errors.

    Adds :func:`~lambdamesh.deploy.gateway_responses.gateway_responses` to the OpenAPI document
    of the REST API (``DefinitionBody`` of Chalice's ``AWS::Serverless::Api``, or ``Body`` of
    a plain ``AWS::ApiGateway::RestApi``); a response type the document declares already keeps
    its declaration. A template without a REST API is returned unchanged.
    """
    result = copy.deepcopy(template)
    properties = _resources(result).get(REST_API, {}).get("Properties", {})
    document = properties.get("DefinitionBody", properties.get("Body"))
    if isinstance(document, dict):
        declared: dict[str, Any] = document.setdefault(EXTENSION, {})
        for response_type, response in gateway_responses().items():
            declared.setdefault(response_type, response)
    return result


def prepare_template(template: Template, bucket: str, key: str) -> Template:
    """Every transformation deploy applies, in order."""
    prepared = add_partial_batch_responses(rewrite_code_uris(template, bucket, key))
    if has_rest_api(prepared):
        prepared = add_gateway_responses(prepared)
    return prepared
