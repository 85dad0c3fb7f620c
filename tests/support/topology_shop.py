"""A small system, ``shop``, written once as templates wired the way deploy wires them.

Users publish; orders call users over HTTP and catalog by RPC, publish from a table's stream
(with an on-failure destination) and consume outcomes; a mail queue takes users' events. The
same templates serve as deployed stacks (:func:`deploy_shop`, on moto: deploy's parameters,
deploy's tag) and as what a dry run prepares (:func:`prepared_shop`: each parameter naming the
output it would come from), so the topology readers can be held to telling the same.

moto skips ``AWS::SNS::Subscription`` in CloudFormation: :func:`deploy_shop` makes the messaging
template's subscriptions through SNS, with the same properties.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from lambdamesh.deploy.dry_run import PreparedStack, placeholder_stack
from lambdamesh.deploy.runner import topology_parameters
from lambdamesh.deploy.stacks import FINGERPRINT_TAG
from lambdamesh.deploy.wiring import DeployedStack, resolve_parameters

REGION = "us-east-1"
PREFIX = "shop"
TAGS = [{"Key": FINGERPRINT_TAG, "Value": "test"}]


def _queue(name: str, dead_letter: str | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"QueueName": {"Fn::Sub": f"${{NamePrefix}}-{name}"}}
    if dead_letter is not None:
        properties["RedrivePolicy"] = {
            "deadLetterTargetArn": {"Fn::GetAtt": [dead_letter, "Arn"]},
            "maxReceiveCount": 5,
        }
    return {"Type": "AWS::SQS::Queue", "Properties": properties}


def _subscription(topic: str, queue: str, types: list[str], *, raw: bool) -> dict[str, Any]:
    return {
        "Type": "AWS::SNS::Subscription",
        "Properties": {
            "TopicArn": {"Ref": topic},
            "Protocol": "sqs",
            "Endpoint": {"Fn::GetAtt": [queue, "Arn"]},
            "RawMessageDelivery": raw,
            "FilterPolicy": {"type": types},
        },
    }


MESSAGING: dict[str, Any] = {
    "Parameters": {"NamePrefix": {"Type": "String", "Default": "lambdamesh"}},
    "Resources": {
        "UsersTopic": {
            "Type": "AWS::SNS::Topic",
            "Properties": {"TopicName": {"Fn::Sub": "${NamePrefix}-users"}},
        },
        "OrdersTopic": {
            "Type": "AWS::SNS::Topic",
            "Properties": {
                "TopicName": {"Fn::Sub": "${NamePrefix}-orders.fifo"},
                "FifoTopic": True,
            },
        },
        "MailDeadLetterQueue": _queue("mail-users-dlq"),
        "MailQueue": _queue("mail-users", "MailDeadLetterQueue"),
        "OutcomesDeadLetterQueue": _queue("orders-outcomes-dlq"),
        "OutcomesQueue": _queue("orders-outcomes", "OutcomesDeadLetterQueue"),
        "OrderEventsDeadLetterQueue": _queue("order-events-dlq"),
        "MailFromUsers": _subscription("UsersTopic", "MailQueue", ["user.created"], raw=True),
        "OutcomesFromOrders": _subscription(
            "OrdersTopic", "OutcomesQueue", ["order.placed", "order.cancelled"], raw=False
        ),
    },
    "Outputs": {
        "UsersTopicArn": {"Value": {"Ref": "UsersTopic"}},
        "OrdersTopicArn": {"Value": {"Ref": "OrdersTopic"}},
        "OutcomesQueueArn": {"Value": {"Fn::GetAtt": ["OutcomesQueue", "Arn"]}},
        "OrderEventsDeadLetterQueueArn": {
            "Value": {"Fn::GetAtt": ["OrderEventsDeadLetterQueue", "Arn"]}
        },
    },
}

ROLE = {
    "Type": "AWS::IAM::Role",
    "Properties": {"AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": []}},
}


def _function(variables: dict[str, Any] | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "Runtime": "python3.13",
        "Handler": "app.handler",
        "Role": {"Fn::GetAtt": ["DefaultRole", "Arn"]},
        "Code": {"ZipFile": "def handler(event, context):\n    return None\n"},
    }
    if variables:
        properties["Environment"] = {"Variables": variables}
    return {"Type": "AWS::Lambda::Function", "Properties": properties}


def _parameters(*names: str) -> dict[str, Any]:
    return {name: {"Type": "String"} for name in names}


USERS: dict[str, Any] = {
    "Parameters": _parameters("UsersTopicArn"),
    "Resources": {
        "DefaultRole": ROLE,
        "UsersTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            },
        },
        "APIHandler": _function(
            {"USERS_TOPIC_ARN": {"Ref": "UsersTopicArn"}, "USERS_TABLE": {"Ref": "UsersTable"}}
        ),
        "RestAPI": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "users"}},
        "Route": {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {
                "RestApiId": {"Ref": "RestAPI"},
                "ParentId": {"Fn::GetAtt": ["RestAPI", "RootResourceId"]},
                "PathPart": "users",
            },
        },
        "Post": {
            "Type": "AWS::ApiGateway::Method",
            "Properties": {
                "RestApiId": {"Ref": "RestAPI"},
                "ResourceId": {"Ref": "Route"},
                "HttpMethod": "POST",
                "AuthorizationType": "NONE",
                "Integration": {
                    "Type": "AWS_PROXY",
                    "IntegrationHttpMethod": "POST",
                    "Uri": {
                        "Fn::Sub": "arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/"
                        "functions/${APIHandler.Arn}/invocations"
                    },
                },
            },
        },
    },
    "Outputs": {"RestAPIId": {"Value": {"Ref": "RestAPI"}}},
}

CATALOG: dict[str, Any] = {
    "Resources": {"DefaultRole": ROLE, "Rpc": _function()},
    "Outputs": {"RpcFunctionName": {"Value": {"Ref": "Rpc"}}},
}

ORDERS: dict[str, Any] = {
    "Parameters": _parameters(
        "UsersApiUrl",
        "CatalogRpcFunctionName",
        "OrdersTopicArn",
        "OutcomesQueueArn",
        "OrderEventsDeadLetterQueueArn",
    ),
    "Resources": {
        "DefaultRole": ROLE,
        "OrderEventsTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "StreamSpecification": {"StreamViewType": "NEW_IMAGE"},
            },
        },
        "APIHandler": _function(
            {
                "USERS_API_URL": {"Ref": "UsersApiUrl"},
                "CATALOG_RPC_FUNCTION": {"Ref": "CatalogRpcFunctionName"},
            }
        ),
        "PublishOrderEvents": _function({"ORDERS_TOPIC_ARN": {"Ref": "OrdersTopicArn"}}),
        "HandleOutcomes": _function(),
        "StreamMapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": {"Ref": "PublishOrderEvents"},
                "EventSourceArn": {"Fn::GetAtt": ["OrderEventsTable", "StreamArn"]},
                "StartingPosition": "TRIM_HORIZON",
                "BatchSize": 100,
                "MaximumRetryAttempts": 10,
                "DestinationConfig": {
                    "OnFailure": {"Destination": {"Ref": "OrderEventsDeadLetterQueueArn"}}
                },
            },
        },
        "QueueMapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": {"Ref": "HandleOutcomes"},
                "EventSourceArn": {"Ref": "OutcomesQueueArn"},
                "BatchSize": 10,
            },
        },
    },
}

SHOP: tuple[tuple[str, dict[str, Any]], ...] = (
    ("messaging", MESSAGING),
    ("users", USERS),
    ("catalog", CATALOG),
    ("orders", ORDERS),
)
"""The shop's stacks in deploy order: service, template."""


