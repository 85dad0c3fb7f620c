"""Transformations of Chalice's SAM template: CodeUri, partial batch responses, queues named
by parameters, one role per function granting what it declares and its own queues, functions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from lambdamesh.deploy.packaging import PackagedApp, package_app
from lambdamesh.deploy.services import ServiceApp
from lambdamesh.deploy.template import (
    EVENT_SOURCE_ACTIONS,
    REPORT_BATCH_ITEM_FAILURES,
    RoleError,
    UnknownQueueError,
    add_partial_batch_responses,
    function_logical_ids,
    has_rest_api,
    one_role_per_function,
    parameterise_queues,
    prepare_template,
    queue_output_key,
    rewrite_code_uris,
    role_id,
)

APP_SOURCE = """\
from chalice import Chalice

app = Chalice(app_name="lambdamesh-consumer")


@app.route("/ping")
def ping():
    return {"ok": True}


@app.lambda_function(name="rpc")
def rpc(event, context):
    return event


@app.on_sqs_message(queue="lambdamesh-consumer-orders", batch_size=5)
def on_order_placed(event):
    return None
"""

CONFIG = (
    '{"version": "2.0", "app_name": "lambdamesh-consumer", "automatic_layer": false,'
    ' "stages": {"dev": {"autogen_policy": true}}}'
)

QUEUE_PARAMETER = "ConsumerOrdersQueueArn"
"""The messaging stack's Output for the app's queue ``lambdamesh-consumer-orders``."""

QUEUE_OUTPUTS = frozenset({QUEUE_PARAMETER, "ConsumerOrdersDeadLetterQueueArn", "OrdersTopicArn"})
"""Output keys of a messaging stack that offers the app's queue."""

MESSAGING_TEMPLATE: dict[str, Any] = json.loads(
    (Path(__file__).parents[2] / "infra" / "topology" / "messaging.json").read_text()
)


def write_app(root: Path, source: str = APP_SOURCE) -> ServiceApp:
    """A Chalice app with a route, a lambda_function and an SQS handler at ``root``."""
    (root / ".chalice").mkdir(parents=True, exist_ok=True)
    (root / "app.py").write_text(source)
    (root / "requirements.txt").write_text("")
    (root / ".chalice" / "config.json").write_text(CONFIG)
    return ServiceApp(root.name, root)


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> PackagedApp:
    """Chalice's real output (``chalice package``, no network) for :data:`APP_SOURCE`."""
    app = write_app(tmp_path_factory.mktemp("apps") / "consumer")
    return package_app(app, tmp_path_factory.mktemp("cache"), "us-east-1")


@pytest.fixture
def template(packaged: PackagedApp) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(packaged.template_file.read_text())
    return loaded


def _sqs_events(template: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        event
        for resource in template["Resources"].values()
        for event in resource.get("Properties", {}).get("Events", {}).values()
        if event["Type"] == "SQS"
    ]


