"""The emulator's permission audit: requests signed by a role, checked against that role.

IAM and STS are moto's, in process (LocalStack's are moto's too): a role is created with an
inline policy, assumed as LocalStack assumes a function's role, and requests signed with the
session's key go through the audit's response handler.
"""

from __future__ import annotations

import doctest
import json
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh.deploy.template import LAMBDA_TRUST_POLICY
from lambdamesh_localstack import permission_audit
from lambdamesh_localstack.permission_audit import (
    DECISIONS,
    Permission,
    allowed,
    audit_request,
    required_permissions,
)

ACCOUNT = "123456789012"
REGION = "us-east-1"
TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/orders"
QUEUE_URL = f"http://sqs.{REGION}.localhost:4566/{ACCOUNT}/orders-outcomes"
QUEUE = f"arn:aws:sqs:{REGION}:{ACCOUNT}:orders-outcomes"


def test_the_modules_examples_run() -> None:
    # GIVEN the module's docstring examples  WHEN they run  THEN each gives what it shows
    assert doctest.testmod(permission_audit).failed == 0


@pytest.mark.parametrize(
    ("prefix", "operation", "request_", "expected"),
    [
        ("dynamodb", "GetItem", {"TableName": "orders"}, [("dynamodb:GetItem", TABLE)]),
        (
            "dynamodb",
            "Query",
            {"TableName": "orders", "IndexName": "by_user"},
            [("dynamodb:Query", f"{TABLE}/index/by_user")],
        ),
        ("dynamodb", "PutItem", {"TableName": TABLE}, [("dynamodb:PutItem", TABLE)]),
        (
            "dynamodb",
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Put": {"TableName": "orders"}},
                    {"Update": {"TableName": "claims"}},
                    {"Delete": {"TableName": "orders"}},
                ]
            },
            [
                ("dynamodb:PutItem", TABLE),
                ("dynamodb:UpdateItem", TABLE.replace("orders", "claims")),
                ("dynamodb:DeleteItem", TABLE),
            ],
        ),
        (
            "dynamodb",
            "BatchGetItem",
            {"RequestItems": {"orders": {}, "claims": {}}},
            [
                ("dynamodb:BatchGetItem", TABLE),
                ("dynamodb:BatchGetItem", TABLE.replace("orders", "claims")),
            ],
        ),
        ("dynamodb", "GetRecords", {"ShardIterator": "opaque"}, [("dynamodb:GetRecords", None)]),
        (
            "dynamodb",
            "DescribeStream",
            {"StreamArn": f"{TABLE}/stream/1"},
            [("dynamodb:DescribeStream", f"{TABLE}/stream/1")],
        ),
        ("sqs", "DeleteMessageBatch", {"QueueUrl": QUEUE_URL}, [("sqs:DeleteMessage", QUEUE)]),
        ("sqs", "GetQueueUrl", {"QueueName": "orders-outcomes"}, [("sqs:GetQueueUrl", QUEUE)]),
        ("sns", "PublishBatch", {"TopicArn": "arn:t"}, [("sns:Publish", "arn:t")]),
        (
            "lambda",
            "Invoke",
            {"FunctionName": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:rpc:live"},
            [("lambda:InvokeFunction", f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:rpc")],
        ),
        (
            "ses",
            "SendEmail",
            {"Source": "Shop <shop@example.com>"},
            [("ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/shop@example.com")],
        ),
        (
            "ses",
            "VerifyEmailIdentity",
            {"EmailAddress": "a@b.c"},
            [("ses:VerifyEmailIdentity", "*")],
        ),
        ("sts", "GetCallerIdentity", {}, []),
    ],
)
def test_a_request_needs_the_iam_actions_on_the_resources_it_names(
    prefix: str, operation: str, request_: dict[str, Any], expected: list[tuple[str, str | None]]
) -> None:
    # GIVEN a request  WHEN the permissions it needs are derived
    needed = required_permissions(prefix, operation, request_, REGION, ACCOUNT)
    # THEN they are the actions IAM checks, each on the resource's ARN
    assert [(p.action, p.resource) for p in needed] == expected


def _document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_a_deny_wins_and_an_action_no_statement_allows_is_denied() -> None:
    # GIVEN a policy allowing every item action on the table, and another denying deletes
    allow = _document({"Effect": "Allow", "Action": "dynamodb:*Item", "Resource": TABLE})
    deny = _document({"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": "*"})
    # WHEN permissions are evaluated against both  THEN a put is allowed, a delete refused,
    # and a put on another table allowed by nothing
    assert allowed([allow, deny], Permission("dynamodb:PutItem", TABLE))
    assert not allowed([allow, deny], Permission("dynamodb:DeleteItem", TABLE))
    assert not allowed([allow, deny], Permission("dynamodb:PutItem", f"{TABLE}-other"))
    assert not allowed([], Permission("dynamodb:PutItem", TABLE))


@pytest.fixture
def role_session() -> Iterator[tuple[str, Any]]:
    """A role allowed to send to one queue, assumed as LocalStack assumes a function's role."""
    with mock_aws():
        iam = boto3.client("iam", region_name=REGION)
        trust = json.dumps(LAMBDA_TRUST_POLICY)
        role = iam.create_role(RoleName="ConsumeRole", AssumeRolePolicyDocument=trust)["Role"]
        iam.put_role_policy(
            RoleName="ConsumeRole",
            PolicyName="ConsumeAccess",
            PolicyDocument=_document(
                {"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": QUEUE}
            ),
        )
        credentials = boto3.client("sts", region_name=REGION).assume_role(
            RoleArn=role["Arn"], RoleSessionName="lambdamesh-orders-Consume"
        )["Credentials"]
        DECISIONS.reset()
        yield credentials["AccessKeyId"], iam
        DECISIONS.reset()


def _signed_context(
    access_key_id: str, service: str, operation: str, request_: dict[str, Any]
) -> SimpleNamespace:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={access_key_id}/20261203/{REGION}/{service}/aws4_request, "
        "SignedHeaders=host, Signature=0"
    )
    return SimpleNamespace(
        operation=SimpleNamespace(
            name=operation, service_model=SimpleNamespace(signing_name=service)
        ),
        request=SimpleNamespace(headers={"Authorization": authorization}),
        service_request=request_,
        account_id=ACCOUNT,
        region=REGION,
    )


