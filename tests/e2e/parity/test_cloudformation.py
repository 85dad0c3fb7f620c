"""CloudFormation updating an API Gateway stage, and a role's inline policies, as AWS does.

Source: the ``AWS::ApiGateway::Stage`` resource reference (``DeploymentId`` is updatable with no
interruption) and the ``AWS::ApiGateway::Deployment`` reference (a new deployment is made by a
new logical id; the old one is deleted after the update). SAM names an API's deployment after
a hash of its body, so every deploy that adds or removes a route takes this path.

Source: the ``AWS::IAM::Role`` reference (``Policies`` is updatable with no interruption): a
deploy that grants a function one more action changes its role's inline policy in place.
"""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any

from lambdamesh.deploy.template import LAMBDA_TRUST_POLICY
from tests.e2e.lambda_support import unique_name


def _template(deployment: str, paths: list[str]) -> str:
    resources: dict[str, Any] = {
        "Api": {"Type": "AWS::ApiGateway::RestApi", "Properties": {"Name": "parity-stage"}}
    }
    for path in paths:
        resources[f"Resource{path}"] = {
            "Type": "AWS::ApiGateway::Resource",
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "ParentId": {"Fn::GetAtt": ["Api", "RootResourceId"]},
                "PathPart": path,
            },
        }
        resources[f"Method{path}"] = {
            "Type": "AWS::ApiGateway::Method",
            "Properties": {
                "RestApiId": {"Ref": "Api"},
                "ResourceId": {"Ref": f"Resource{path}"},
                "HttpMethod": "GET",
                "AuthorizationType": "NONE",
                "Integration": {
                    "Type": "MOCK",
                    "RequestTemplates": {"application/json": '{"statusCode": 200}'},
                    "IntegrationResponses": [
                        {
                            "StatusCode": "200",
                            "ResponseTemplates": {"application/json": f'{{"path": "{path}"}}'},
                        }
                    ],
                },
                "MethodResponses": [{"StatusCode": "200"}],
            },
        }
    resources[deployment] = {
        "Type": "AWS::ApiGateway::Deployment",
        "DependsOn": [f"Method{path}" for path in paths],
        "Properties": {"RestApiId": {"Ref": "Api"}},
    }
    resources["Stage"] = {
        "Type": "AWS::ApiGateway::Stage",
        "Properties": {
            "RestApiId": {"Ref": "Api"},
            "StageName": "api",
            "DeploymentId": {"Ref": deployment},
            "Variables": {"release": deployment},
        },
    }
    return json.dumps({"Resources": resources, "Outputs": {"ApiId": {"Value": {"Ref": "Api"}}}})


def _settled(cfn: Any, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while True:
        stack: dict[str, Any] = cfn.describe_stacks(StackName=name)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        assert time.monotonic() < deadline, f"{name} still {stack['StackStatus']}"
        time.sleep(0.5)


def test_a_stack_update_replacing_an_apis_deployment_moves_its_stage_to_the_new_one(
    emulator: Any,
) -> None:
    # GIVEN a stack with a REST API of one route, its deployment and its stage
    cfn, apigateway = emulator.client("cloudformation"), emulator.client("apigateway")
    name = unique_name("parity-stage")
    cfn.create_stack(StackName=name, TemplateBody=_template("DeploymentA", ["one"]))
    api_id = _settled(cfn, name)["Outputs"][0]["OutputValue"]
    try:
        # WHEN the stack is updated with a second route and so a new deployment
        cfn.update_stack(StackName=name, TemplateBody=_template("DeploymentB", ["one", "two"]))
        updated = _settled(cfn, name)
        # THEN the update completes, the stage is still there, on the new deployment, with
        # the new variables
        assert updated["StackStatus"] == "UPDATE_COMPLETE"
        stage = apigateway.get_stage(restApiId=api_id, stageName="api")
        deployments = [d["id"] for d in apigateway.get_deployments(restApiId=api_id)["items"]]
        assert deployments == [stage["deploymentId"]]
        assert stage["variables"] == {"release": "DeploymentB"}
        # AND both routes answer through the stage
        for path in ("one", "two"):
            url = f"{emulator.endpoint_url}/_aws/execute-api/{api_id}/api/{path}"
            with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 - loopback
                assert json.loads(answer.read()) == {"path": path}
    finally:
        cfn.delete_stack(StackName=name)


def _role_template(actions: list[str], policy_names: list[str]) -> str:
    role = {
        "Type": "AWS::IAM::Role",
        "Properties": {
            "AssumeRolePolicyDocument": LAMBDA_TRUST_POLICY,
            "Policies": [
                {
                    "PolicyName": policy_name,
                    "PolicyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
                    },
                }
                for policy_name in policy_names
            ],
        },
    }
    return json.dumps(
        {"Resources": {"Role": role}, "Outputs": {"RoleName": {"Value": {"Ref": "Role"}}}}
    )


def test_a_stack_update_changing_a_roles_inline_policies_changes_them_on_the_role(
    emulator: Any,
) -> None:
    # GIVEN a stack with a role holding two inline policies
    cfn, iam = emulator.client("cloudformation"), emulator.client("iam")
    name = unique_name("parity-role")
    cfn.create_stack(
        StackName=name,
        TemplateBody=_role_template(["dynamodb:GetItem"], ["Access", "Extra"]),
        Capabilities=["CAPABILITY_IAM"],
    )
    role_name = _settled(cfn, name)["Outputs"][0]["OutputValue"]
    try:
        # WHEN the stack is updated to grant one more action and to drop the second policy
        cfn.update_stack(
            StackName=name,
            TemplateBody=_role_template(["dynamodb:GetItem", "dynamodb:BatchGetItem"], ["Access"]),
            Capabilities=["CAPABILITY_IAM"],
        )
        updated = _settled(cfn, name)
        # THEN the update completes and the role holds the new grant, and only it
        assert updated["StackStatus"] == "UPDATE_COMPLETE"
        assert iam.list_role_policies(RoleName=role_name)["PolicyNames"] == ["Access"]
        document = iam.get_role_policy(RoleName=role_name, PolicyName="Access")["PolicyDocument"]
        [statement] = document["Statement"]
        assert statement["Action"] == ["dynamodb:GetItem", "dynamodb:BatchGetItem"]
    finally:
        cfn.delete_stack(StackName=name)