def stack_name(service: str) -> str:
    """The shop's stack of ``service``."""
    return f"{PREFIX}-{service}"


def _wired(
    service: str, template: Mapping[str, Any], deployed: dict[str, DeployedStack]
) -> dict[str, str]:
    """The parameters deploy gives ``service``'s stack, from the stacks in ``deployed``."""
    if service == "messaging":
        return topology_parameters(service, dict(template), deployed, PREFIX)
    return resolve_parameters(service, template.get("Parameters", {}), deployed)


def prepared_shop() -> list[PreparedStack]:
    """The shop as ``lambdamesh deploy --dry-run`` prepares it: outputs named, not known."""
    deployed: dict[str, DeployedStack] = {}
    stacks = []
    for service, template in SHOP:
        stacks.append(
            PreparedStack(
                service, stack_name(service), template, _wired(service, template, deployed)
            )
        )
        deployed[service] = placeholder_stack(service, stack_name(service), template)
    return stacks


def _subscribe_as_the_template_says(clients: Callable[[str], Any]) -> None:
    """What CloudFormation would do with the messaging template's subscriptions."""
    cfn, sns, sqs = clients("cloudformation"), clients("sns"), clients("sqs")
    physical = {
        resource["LogicalResourceId"]: resource["PhysicalResourceId"]
        for resource in cfn.list_stack_resources(StackName=stack_name("messaging"))[
            "StackResourceSummaries"
        ]
    }
    for resource in MESSAGING["Resources"].values():
        if resource["Type"] != "AWS::SNS::Subscription":
            continue
        properties = resource["Properties"]
        queue_url = physical[properties["Endpoint"]["Fn::GetAtt"][0]]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        sns.subscribe(
            TopicArn=physical[properties["TopicArn"]["Ref"]],
            Protocol="sqs",
            Endpoint=queue_arn["Attributes"]["QueueArn"],
            Attributes={
                "RawMessageDelivery": str(properties["RawMessageDelivery"]).lower(),
                "FilterPolicy": json.dumps(properties["FilterPolicy"]),
            },
        )


def deploy_shop(clients: Callable[[str], Any]) -> None:
    """Deploy the shop's stacks as deploy would; then add what deploy did not make: a stack
    without deploy's tag, and a queue of no stack listening to the users topic."""
    cfn, sns, sqs = clients("cloudformation"), clients("sns"), clients("sqs")
    deployed: dict[str, DeployedStack] = {}
    for service, template in SHOP:
        parameters = _wired(service, template, deployed)
        cfn.create_stack(
            StackName=stack_name(service),
            TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Tags=TAGS,
        )
        outputs = {
            output["OutputKey"]: output["OutputValue"]
            for output in cfn.describe_stacks(StackName=stack_name(service))["Stacks"][0].get(
                "Outputs", []
            )
        }
        api = outputs.get("RestAPIId")
        api_url = f"http://127.0.0.1:4566/_aws/execute-api/{api}/api/" if api else None
        deployed[service] = DeployedStack(service, outputs, api_url)
        if service == "messaging":
            _subscribe_as_the_template_says(clients)
    cfn.create_stack(
        StackName=stack_name("scratch"),
        TemplateBody=json.dumps({"Resources": {"DefaultRole": ROLE, "Stray": _function()}}),
    )
    listener = sqs.create_queue(QueueName=f"{PREFIX}-listener")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=listener, AttributeNames=["QueueArn"])
    sns.subscribe(
        TopicArn=deployed["messaging"].outputs["UsersTopicArn"],
        Protocol="sqs",
        Endpoint=arn["Attributes"]["QueueArn"],
    )