def test_rewrite_code_uris_points_every_function_at_the_s3_object(
    template: dict[str, Any],
) -> None:
    # GIVEN Chalice's template, whose functions name ./deployment.zip
    assert {
        resource["Properties"]["CodeUri"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    } == {"./deployment.zip"}
    # WHEN the CodeUris are rewritten
    rewritten = rewrite_code_uris(template, "bucket", "lambdamesh/consumer/abc.zip")
    # THEN all three functions load from S3, and the input is unchanged
    uris = {
        logical_id: resource["Properties"]["CodeUri"]
        for logical_id, resource in rewritten["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert set(uris) == {"APIHandler", "Rpc", "OnOrderPlaced"}
    assert set(uris.values()) == {"s3://bucket/lambdamesh/consumer/abc.zip"}
    assert template["Resources"]["APIHandler"]["Properties"]["CodeUri"] == "./deployment.zip"


def test_sqs_event_sources_report_batch_item_failures(template: dict[str, Any]) -> None:
    # GIVEN Chalice's template for an on_sqs_message handler, which has no response types
    assert [
        event["Properties"].get("FunctionResponseTypes") for event in _sqs_events(template)
    ] == [None]
    # WHEN partial batch responses are added
    transformed = add_partial_batch_responses(template)
    # THEN the SQS event source reports item failures and keeps Chalice's other settings
    (event,) = _sqs_events(transformed)
    assert event["Properties"]["FunctionResponseTypes"] == [REPORT_BATCH_ITEM_FAILURES]
    assert event["Properties"]["BatchSize"] == 5


def test_partial_batch_responses_are_added_once_when_applied_twice(
    template: dict[str, Any],
) -> None:
    # GIVEN a template already transformed  WHEN transformed again
    twice = add_partial_batch_responses(add_partial_batch_responses(template))
    # THEN the response type is listed once
    (event,) = _sqs_events(twice)
    assert event["Properties"]["FunctionResponseTypes"] == [REPORT_BATCH_ITEM_FAILURES]


def test_plain_event_source_mappings_on_a_queue_report_batch_item_failures() -> None:
    # GIVEN a merge template with mappings on a queue of the template, on a literal queue ARN
    # and on a DynamoDB stream
    template: dict[str, Any] = {
        "Resources": {
            "Queue": {"Type": "AWS::SQS::Queue"},
            "FromQueue": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]}},
            },
            "FromArn": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": "arn:aws:sqs:us-east-1:000000000000:q"},
            },
            "FromStream": {
                "Type": "AWS::Lambda::EventSourceMapping",
                "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Table", "StreamArn"]}},
            },
            "Table": {"Type": "AWS::DynamoDB::Table"},
        }
    }
    # WHEN partial batch responses are added
    resources = add_partial_batch_responses(template)["Resources"]
    # THEN only the queue mappings get them
    assert resources["FromQueue"]["Properties"]["FunctionResponseTypes"] == [
        REPORT_BATCH_ITEM_FAILURES
    ]
    assert resources["FromArn"]["Properties"]["FunctionResponseTypes"] == [
        REPORT_BATCH_ITEM_FAILURES
    ]
    assert "FunctionResponseTypes" not in resources["FromStream"]["Properties"]


def test_prepare_template_applies_every_transformation(template: dict[str, Any]) -> None:
    # GIVEN Chalice's template  WHEN prepared for deploy
    prepared = prepare_template(template, "b", "k.zip", queue_outputs=QUEUE_OUTPUTS)
    # THEN CodeUris are in S3, the SQS source reports item failures and takes its queue from a
    # parameter, and only the consumer's own role polls, that queue alone
    assert prepared["Resources"]["Rpc"]["Properties"]["CodeUri"] == "s3://b/k.zip"
    (event,) = _sqs_events(prepared)
    assert event["Properties"]["FunctionResponseTypes"] == [REPORT_BATCH_ITEM_FAILURES]
    assert event["Properties"]["Queue"] == {"Ref": QUEUE_PARAMETER}
    assert _statements(prepared, "OnOrderPlaced") == [
        {
            "Sid": "EventSourceQueues",
            "Effect": "Allow",
            "Action": sorted(EVENT_SOURCE_ACTIONS),
            "Resource": [{"Ref": QUEUE_PARAMETER}],
        }
    ]
    assert _statements(prepared, "Rpc") == _statements(prepared, "APIHandler") == []
    assert has_rest_api(prepared)
    assert function_logical_ids(prepared) == ["APIHandler", "OnOrderPlaced", "Rpc"]


