"""Transformations of Chalice's SAM template before it becomes a stack.

Pure functions on the parsed JSON: each returns a new template and leaves its input alone.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Collection, Iterator
from typing import Any

from lambdamesh.deploy.gateway_responses import EXTENSION, gateway_responses

Template = dict[str, Any]

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
SQS_QUEUE = "AWS::SQS::Queue"
IAM_ROLE = "AWS::IAM::Role"
REPORT_BATCH_ITEM_FAILURES = "ReportBatchItemFailures"
REST_API = "RestAPI"
"""Chalice's logical id of the app's REST API (``AWS::Serverless::Api``)."""

APP_QUEUE_PREFIX = "lambdamesh-"
"""How the apps' ``on_sqs_message`` handlers begin their queue names: the messaging template's
default ``NamePrefix`` followed by ``-``."""

QUEUE_ARN_SUFFIX = "QueueArn"
"""The messaging stack's Outputs of queue ARNs end with this (``OrdersOutcomesQueueArn``)."""

EVENT_SOURCE_ACTIONS = frozenset(
    {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"}
)
"""What Lambda's poller needs on a queue; Chalice grants them on every resource (``*``)."""

_LITERAL_QUEUE_ARN = re.compile(r"arn:[^:]+:sqs:[^:]*:[^:]*:(?P<name>[A-Za-z0-9_.-]+)")
_CHALICE_QUEUE_ARN = re.compile(
    r"arn:\$\{AWS::Partition\}:sqs:\$\{AWS::Region\}:\$\{AWS::AccountId\}:"
    r"(?P<name>[A-Za-z0-9_.-]+)"
)


class UnknownQueueError(ValueError):
    """An SQS event source names a queue that the messaging stack does not offer."""


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


def _getatt_resource(value: dict[str, Any]) -> str | None:
    """The logical id an ``Fn::GetAtt`` names (list or ``Id.Attribute`` form), else ``None``."""
    target = value.get("Fn::GetAtt")
    if target is None:
        return None
    return str(target[0] if isinstance(target, list) else str(target).split(".")[0])


def _sub_pattern(value: dict[str, Any]) -> str | None:
    """The pattern of an ``Fn::Sub`` (string or ``[pattern, variables]`` form), else ``None``."""
    pattern = value.get("Fn::Sub")
    if pattern is None:
        return None
    return str(pattern[0] if isinstance(pattern, list) else pattern)


def _is_sqs_arn(value: Any, template: Template) -> bool:
    """Whether an ``EventSourceArn`` names an SQS queue (literal ARN or the template's queue)."""
    if isinstance(value, str):
        return ":sqs:" in value
    if isinstance(value, dict):
        logical_id = _getatt_resource(value)
        if logical_id is not None:
            return bool(_resources(template).get(logical_id, {}).get("Type") == SQS_QUEUE)
        pattern = _sub_pattern(value)
        if pattern is not None:
            return ":sqs:" in pattern
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


def queue_output_key(queue_name: str) -> str:
    """The messaging stack's Output holding the ARN of the queue an app names ``queue_name``.

    The one rule: drop :data:`APP_QUEUE_PREFIX` and a ``.fifo`` suffix, capitalise each
    ``-``-separated word, join the words and append ``QueueArn``. The messaging template names
    its queues ``<NamePrefix>-<consumer>-<source>`` and their Outputs after the same words, so
    the Output names the queue of the stacks deployed together: under ``--stack-prefix shop``
    the handler of ``lambdamesh-orders-outcomes`` consumes ``shop-orders-outcomes``.

    >>> queue_output_key("lambdamesh-orders-outcomes")
    'OrdersOutcomesQueueArn'
    >>> queue_output_key("lambdamesh-payments-orders.fifo")
    'PaymentsOrdersQueueArn'

    Raises
    ------
    UnknownQueueError
        For a name that does not begin with :data:`APP_QUEUE_PREFIX`: no queue of the
        messaging stack is meant.
    """
    rest = queue_name.removeprefix(APP_QUEUE_PREFIX).removesuffix(".fifo")
    if not queue_name.startswith(APP_QUEUE_PREFIX) or not rest:
        raise UnknownQueueError(
            f"queue {queue_name!r} is not named {APP_QUEUE_PREFIX}<consumer>-<source>, as the "
            f"messaging stack's queues are"
        )
    return "".join(word.capitalize() for word in rest.split("-")) + QUEUE_ARN_SUFFIX


def _literal_queue_name(value: Any) -> str | None:
    """The queue's name when an event source's ``Queue`` spells it out, else ``None``."""
    if isinstance(value, str):
        match = _LITERAL_QUEUE_ARN.fullmatch(value)
    elif (
        isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str)
    ):
        match = _CHALICE_QUEUE_ARN.fullmatch(value["Fn::Sub"])
    else:
        return None
    return match["name"] if match else None


