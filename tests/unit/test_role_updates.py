"""A CloudFormation update of a role's inline policies changes them, as on AWS (moto's IAM)."""

from __future__ import annotations

import enum
import json
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh.deploy.template import LAMBDA_TRUST_POLICY
from lambdamesh_localstack.lazy_patching import APPLIED_PATCHES
from lambdamesh_localstack.role_updates import (
    WHAT,
    inline_policy_changes,
    patch_role_provider,
    with_policies_synced,
)
from tests.support.fake_aws import use_fake_aws


def grant(*actions: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }


class Status(enum.Enum):
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"


@dataclass
class Event:
    status: Status
    resource_model: dict[str, Any] = field(default_factory=dict)


@dataclass
class Request:
    desired_state: dict[str, Any]
    previous_state: dict[str, Any]
    aws_client_factory: Any


@pytest.fixture
def iam(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_aws(monkeypatch)
    with mock_aws():
        client = boto3.client("iam", region_name="us-east-1")
        client.create_role(
            RoleName="FnRole", AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST_POLICY)
        )
        client.put_role_policy(
            RoleName="FnRole", PolicyName="FnAccess", PolicyDocument=json.dumps(grant("a:Get"))
        )
        client.put_role_policy(
            RoleName="FnRole", PolicyName="Dropped", PolicyDocument=json.dumps(grant("a:Old"))
        )
        yield client


def inline(iam: Any) -> dict[str, Any]:
    names = iam.list_role_policies(RoleName="FnRole")["PolicyNames"]
    return {
        name: iam.get_role_policy(RoleName="FnRole", PolicyName=name)["PolicyDocument"]
        for name in names
    }


def localstack_update(self: Any, request: Request) -> Event:
    """What LocalStack 4.14.0 answers for a change of inline policies: the old state."""
    return Event(Status.SUCCESS, dict(request.previous_state))


def test_an_update_makes_the_roles_inline_policies_what_the_template_declares(iam: Any) -> None:
    # GIVEN a role with two inline policies, and a template that changes one and drops the other
    previous = {"RoleName": "FnRole", "Policies": [{"PolicyName": "FnAccess"}]}
    desired = {
        "RoleName": "FnRole",
        "Description": "the function's role",
        "Policies": [{"PolicyName": "FnAccess", "PolicyDocument": grant("a:Get", "a:BatchGet")}],
    }
    request = Request(desired, previous, types.SimpleNamespace(iam=iam))
    # WHEN the provider's update runs, wrapped
    result = with_policies_synced(localstack_update)(None, request)
    # THEN the role holds exactly the declared policy, with its new statement
    assert inline(iam) == {"FnAccess": grant("a:Get", "a:BatchGet")}
    assert iam.get_role(RoleName="FnRole")["Role"]["Description"] == "the function's role"
    # AND the state CloudFormation keeps is the template's
    assert result.resource_model["Policies"] == desired["Policies"]


def test_a_failed_update_is_left_as_it_is(iam: Any) -> None:
    # GIVEN an update the provider failed
    def failing(self: Any, request: Request) -> Event:
        return Event(Status.FAILED)

    desired = {"RoleName": "FnRole", "Policies": []}
    request = Request(desired, {"RoleName": "FnRole"}, types.SimpleNamespace(iam=iam))
    # WHEN it runs wrapped
    result = with_policies_synced(failing)(None, request)
    # THEN nothing was changed on the role
    assert result.status is Status.FAILED
    assert set(inline(iam)) == {"FnAccess", "Dropped"}


def test_unchanged_policies_are_not_put_again() -> None:
    # GIVEN a stored policy (without a Version) and the same one declared
    current = {"P": json.dumps({"Statement": [{"Action": "a"}]})}
    declared = [{"PolicyName": "P", "PolicyDocument": {"Statement": [{"Action": "a"}]}}]
    # WHEN / THEN there is nothing to put or delete
    assert inline_policy_changes(current, declared) == ({}, [])


def test_the_provider_is_wrapped_once() -> None:
    # GIVEN a module holding a provider
    class IAMRoleProvider:
        def update(self, request: Any) -> Any:
            raise NotImplementedError

    module = types.ModuleType("aws_iam_role")
    module.IAMRoleProvider = IAMRoleProvider  # type: ignore[attr-defined]
    # WHEN it is patched twice
    patch_role_provider(module)
    first = IAMRoleProvider.update
    patch_role_provider(module)
    # THEN its update carries this patch, once
    assert IAMRoleProvider.update is first
    assert WHAT in getattr(first, APPLIED_PATCHES)
