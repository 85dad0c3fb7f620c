"""What the deployed templates grant, and cfn-lint over them.

The templates are the ones ``lambdamesh deploy`` sends: every app packaged by ``chalice package``
(through the project's package cache, which deploy and the end-to-end tests share) and prepared
by ``prepare_template`` against the messaging stack's Outputs, and the two topology templates as
they are. On SNS, SQS, DynamoDB, SES and Lambda, no statement allows a wildcard action or every
resource (one exception, below, with its reason), every resource is named through a parameter,
a resource of the template or a stack output, and every SQS event source takes its queue from a
parameter that deploy fills from the messaging stack.

One route is internal: ``GET /users/{user_id}`` requires IAM authorisation (``AWS_IAM``, declared
in the API's document as a ``sigv4`` scheme with ``x-amazon-apigateway-authtype: awsSigv4``), and
exactly one statement may invoke it: the orders role's ``UsersLookup``, on that method of the
users API alone, whose id deploy fills from the users stack. (``execute-api`` is not among the
checked services above: an invoke grant names its stage and path parameter with ``*``, so it is
checked here to the letter instead.)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import ManualArgs, lint  # type: ignore[import-untyped]

from lambdamesh.deploy.artifacts import package_key
from lambdamesh.deploy.command import build_options
from lambdamesh.deploy.packaging import package_app
from lambdamesh.deploy.services import MESSAGING, SHARED, discover_apps
from lambdamesh.deploy.template import (
    EVENT_SOURCE_ACTIONS,
    QUEUE_ARN_SUFFIX,
    REST_API,
    declared_parameters,
    has_rest_api,
    prepare_template,
)
from lambdamesh.deploy.wiring import DeployedStack, resolve_parameters
from lambdamesh.emulator.paths import ProjectPaths
from tests.e2e.conftest import DeployedSystem

Template = dict[str, Any]

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
BUCKET = "deployment-bucket"
"""Stands for the shared stack's ``DeploymentBucket`` (only ``CodeUri`` names it)."""

APPS = [app.name for app in discover_apps(ROOT / "functions")]
TEMPLATES = [*APPS, SHARED, MESSAGING]

CHECKED_SERVICES = frozenset({"sns", "sqs", "dynamodb", "ses", "lambda"})
"""Services whose actions must name their resources."""

EVERY_RESOURCE_ALLOWED: dict[tuple[str, str], str] = {
    ("notifications", "ses:VerifyEmailIdentity"): (
        "IAM has no resource type for ses:VerifyEmailIdentity, so it is granted on '*' or not "
        "at all. The seed function calls it because the alternative, declaring the sender as "
        "an AWS::SES::EmailIdentity, fails on LocalStack 4.14.0, whose provider of that type "
        "is an unfinished scaffold (its create raises NotImplementedError), and SES refuses "
        "to send from an unverified address."
    ),
}
"""(template, action) → why that action, alone in its statement, may be allowed on ``*``."""

IGNORED_LINT_RULES: dict[str, str] = {
    "I3011": (
        "DeletionPolicy/UpdateReplacePolicy on tables and queues: the stacks are disposable by "
        "design (the end-to-end tests deploy stacks under prefixes of their own and delete "
        "them, tests/e2e/test_deploy.py and test_messaging_topology.py), and Retain would leave "
        "their tables and queues behind; CloudFormation's default, Delete, is meant."
    ),
    "I3013": (
        "MessageRetentionPeriod on the main queues: SQS's default (4 days) is meant; a message "
        "that keeps failing moves to its dead-letter queue, which keeps it 14 days."
    ),
}
"""cfn-lint rules (informational ones included) whose findings are accepted, and why."""

IAM_AUTH_TYPE_KEY = "x-amazon-apigateway-authtype"
IAM_AUTH_TYPE = "awsSigv4"
"""The value of :data:`IAM_AUTH_TYPE_KEY` in a security scheme that makes a method ``AWS_IAM``."""
INTERNAL_ROUTES = {("users", "GET", "/users/{user_id}")}
"""(app, method, path) of every route that requires IAM authorisation."""
USERS_LOOKUP_GRANT = {
    "Sid": "UsersLookup",
    "Effect": "Allow",
    "Action": ["execute-api:Invoke"],
    "Resource": [
        {
            "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:"
            "${UsersRestAPIId}/*/GET/users/*"
        }
    ],
}
"""The one statement allowed to invoke an internal route: the users lookup, by orders."""