def test_requests_signed_by_a_role_are_counted_allowed_or_denied_by_its_policies(
    role_session: tuple[str, Any],
) -> None:
    # GIVEN a function's session of a role allowed to send to one queue
    access_key_id, _ = role_session
    # WHEN it sends there twice, sends elsewhere, and deletes from its queue
    for operation, url in [
        ("SendMessage", QUEUE_URL),
        ("SendMessage", QUEUE_URL),
        ("SendMessage", QUEUE_URL.replace("outcomes", "elsewhere")),
        ("DeleteMessage", QUEUE_URL),
    ]:
        audit_request(
            None, _signed_context(access_key_id, "sqs", operation, {"QueueUrl": url}), None
        )
    # THEN the two denials come first, each once, and the allowed send is counted twice, all
    # under the role and the function's session
    decisions = [
        (d["action"], d["resource"].rsplit(":", 1)[-1], d["allowed"], d["count"])
        for d in DECISIONS.snapshot()
    ]
    assert decisions == [
        ("sqs:DeleteMessage", "orders-outcomes", False, 1),
        ("sqs:SendMessage", "orders-elsewhere", False, 1),
        ("sqs:SendMessage", "orders-outcomes", True, 2),
    ]
    assert {(d["role"], d["session"]) for d in DECISIONS.snapshot()} == {
        ("ConsumeRole", "lambdamesh-orders-Consume")
    }


def test_a_grant_added_later_is_seen_by_the_next_request(role_session: tuple[str, Any]) -> None:
    # GIVEN a denied delete
    access_key_id, iam = role_session
    context = _signed_context(access_key_id, "sqs", "DeleteMessage", {"QueueUrl": QUEUE_URL})
    audit_request(None, context, None)
    # WHEN the role is given a policy allowing it (as a stack update would)
    iam.put_role_policy(
        RoleName="ConsumeRole",
        PolicyName="Delete",
        PolicyDocument=_document(
            {"Effect": "Allow", "Action": ["sqs:DeleteMessage"], "Resource": QUEUE}
        ),
    )
    audit_request(None, context, None)
    # THEN the next delete is allowed
    assert [(d["allowed"], d["count"]) for d in DECISIONS.snapshot()] == [(False, 1), (True, 1)]


def test_requests_signed_by_anyone_but_an_assumed_role_are_not_audited(
    role_session: tuple[str, Any],
) -> None:
    # GIVEN a user's long-term key, an unknown temporary key, and an unsigned request
    for key in ("AKIAEXAMPLE", "ASIAUNKNOWN"):
        audit_request(
            None, _signed_context(key, "sqs", "SendMessage", {"QueueUrl": QUEUE_URL}), None
        )
    unsigned = _signed_context("x", "sqs", "SendMessage", {"QueueUrl": QUEUE_URL})
    unsigned.request.headers = {}
    audit_request(None, unsigned, None)
    # THEN nothing is recorded
    assert DECISIONS.snapshot() == []


def test_a_role_iam_does_not_know_is_not_audited(role_session: tuple[str, Any]) -> None:
    # GIVEN a session of a role that was never created (LocalStack lets a function name any ARN)
    credentials = boto3.client("sts", region_name=REGION).assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/never-created", RoleSessionName="test-function"
    )["Credentials"]
    # WHEN it sends a message
    context = _signed_context(
        credentials["AccessKeyId"], "sqs", "SendMessage", {"QueueUrl": QUEUE_URL}
    )
    audit_request(None, context, None)
    # THEN nothing is recorded
    assert DECISIONS.snapshot() == []