def _statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    """The statements of the inline policies of the role ``function`` assumes."""
    properties = template["Resources"][function]["Properties"]
    role = properties["Role"]["Fn::GetAtt"][0]
    return [
        statement
        for policy in template["Resources"][role]["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def test_an_sqs_event_source_takes_its_queue_from_the_messaging_stacks_output(
    template: dict[str, Any],
) -> None:
    # GIVEN Chalice's template, whose SQS event source names its queue literally
    (event,) = _sqs_events(template)
    assert "lambdamesh-consumer-orders" in event["Properties"]["Queue"]["Fn::Sub"]
    # WHEN its queues are parameterised against a messaging stack that offers the queue
    transformed = parameterise_queues(template, QUEUE_OUTPUTS)
    # THEN the source names a parameter of the Output's name, declared without a default (deploy
    # fills it), and the input is unchanged
    (event,) = _sqs_events(transformed)
    assert event["Properties"]["Queue"] == {"Ref": QUEUE_PARAMETER}
    assert event["Properties"]["BatchSize"] == 5
    declared = transformed["Parameters"][QUEUE_PARAMETER]
    assert declared["Type"] == "String"
    assert "Default" not in declared
    assert QUEUE_PARAMETER not in template.get("Parameters", {})


def test_a_queue_parameter_the_template_declares_keeps_its_declaration_and_twice_is_once(
    template: dict[str, Any],
) -> None:
    # GIVEN a template (its resources.json) declaring the queue's parameter itself
    own = {"Type": "String", "Description": "the consumer's queue"}
    declaring = {**template, "Parameters": {QUEUE_PARAMETER: own}}
    # WHEN its queues are parameterised, twice
    once = parameterise_queues(declaring, QUEUE_OUTPUTS)
    twice = parameterise_queues(once, QUEUE_OUTPUTS)
    # THEN the declaration is the template's, and the second pass changes nothing
    assert once["Parameters"] == {QUEUE_PARAMETER: own}
    assert twice == once


def test_a_queue_the_messaging_stack_does_not_offer_is_refused_naming_function_and_queue(
    template: dict[str, Any],
) -> None:
    # GIVEN a messaging stack offering other queues only
    offered = {"PaymentsOrdersQueueArn", "OrdersTopicArn"}
    # WHEN the template's queues are parameterised  THEN deploy stops, saying what is missing
    with pytest.raises(
        UnknownQueueError,
        match=r"OnOrderPlaced: .*'lambdamesh-consumer-orders'.*ConsumerOrdersQueueArn.*"
        r"offers PaymentsOrdersQueueArn\)",
    ):
        parameterise_queues(template, offered)


def test_a_queue_named_outside_the_apps_prefix_is_refused() -> None:
    # GIVEN an event source on a literal queue ARN whose name lacks the apps' prefix
    template: dict[str, Any] = {
        "Resources": {
            "Consume": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "Events": {
                        "Source": {
                            "Type": "SQS",
                            "Properties": {"Queue": "arn:aws:sqs:us-east-1:1:other-orders"},
                        }
                    }
                },
            }
        }
    }
    # WHEN its queues are parameterised  THEN the queue is refused by name
    with pytest.raises(UnknownQueueError, match=r"Consume: queue 'other-orders' is not named"):
        parameterise_queues(template, {"OtherOrdersQueueArn"})


def test_every_queue_of_the_messaging_template_maps_to_the_output_of_its_arn() -> None:
    # GIVEN the messaging template's queues (not their DLQs), named as the apps name them
    resources = MESSAGING_TEMPLATE["Resources"]
    arn_outputs = {
        output["Value"]["Fn::GetAtt"][0]: key
        for key, output in MESSAGING_TEMPLATE["Outputs"].items()
        if "Fn::GetAtt" in output["Value"]
    }
    queues = {
        logical_id: resource["Properties"]["QueueName"]["Fn::Sub"].replace(
            "${NamePrefix}", "lambdamesh"
        )
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::SQS::Queue" and "DeadLetter" not in logical_id
    }
    assert len(queues) == 7
    # WHEN each name is mapped  THEN it gives the Output holding that queue's ARN
    for logical_id, name in queues.items():
        assert queue_output_key(name) == arn_outputs[logical_id], name