PSEUDO_PARAMETER = "AWS::"
SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")
IDENTITY_POLICY_TYPES = frozenset({"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"})
RESOURCE_POLICY_TYPES = frozenset(
    {"AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy", "AWS::S3::BucketPolicy"}
)


@pytest.fixture(scope="module")
def templates(
    deployed: DeployedSystem, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Template]:
    """Every template deploy sends, by name: the apps' (prepared), then shared and messaging.

    The apps are packaged as deploy packages them, in the project's package cache; asked for
    after the system is ``deployed``, so that every package is there already (an end-to-end
    test for that reason: ``chalice package`` fetches the apps' pinned wheels when it builds).
    """
    options = build_options(ProjectPaths(ROOT), tmp_path_factory.mktemp("state"))
    topology: dict[str, Template] = {
        name: json.loads(path.read_text()) for name, path in options.topology()
    }
    queue_outputs = frozenset(topology[MESSAGING]["Outputs"])
    prepared: dict[str, Template] = {}
    for app in discover_apps(options.apps_dir):
        packaged = package_app(app, options.cache_dir, REGION)
        prepared[app.name] = prepare_template(
            json.loads(packaged.template_file.read_text()),
            BUCKET,
            package_key(app.name, packaged.package_file),
            queue_outputs=queue_outputs,
        )
    return {**prepared, **topology}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _documents(logical_id: str, resource: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """The policy documents of a resource (trust policies aside), each with where it is."""
    kind = resource.get("Type")
    properties = resource.get("Properties", {})
    if kind == "AWS::IAM::Role":
        for policy in properties.get("Policies", []):
            yield f"{logical_id}/{policy.get('PolicyName')}", policy.get("PolicyDocument", {})
    elif kind in IDENTITY_POLICY_TYPES or kind in RESOURCE_POLICY_TYPES:
        yield logical_id, properties.get("PolicyDocument", {})
    elif kind == "AWS::Serverless::Function":
        for index, policy in enumerate(_as_list(properties.get("Policies", []))):
            if isinstance(policy, dict) and "Statement" in policy:
                yield f"{logical_id}/Policies/{index}", policy


def statements(template: Template) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every identity or resource policy, with where it is."""
    for logical_id, resource in template.get("Resources", {}).items():
        for where, document in _documents(logical_id, resource):
            for index, statement in enumerate(_as_list(document.get("Statement", []))):
                yield f"{where}/{statement.get('Sid') or index}", statement


def _service(action: str) -> str:
    return action.split(":", 1)[0].lower()


def checked_actions(statement: Mapping[str, Any]) -> list[str]:
    """The statement's actions on the checked services (``*`` counts as every service)."""
    actions = [*_as_list(statement.get("Action", [])), *_as_list(statement.get("NotAction", []))]
    return [a for a in actions if a == "*" or _service(a) in CHECKED_SERVICES]


def names_by_reference(resource: Any) -> bool:
    """Whether a policy's resource is named through the template, not spelt out.

    A ``Ref`` (a parameter or a resource of the template), an ``Fn::GetAtt``, an
    ``Fn::ImportValue`` (another stack's output), or an ``Fn::Sub`` that takes at least one
    name from the template (not only ``${AWS::Region}`` and the like).
    """
    if not isinstance(resource, dict) or len(resource) != 1:
        return False
    (function, argument), *_ = resource.items()
    if function in ("Ref", "Fn::GetAtt", "Fn::ImportValue"):
        return True
    if function == "Fn::Sub":
        pattern = argument[0] if isinstance(argument, list) else argument
        variables = SUB_VARIABLE.findall(str(pattern))
        return any(not variable.startswith(PSEUDO_PARAMETER) for variable in variables)
    return False


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def sqs_event_sources(template: Template) -> Iterator[tuple[str, Any]]:
    """Every SQS event source's queue: SAM ``SQS`` events, and mappings on a queue."""
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function":
            for event_id, event in properties.get("Events", {}).items():
                if event.get("Type") == "SQS":
                    yield f"{logical_id}/{event_id}", event.get("Properties", {}).get("Queue")
        elif resource.get("Type") == "AWS::Lambda::EventSourceMapping":
            source = properties.get("EventSourceArn")
            if ":sqs:" in json.dumps(source) or _is_queue(template, source):
                yield logical_id, source


def _is_queue(template: Template, reference: Any) -> bool:
    """Whether a ``Ref`` or ``Fn::GetAtt`` points at a queue (a queue ARN parameter, a queue)."""
    if not isinstance(reference, dict):
        return False
    if "Ref" in reference:
        return str(reference["Ref"]).endswith(QUEUE_ARN_SUFFIX)
    target = reference.get("Fn::GetAtt")
    logical_id = target[0] if isinstance(target, list) else str(target).split(".")[0]
    resource = template.get("Resources", {}).get(logical_id, {})
    return bool(resource.get("Type") == "AWS::SQS::Queue")


def _parameter_of(template: Template, queue: Any) -> str | None:
    """The parameter an event source's queue is, if it is one."""
    if isinstance(queue, dict) and list(queue) == ["Ref"]:
        name = queue["Ref"]
        return str(name) if name in declared_parameters(template) else None
    return None


@pytest.mark.parametrize("name", TEMPLATES)
def test_no_statement_allows_a_wildcard_action_on_sns_sqs_dynamodb_ses_or_lambda(
    templates: dict[str, Template], name: str
) -> None:
    # GIVEN the template deploy sends  WHEN its policies' statements are read
    found = [
        f"{where}: {action}"
        for where, statement in statements(templates[name])
        for action in checked_actions(statement)
        if "*" in action
    ]
    found += [
        f"{where}: NotAction"
        for where, statement in statements(templates[name])
        if "NotAction" in statement and statement.get("Effect") == "Allow"
    ]
    # THEN each names the actions it allows, one by one
    assert found == []


@pytest.mark.parametrize("name", TEMPLATES)
def test_no_statement_allows_every_resource_but_the_one_that_iam_cannot_scope(
    templates: dict[str, Template], name: str
) -> None:
    # GIVEN the template's statements on the checked services
    found = []
    for where, statement in statements(templates[name]):
        actions = checked_actions(statement)
        if not actions:
            continue
        resources = statement.get("Resource", [])
        everything = any("*" in text for text in _strings(resources)) or "NotResource" in statement
        allowed = len(actions) == 1 and (name, actions[0]) in EVERY_RESOURCE_ALLOWED
        if everything and not allowed:
            found.append(f"{where}: {', '.join(actions)}")
    # THEN none allows every resource, nor a pattern of them, except the action listed with
    # its reason
    assert found == []


def test_every_allowed_exception_is_still_needed(templates: dict[str, Template]) -> None:
    # GIVEN the actions that may be allowed on every resource
    used = {
        (name, action)
        for name in TEMPLATES
        for _, statement in statements(templates[name])
        if _as_list(statement.get("Resource")) == ["*"]
        for action in checked_actions(statement)
    }
    # THEN each is granted so by its template: an exception nothing needs is removed
    assert set(EVERY_RESOURCE_ALLOWED) <= used


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_resource_is_named_by_a_parameter_a_resource_or_an_output(
    templates: dict[str, Template], name: str
) -> None:
    # GIVEN the resources of the template's statements on the checked services
    found = [
        f"{where}: {json.dumps(resource)}"
        for where, statement in statements(templates[name])
        if checked_actions(statement)
        for resource in _as_list(statement.get("Resource", []))
        if resource != "*" and not names_by_reference(resource)
    ]
    # THEN each takes its name from the template (Ref, GetAtt, Sub of a name, ImportValue)
    assert found == []


@pytest.mark.parametrize("name", TEMPLATES)
def test_no_statement_names_a_resource_of_the_system_literally(
    templates: dict[str, Template], name: str
) -> None:
    # GIVEN every statement of the template, whatever its service
    found = [
        f"{where}: {text}"
        for where, statement in statements(templates[name])
        for text in _strings([statement.get("Resource"), statement.get("NotResource")])
        if "lambdamesh-" in text
    ]
    # THEN no resource spells out a name of the system (names depend on the stack prefix)
    assert found == []


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_sqs_event_source_takes_its_queue_from_a_parameter(
    templates: dict[str, Template], name: str
) -> None:
    # GIVEN the template's SQS event sources
    template = templates[name]
    found = [
        f"{where}: {json.dumps(queue)}"
        for where, queue in sqs_event_sources(template)
        if _parameter_of(template, queue) is None
    ]
    # THEN each queue is a parameter of the template
    assert found == []


def _functions(template: Template) -> dict[str, dict[str, Any]]:
    """The template's functions (logical id → properties)."""
    return {
        logical_id: resource.get("Properties", {})
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == "AWS::Serverless::Function"
    }


def _role_of(properties: Mapping[str, Any]) -> str:
    role = properties.get("Role", {})
    assert isinstance(role, dict), f"a role not of the template: {role}"
    assert "Fn::GetAtt" in role, f"a role not of the template: {role}"
    return str(role["Fn::GetAtt"][0])


@pytest.mark.parametrize("name", APPS)
def test_every_function_assumes_a_role_of_its_own_that_only_lambda_may_assume(
    templates: dict[str, Template], name: str
) -> None:
    # GIVEN the app's functions and the roles of its template
    template = templates[name]
    functions = _functions(template)
    roles = {
        logical_id: resource["Properties"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }
    # WHEN the role each function assumes is read
    assumed = [_role_of(properties) for properties in functions.values()]
    # THEN each function has its own, no role is left over, and Lambda alone may assume them
    assert sorted(assumed) == sorted(roles)
    assert len(set(assumed)) == len(functions)
    for role in roles.values():
        [trust] = role["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert trust["Action"] == "sts:AssumeRole"


def _role_statements(template: Template, role: str) -> list[dict[str, Any]]:
    """The statements of the role's inline policies."""
    return [statement for where, statement in statements(template) if where.startswith(f"{role}/")]


@pytest.mark.parametrize("name", APPS)
def test_each_functions_role_polls_exactly_the_queues_it_consumes(
    templates: dict[str, Template], name: str
) -> None:
    template = templates[name]
    for function, properties in _functions(template).items():
        # GIVEN a function's SQS event sources and the statements of its role granting the
        # poller's actions
        consumed = sorted(
            _parameter_of(template, event["Properties"]["Queue"]) or "?"
            for event in properties.get("Events", {}).values()
            if event.get("Type") == "SQS"
        )
        polled = [
            sorted(_parameter_of(template, queue) or "?" for queue in _as_list(s["Resource"]))
            for s in _role_statements(template, _role_of(properties))
            if set(_as_list(s.get("Action"))) & EVENT_SOURCE_ACTIONS
            and set(_as_list(s.get("Action"))) <= EVENT_SOURCE_ACTIONS
        ]
        # THEN a function without queues has no such grant, and a consumer's is on its queues
        assert polled == ([consumed] if consumed else []), function


def test_every_queue_of_the_messaging_stack_is_consumed_by_exactly_one_function(
    templates: dict[str, Template],
) -> None:
    # GIVEN the queues the messaging stack offers (their DLQs aside)
    offered = {
        key
        for key in templates[MESSAGING]["Outputs"]
        if key.endswith(QUEUE_ARN_SUFFIX) and "DeadLetter" not in key
    }
    # WHEN the apps' event sources are counted by queue
    consumed = Counter(
        _parameter_of(templates[name], queue)
        for name in APPS
        for _, queue in sqs_event_sources(templates[name])
    )
    # THEN each queue has one consumer, and every consumer's queue is one of them
    assert consumed == dict.fromkeys(offered, 1)


def test_deploy_fills_every_parameter_of_every_app_from_the_stacks_before_it(
    templates: dict[str, Template],
) -> None:
    # GIVEN the topology stacks deployed, each Output's value standing for itself
    deployed = {
        name: DeployedStack(name, {key: f"{name}:{key}" for key in templates[name]["Outputs"]})
        for name in (SHARED, MESSAGING)
    }
    for name in APPS:
        template = templates[name]
        # WHEN deploy wires an app, in deploy order
        values = resolve_parameters(name, declared_parameters(template), deployed)
        # THEN every parameter without a default has a value, and each queue's and dead-letter
        # queue's ARN is the messaging stack's Output of that name
        required = {
            key for key, value in declared_parameters(template).items() if "Default" not in value
        }
        assert required <= set(values), name
        queues = {key for key in values if key.endswith(QUEUE_ARN_SUFFIX)}
        assert {values[key] for key in queues} == {f"{MESSAGING}:{key}" for key in queues}
        api_url = f"https://{name}.example/api" if has_rest_api(template) else None
        outputs = {key: f"{name}:{key}" for key in template.get("Outputs", {})}
        deployed[name] = DeployedStack(name, outputs, api_url)


def api_document(template: Template) -> dict[str, Any]:
    """The OpenAPI/Swagger document of the template's REST API (empty without one)."""
    properties = template.get("Resources", {}).get(REST_API, {}).get("Properties", {})
    document: dict[str, Any] = properties.get("DefinitionBody", properties.get("Body", {}))
    return document


def iam_routes(template: Template) -> set[tuple[str, str]]:
    """(method, path) of every route of the template's API that requires IAM authorisation."""
    document = api_document(template)
    schemes = document.get("securityDefinitions", {}) or document.get("components", {}).get(
        "securitySchemes", {}
    )
    iam = {
        name for name, scheme in schemes.items() if scheme.get(IAM_AUTH_TYPE_KEY) == IAM_AUTH_TYPE
    }
    return {
        (method.upper(), path)
        for path, operations in document.get("paths", {}).items()
        for method, operation in operations.items()
        if isinstance(operation, dict)
        for requirement in operation.get("security", document.get("security", []))
        if set(requirement) & iam
    }


def test_only_the_users_lookup_requires_iam_in_the_templates_deploy_sends(
    templates: dict[str, Template],
) -> None:
    # GIVEN every app's template as deploy sends it
    # WHEN the methods of their APIs that require IAM authorisation are collected
    found = {(name, method, path) for name in APPS for method, path in iam_routes(templates[name])}
    # THEN the users lookup is the one internal route (API Gateway makes it AWS_IAM); sign-up and
    # every other route stay public
    assert found == INTERNAL_ROUTES
    assert ("POST", "/users") not in iam_routes(templates["users"])


def test_exactly_the_orders_role_may_invoke_the_users_lookup(
    templates: dict[str, Template],
) -> None:
    # GIVEN every statement of every template that grants an API Gateway action
    grants = [
        (name, where, statement)
        for name in TEMPLATES
        for where, statement in statements(templates[name])
        if any(
            action == "*" or _service(action) in {"execute-api", "apigateway"}
            for action in _as_list(statement.get("Action", []))
        )
    ]
    # THEN there is one: UsersLookup, execute-api:Invoke on the lookup's method alone, in the
    # role of orders' API handler, which no other function assumes
    assert [(name, where) for name, where, _ in grants] == [
        ("orders", "APIHandlerRole/APIHandlerAccess/UsersLookup")
    ]
    assert grants[0][2] == USERS_LOOKUP_GRANT
    assumed_by = [
        function
        for function, properties in _functions(templates["orders"]).items()
        if _role_of(properties) == "APIHandlerRole"
    ]
    assert assumed_by == ["APIHandler"]
    # AND no resource policy on the users API lets anyone else in
    assert "x-amazon-apigateway-policy" not in api_document(templates["users"])
    assert "Policy" not in templates["users"]["Resources"][REST_API]["Properties"]
    # AND the API it names is the users stack's, filled in by deploy's wiring
    users = DeployedStack("users", {"RestAPIId": "users-api-id"}, "https://users.example/api")
    declared = declared_parameters(templates["orders"])
    assert resolve_parameters(
        "orders", {"UsersRestAPIId": declared["UsersRestAPIId"]}, {"users": users}
    ) == {"UsersRestAPIId": "users-api-id"}


@pytest.fixture(scope="module")
def lint_findings(templates: dict[str, Template]) -> dict[str, list[Any]]:
    """cfn-lint's findings on every template: errors, warnings and informational ones."""
    config = ManualArgs(regions=[REGION], include_checks=["I"])
    return {
        name: list(lint(json.dumps(template), config=config))
        for name, template in templates.items()
    }


def _finding(match: Any) -> str:
    return f"{match.rule.id} line {match.linenumber}: {match.message}"


@pytest.mark.parametrize("name", TEMPLATES)
def test_cfn_lint_finds_nothing_but_the_rules_ignored_with_a_reason(
    lint_findings: dict[str, list[Any]], name: str
) -> None:
    # GIVEN cfn-lint's findings on the template (SAM transform included)
    found = [
        _finding(match) for match in lint_findings[name] if match.rule.id not in IGNORED_LINT_RULES
    ]
    # THEN there are none but those of the ignored rules
    assert found == []


def test_every_ignored_lint_rule_still_finds_something(
    lint_findings: dict[str, list[Any]],
) -> None:
    # GIVEN the findings on every template  THEN each ignored rule is still needed
    reported = {match.rule.id for matches in lint_findings.values() for match in matches}
    assert set(IGNORED_LINT_RULES) <= reported