def _queue_parameter(function: str, queue_name: str, queue_outputs: Collection[str]) -> str:
    offered = sorted(key for key in queue_outputs if key.endswith(QUEUE_ARN_SUFFIX))
    try:
        key = queue_output_key(queue_name)
    except UnknownQueueError as error:
        raise UnknownQueueError(f"{function}: {error}") from None
    if key not in queue_outputs:
        raise UnknownQueueError(
            f"{function}: its SQS event source names queue {queue_name!r}, whose ARN would be "
            f"the messaging stack's Output {key}, which it does not offer "
            f"(it offers {', '.join(offered) or 'no queue'})"
        )
    return key


def parameterise_queues(template: Template, queue_outputs: Collection[str]) -> Template:
    """Make every SQS event source take its queue from a parameter, not from a literal name.

    Chalice turns ``on_sqs_message(queue="lambdamesh-orders-outcomes")`` into an event source
    whose ``Queue`` is an ARN ending in that name (an ``Fn::Sub`` of the partition, region and
    account). Each such ``Queue`` becomes ``{"Ref": key}``, ``key`` from :func:`queue_output_key`,
    and the parameter ``key`` is declared unless the template declares it already (the
    consumers' ``resources.json`` do, for their policies); deploy fills it from the messaging
    stack's Output of that name (:mod:`~lambdamesh.deploy.wiring`). A ``Queue`` already given
    by a ``Ref``, or by a queue of the template, is left as it is.

    Parameters
    ----------
    template
        Chalice's template.
    queue_outputs
        The Output keys of the messaging stack.

    Raises
    ------
    UnknownQueueError
        Naming the function and its queue, when the messaging stack offers no Output for it.
    """
    result = copy.deepcopy(template)
    for logical_id, properties in _functions(result):
        for event in properties.get("Events", {}).values():
            if event.get("Type") != "SQS":
                continue
            event_properties = event.setdefault("Properties", {})
            name = _literal_queue_name(event_properties.get("Queue"))
            if name is None:
                continue
            key = _queue_parameter(logical_id, name, queue_outputs)
            event_properties["Queue"] = {"Ref": key}
            result.setdefault("Parameters", {}).setdefault(
                key,
                {
                    "Type": "String",
                    "Description": f"ARN of the queue {logical_id} consumes "
                    f"(the messaging stack's output).",
                },
            )
    return result


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


CHALICE_ROLE = "DefaultRole"
"""Chalice's generated role, which every function of an app would share; deploy replaces it."""

ROLE_SUFFIX = "Role"
LOGS_SUFFIX = "Logs"
LAMBDA_TRUST_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"Service": "lambda.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    ],
}
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")


class RoleError(ValueError):
    """A function's grants cannot be given to a role of its own."""


def role_id(function: str) -> str:
    """The logical id of the role :func:`one_role_per_function` gives ``function``."""
    return f"{function}{ROLE_SUFFIX}"


def _event_source_queues(properties: dict[str, Any]) -> list[Any]:
    """The ``Queue`` of every SQS event source of a function, each once, in order."""
    queues: list[Any] = []
    for event in properties.get("Events", {}).values():
        queue = event.get("Properties", {}).get("Queue")
        if event.get("Type") == "SQS" and queue is not None and queue not in queues:
            queues.append(copy.deepcopy(queue))
    return queues


def _declared_statements(function: str, properties: dict[str, Any]) -> list[Any]:
    """The statements of the policy documents in a function's SAM ``Policies``."""
    statements: list[Any] = []
    for policy in _as_list(properties.get("Policies", [])):
        if not isinstance(policy, dict) or "Statement" not in policy:
            raise RoleError(
                f"{function}: its Policies may hold policy documents only (a statement list), "
                f"not {policy!r}: a managed policy or SAM policy template would grant more "
                f"than the function calls"
            )
        statements.extend(copy.deepcopy(_as_list(policy["Statement"])))
    return statements


def _logs_policy(function: str) -> dict[str, Any]:
    """Its own log group, and nothing else, for a function's role.

    A policy of its own, not one of the role's: the log group's name is the function's, and a
    role that named its function would make the two depend on each other.
    """
    log_group = (
        "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/"
        f"${{{function}}}"
    )
    return {
        "Type": "AWS::IAM::Policy",
        "Properties": {
            "PolicyName": f"{function}{LOGS_SUFFIX}",
            "Roles": [{"Ref": role_id(function)}],
            "PolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Sid": "OwnLogGroup",
                        "Effect": "Allow",
                        "Action": list(LOG_ACTIONS),
                        "Resource": [{"Fn::Sub": log_group}, {"Fn::Sub": f"{log_group}:*"}],
                    }
                ],
            },
        },
    }


