"""The emulator's permission audit: every call a role signs is checked against that role.

LocalStack's open-source edition enforces no IAM policy, so a role missing a grant works on the
emulator and fails on AWS. The audit (``lambdamesh_localstack/permission_audit.py``) evaluates
each such call and records the decision; the session's ``deployed`` fixture fails at its end on
any call of the system's roles that was denied. Here: that a denial is seen at all, and that a
journey through the whole system (a sign-up, an order decided, their mails) is
allowed, each function calling under its own role.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from lambdamesh.deploy.template import LAMBDA_TRUST_POLICY
from tests.conftest import RunningEmulator
from tests.e2e.conftest import (
    PERMISSIONS_PATH,
    DeployedSystem,
    denied_to_the_system,
    permission_decisions,
    system_decisions,
)
from tests.e2e.lambda_support import create_function, invoke, unique_name, wait_until
from tests.e2e.test_sync_journey import MUG, call, new_user, order_body

GET_AND_PUT = """\
import os

import boto3


def handler(event, context):
    table = boto3.client("dynamodb")
    key = {"id": {"S": "k"}}
    table.get_item(TableName=os.environ["TABLE"], Key=key)
    table.put_item(TableName=os.environ["TABLE"], Item=key)
    return "done"
"""


@pytest.fixture
def decisions_of(emulator: RunningEmulator) -> Any:
    """Reads the audit's decisions; skips the test on a LocalStack without the audit."""
    if permission_decisions(emulator) is None:
        pytest.skip(f"this LocalStack serves no {PERMISSIONS_PATH}")
    return lambda: permission_decisions(emulator) or []


def test_a_call_the_functions_role_does_not_allow_is_recorded_as_denied(
    emulator: RunningEmulator, decisions_of: Any
) -> None:
    # GIVEN a table, and a role allowed GetItem on it and nothing else
    dynamodb, iam = emulator.client("dynamodb"), emulator.client("iam")
    table = unique_name("audit")
    arn = dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]["TableArn"]
    role_name = unique_name("audit-role")
    role = iam.create_role(
        RoleName=role_name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY)
    )["Role"]
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="read",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": arn}],
            }
        ),
    )
    # WHEN a function assuming it gets an item and puts one
    lambda_client = emulator.client("lambda")
    name = create_function(
        lambda_client, GET_AND_PUT, role=role["Arn"], environment={"TABLE": table}
    )
    assert invoke(lambda_client, name) == ("done", None)
    # THEN the audit allowed the get and denied the put, both under the role and the function
    mine = sorted(
        (d["action"], d["resource"], d["allowed"], d["session"])
        for d in decisions_of()
        if d["role"] == role_name
    )
    assert mine == [
        ("dynamodb:GetItem", arn, True, name),
        ("dynamodb:PutItem", arn, False, name),
    ]


JOURNEY_SERVICES = ("users", "orders", "catalog", "payments", "inventory", "notifications")
"""The services whose functions a sign-up and an order make call AWS (catalog: its RPC)."""


def test_a_journey_through_the_system_is_allowed_each_function_under_its_own_role(
    deployed: DeployedSystem, decisions_of: Any
) -> None:
    # GIVEN a user who signs up and orders  WHEN the order is decided
    user = new_user(deployed, name="Audit")
    answer = call("POST", deployed["orders"].url("orders"), order_body(user["id"], (MUG, 1)))
    assert answer.status == 201, answer.body
    order_id = answer.body["id"]

    def decided() -> bool | None:
        state = call("GET", deployed["orders"].url(f"orders/{order_id}")).body["status"]
        return True if state != "placed" else None

    wait_until(decided, timeout_s=60.0, interval_s=0.5)

    def every_service_seen() -> list[Any] | None:
        decisions = system_decisions(decisions_of(), deployed)
        roles = {d["role"] for d in decisions}
        seen = all(
            any(role.startswith(f"{deployed[service].stack}-") for role in roles)
            for service in JOURNEY_SERVICES
        )
        return decisions if seen else None

    # THEN the audit saw calls under the roles of every service on the way, none denied
    decisions = wait_until(every_service_seen, timeout_s=60.0, interval_s=0.5)
    assert denied_to_the_system(decisions, deployed) == []
    # AND each role is one function's: the calls its sessions named after a function made (as
    # LocalStack names a function's own session) are that one function's
    functions = {
        function
        for service in deployed.services.values()
        for function in service.functions.values()
    }
    by_role: dict[str, set[str]] = {}
    for decision in decisions:
        if decision["session"] in functions:
            by_role.setdefault(decision["role"], set()).add(decision["session"])
    assert len(by_role) >= len(JOURNEY_SERVICES)
    assert all(len(sessions) == 1 for sessions in by_role.values()), by_role