def test_chalices_shared_role_grants_every_queue_and_is_replaced_by_one_role_per_function(
    template: dict[str, Any],
) -> None:
    # GIVEN Chalice's template: one role for every function, polling every queue
    shared = template["Resources"]["DefaultRole"]["Properties"]["Policies"][0]["PolicyDocument"]
    assert {"Effect": "Allow", "Action": sorted(EVENT_SOURCE_ACTIONS), "Resource": "*"} in [
        {**statement, "Action": sorted(statement["Action"])} for statement in shared["Statement"]
    ]
    # WHEN each function is given its own role
    resources = one_role_per_function(parameterise_queues(template, QUEUE_OUTPUTS))["Resources"]
    # THEN the shared role is gone, each function assumes a role of its own, trusted by Lambda
    # alone, and each role's log policy names its function's log group only
    assert "DefaultRole" not in resources
    for function in ("APIHandler", "OnOrderPlaced", "Rpc"):
        role = resources[role_id(function)]
        assert resources[function]["Properties"]["Role"] == {
            "Fn::GetAtt": [role_id(function), "Arn"]
        }
        [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
        logs = resources[f"{function}Logs"]["Properties"]
        assert logs["Roles"] == [{"Ref": role_id(function)}]
        [statement] = logs["PolicyDocument"]["Statement"]
        assert [r["Fn::Sub"] for r in statement["Resource"]] == [
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
            f"/aws/lambda/${{{function}}}",
            "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:"
            f"/aws/lambda/${{{function}}}:*",
        ]


def _function(**properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Properties": {"Role": {"Fn::GetAtt": ["DefaultRole", "Arn"]}, **properties},
    }


def _sqs_sources(*queues: str) -> dict[str, Any]:
    return {
        f"Source{index}": {"Type": "SQS", "Properties": {"Queue": {"Ref": queue}}}
        for index, queue in enumerate(queues)
    }


SEND = {"Sid": "Send", "Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": ["q"]}
READ = {"Sid": "Read", "Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": ["t"]}


def test_each_role_holds_its_functions_declared_statements_and_polls_its_own_queues() -> None:
    # GIVEN two consumers (one with two sources on two queues, one source repeated), each
    # declaring its statements in SAM's Policies, and a function declaring nothing
    template: dict[str, Any] = {
        "Resources": {
            "DefaultRole": {"Type": "AWS::IAM::Role", "Properties": {}},
            "First": _function(
                Events=_sqs_sources("AQueueArn", "BQueueArn", "AQueueArn"),
                Policies=[{"Version": "2012-10-17", "Statement": [SEND]}],
            ),
            "Second": _function(
                Events=_sqs_sources("AQueueArn"),
                Policies=[{"Statement": READ}, {"Statement": [SEND]}],
            ),
            "Quiet": _function(),
        }
    }
    # WHEN each function is given its own role, twice over the same input
    prepared = one_role_per_function(template)
    # THEN each role holds its function's statements then the poller's grant on its own queues
    # (each once, in order), the Policies are gone from the functions, and the input is as it was
    poll = {"Sid": "EventSourceQueues", "Effect": "Allow", "Action": sorted(EVENT_SOURCE_ACTIONS)}
    assert _statements(prepared, "First") == [
        SEND,
        {**poll, "Resource": [{"Ref": "AQueueArn"}, {"Ref": "BQueueArn"}]},
    ]
    assert _statements(prepared, "Second") == [
        READ,
        SEND,
        {**poll, "Resource": [{"Ref": "AQueueArn"}]},
    ]
    assert _statements(prepared, "Quiet") == []
    assert "Policies" not in prepared["Resources"]["First"]["Properties"]
    assert one_role_per_function(template) == prepared
    assert "Policies" in template["Resources"]["First"]["Properties"]


def test_a_grant_left_on_chalices_shared_role_is_refused_naming_it() -> None:
    # GIVEN a policy still attached to Chalice's role, which no function will assume
    template: dict[str, Any] = {
        "Resources": {
            "DefaultRole": {"Type": "AWS::IAM::Role", "Properties": {}},
            "Api": _function(),
            "AppAccess": {
                "Type": "AWS::IAM::Policy",
                "Properties": {"Roles": [{"Ref": "DefaultRole"}], "PolicyDocument": {}},
            },
        }
    }
    # WHEN each function is given its own role  THEN deploy stops, naming the policy
    with pytest.raises(RoleError, match=r"AppAccess still refer to DefaultRole"):
        one_role_per_function(template)


@pytest.mark.parametrize(
    "policies",
    [["AWSLambdaSQSQueueExecutionRole"], [{"SQSPollerPolicy": {"QueueName": "q"}}]],
    ids=["managed policy", "SAM policy template"],
)
def test_a_managed_policy_or_policy_template_in_a_functions_policies_is_refused(
    policies: list[Any],
) -> None:
    # GIVEN a function asking for a managed policy or a SAM policy template (both grant on
    # resources the function does not name)
    template = {"Resources": {"Api": _function(Policies=policies)}}
    # WHEN it is given its own role  THEN deploy stops, naming the function
    with pytest.raises(RoleError, match=r"^Api: its Policies may hold policy documents only"):
        one_role_per_function(template)