def _references(value: Any, logical_id: str) -> bool:
    """Whether ``value`` refers to ``logical_id`` (``Ref``, ``Fn::GetAtt`` or ``Fn::Sub``)."""
    if isinstance(value, dict):
        if logical_id in (value.get("Ref"), _getatt_resource(value)):
            return True
        pattern = _sub_pattern(value)
        if pattern is not None and re.search(rf"\$\{{{re.escape(logical_id)}[}}.]", pattern):
            return True
        return any(_references(item, logical_id) for item in value.values())
    if isinstance(value, list):
        return any(_references(item, logical_id) for item in value)
    return False


def one_role_per_function(template: Template) -> Template:
    """Give every function a role of its own, granting what that function calls and no more.

    Chalice gives all of an app's functions one role (``DefaultRole``), so each function could
    do what any of them does, and lets Lambda's SQS poller read every queue. Instead, function
    ``F`` assumes ``FRole`` (:func:`role_id`), whose one inline policy, ``FAccess``, holds:

    - the statements of the policy documents in ``F``'s SAM ``Policies`` (the app's
      ``resources.json`` says there what each function calls; SAM itself would ignore them,
      ``F`` having a ``Role``), which are removed from ``F``;
    - for a function with SQS event sources, what Lambda's poller needs
      (:data:`EVENT_SOURCE_ACTIONS`) on those queues alone.

    Its log group alone is granted by a policy of its own, ``FLogs``. Being inline, the grants
    exist as soon as the role does: before ``F`` and its event source mappings, which AWS
    checks against the role when it creates them. ``DefaultRole`` goes once no function
    assumes it.

    Raises
    ------
    RoleError
        When something other than a function still refers to ``DefaultRole`` (a grant nobody
        assigned to a function), when a function's ``Policies`` hold something other than
        policy documents, or when ``FRole`` or ``FLogs`` is a resource of the template already.
    """
    result = copy.deepcopy(template)
    resources = _resources(result)
    for function, properties in list(_functions(result)):
        statements = _declared_statements(function, properties)
        properties.pop("Policies", None)
        queues = _event_source_queues(properties)
        if queues:
            statements.append(
                {
                    "Sid": "EventSourceQueues",
                    "Effect": "Allow",
                    "Action": sorted(EVENT_SOURCE_ACTIONS),
                    "Resource": queues,
                }
            )
        role: dict[str, Any] = {"AssumeRolePolicyDocument": copy.deepcopy(LAMBDA_TRUST_POLICY)}
        if statements:
            role["Policies"] = [
                {
                    "PolicyName": f"{function}Access",
                    "PolicyDocument": {"Version": "2012-10-17", "Statement": statements},
                }
            ]
        for added in (role_id(function), f"{function}{LOGS_SUFFIX}"):
            if added in resources:
                raise RoleError(f"{function}: the template has a resource {added} already")
        resources[role_id(function)] = {"Type": IAM_ROLE, "Properties": role}
        resources[f"{function}{LOGS_SUFFIX}"] = _logs_policy(function)
        properties["Role"] = {"Fn::GetAtt": [role_id(function), "Arn"]}
    resources.pop(CHALICE_ROLE, None)
    referring = sorted(
        logical_id
        for logical_id, resource in resources.items()
        if _references(resource, CHALICE_ROLE)
    )
    if referring:
        raise RoleError(
            f"{', '.join(referring)} still refer to {CHALICE_ROLE}, which no function assumes "
            f"any more: give each grant to the function that needs it, in that function's "
            f"Policies in resources.json"
        )
    return result


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


def prepare_template(
    template: Template, bucket: str, key: str, *, queue_outputs: Collection[str]
) -> Template:
    """Every transformation deploy applies, in order.

    Parameters
    ----------
    template
        Chalice's template.
    bucket, key
        Where the app's package is in S3.
    queue_outputs
        The Output keys of the messaging stack, which name the queues' ARNs
        (:func:`parameterise_queues`).

    Raises
    ------
    UnknownQueueError
        When an SQS event source names a queue the messaging stack does not offer.
    """
    prepared = add_partial_batch_responses(rewrite_code_uris(template, bucket, key))
    prepared = one_role_per_function(parameterise_queues(prepared, queue_outputs))
    if has_rest_api(prepared):
        prepared = add_gateway_responses(prepared)
    return prepared
