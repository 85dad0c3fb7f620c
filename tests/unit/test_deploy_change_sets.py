"""``deploy --dry-run`` with a target: each stack's change set, created, read and deleted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh.deploy.change_sets import ResourceChange, StackChanges, format_changes, preview
from lambdamesh.deploy.dry_run import PreparedStack
from lambdamesh.deploy.target import Target

REGION = "us-east-1"


def _template(*queues: str) -> dict[str, Any]:
    return {
        "Resources": {
            name: {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": name.lower()}}
            for name in queues
        }
    }


@pytest.fixture
def cfn() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("cloudformation", region_name=REGION)


def _aws() -> Target:
    return Target(None, REGION)


def test_a_stack_the_target_lacks_is_previewed_as_a_create_and_leaves_nothing_behind(
    cfn: Any,
) -> None:
    # GIVEN a stack that is not deployed
    stack = PreparedStack("users", "lambdamesh-users", _template("Inbox", "Outbox"), {})
    # WHEN its change set is previewed
    changes = preview(_aws(), cfn, stack, bucket=None)
    # THEN every resource would be added
    assert changes.action == "create"
    assert sorted((c.action, c.logical_id) for c in changes.changes) == [
        ("Add", "Inbox"),
        ("Add", "Outbox"),
    ]
    # AND neither the change set nor the empty stack it made is left
    remaining = [
        s["StackName"]
        for s in cfn.list_stacks()["StackSummaries"]
        if s["StackStatus"] != "DELETE_COMPLETE"
    ]
    assert "lambdamesh-users" not in remaining


def test_a_deployed_stack_is_previewed_as_an_update_and_is_not_changed(cfn: Any) -> None:
    # GIVEN a deployed stack with one queue, and a template adding a second
    cfn.create_stack(StackName="lambdamesh-users", TemplateBody=json.dumps(_template("Inbox")))
    stack = PreparedStack("users", "lambdamesh-users", _template("Inbox", "Outbox"), {})
    # WHEN its change set is previewed
    changes = preview(_aws(), cfn, stack, bucket=None)
    # THEN the new queue would be added
    assert changes.action == "update"
    assert ("Add", "Outbox") in [(c.action, c.logical_id) for c in changes.changes]
    # AND the stack still holds one queue and no change set
    resources = cfn.list_stack_resources(StackName="lambdamesh-users")["StackResourceSummaries"]
    assert [r["LogicalResourceId"] for r in resources] == ["Inbox"]
    assert cfn.list_change_sets(StackName="lambdamesh-users")["Summaries"] == []


def test_the_preview_says_what_would_be_replaced() -> None:
    # GIVEN a preview with a replacing modification and a stack without changes
    previews = [
        StackChanges(
            "lambdamesh-orders",
            "update",
            [ResourceChange("Modify", "OrdersTable", "AWS::DynamoDB::Table", "True")],
        ),
        StackChanges("lambdamesh-users", "none"),
    ]
    # WHEN it is printed
    lines = format_changes(previews)
    # THEN the replacement is called out and the totals count only the changing stack
    assert "    Modify  AWS::DynamoDB::Table  OrdersTable (replaced)" in lines
    assert "lambdamesh-users: none, 0 change(s)" in lines
    assert lines[-1].startswith("1 stack(s) of 2 would change (1 resource change(s))")
