"""``lambdamesh deploy --dry-run`` with a target and credentials: the change sets of a deploy.

Every stack is prepared and wired as deploy would (:func:`~lambdamesh.deploy.dry_run.
prepare_all`), from the real outputs of the stacks the target already has; for each, a change
set is created (``CREATE`` for a stack the target lacks, ``UPDATE`` otherwise), described, and
deleted again — with the empty ``REVIEW_IN_PROGRESS`` stack a ``CREATE`` change set leaves
behind. Nothing is executed. What CloudFormation would add, modify (and whether it replaces)
or remove is printed per stack; a stack depending on one that does not exist yet is previewed
with that stack's outputs named (``<stack>.<OutputKey>``), as the plain dry run does.

>>> change = ResourceChange("Modify", "APIHandler", "AWS::Lambda::Function", "False")
>>> print("\\n".join(format_changes([StackChanges("lambdamesh-users", "update", [change])])))
lambdamesh-users: update, 1 change(s)
    Modify  AWS::Lambda::Function  APIHandler
1 stack(s) of 1 would change (1 resource change(s)); nothing was deployed (every change set deleted)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambdamesh.deploy.dry_run import ExistingStack, PreparedStack, prepare_all
from lambdamesh.deploy.runner import DeployOptions
from lambdamesh.deploy.stacks import (
    CAPABILITIES,
    MAX_TEMPLATE_BODY_BYTES,
    POLL_INTERVAL_S,
    StackError,
    describe_stack,
    stack_outputs,
)
from lambdamesh.deploy.target import Target
from lambdamesh.deploy.wiring import DeployedStack

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient

Progress = Callable[[str], None]

CHANGE_SET_TIMEOUT_S = 300.0
# What CloudFormation says of a change set that would change nothing (a FAILED status).
_NOTHING_TO_CHANGE = ("didn't contain changes", "No updates are to be performed")


@dataclass(frozen=True)
class ResourceChange:
    """One resource a change set would touch.

    Attributes
    ----------
    action
        ``Add``, ``Modify``, ``Remove`` (or ``Import``, ``Dynamic``).
    logical_id
        The resource's logical id.
    resource_type
        Its type (after the SAM transform: what CloudFormation would really create).
    replacement
        For ``Modify``: ``True``, ``False`` or ``Conditional``; empty otherwise.
    """

    action: str
    logical_id: str
    resource_type: str
    replacement: str = ""


@dataclass(frozen=True)
class StackChanges:
    """What a deploy would do to one stack.

    Attributes
    ----------
    stack
        The stack's name.
    action
        ``create``, ``update`` or ``none`` (the stack already is what deploy would make).
    changes
        The resources it would touch, in CloudFormation's order.
    """

    stack: str
    action: str
    changes: list[ResourceChange] = field(default_factory=list)


def existing_stacks(target: Target, cfn: CloudFormationClient) -> ExistingStack:
    """The :data:`~lambdamesh.deploy.dry_run.ExistingStack` reader of ``target``: a stack
    that is there, settled, with its real outputs (and its API's URL)."""

    def read(
        service: str, stack: str, template: Mapping[str, Any], stage: str | None
    ) -> DeployedStack | None:
        found = describe_stack(cfn, stack)
        if found is None or not found["StackStatus"].endswith("_COMPLETE"):
            return None
        if found["StackStatus"] in ("ROLLBACK_COMPLETE", "DELETE_COMPLETE"):
            return None
        outputs = stack_outputs(found)
        api_id = outputs.get("RestAPIId")
        api_url = target.api_url(api_id, stage) if api_id and stage else None
        return DeployedStack(service, outputs, api_url)

    return read


def preview_all(
    target: Target, options: DeployOptions, progress: Progress = print
) -> list[StackChanges]:
    """The change set of every stack a deploy with ``options`` would create or update.

    Raises
    ------
    StackError
        When CloudFormation refuses a change set for another reason than "no changes".
    PackagingError, UnresolvedParameterError, UnknownQueueError
        As deploy would, at the same step.
    """
    cfn: CloudFormationClient = target.client("cloudformation")
    prepared = prepare_all(options, progress, existing_stacks(target, cfn))
    bucket = _deployment_bucket(cfn, options)
    previews = []
    for stack in prepared:
        progress(f"==> {stack.stack}: change set")
        previews.append(preview(target, cfn, stack, bucket))
    return previews


def preview(
    target: Target, cfn: CloudFormationClient, stack: PreparedStack, bucket: str | None
) -> StackChanges:
    """Create, read and delete one stack's change set; what it would change."""
    existing = describe_stack(cfn, stack.stack)
    creating = existing is None or existing["StackStatus"] == "REVIEW_IN_PROGRESS"
    name = f"lambdamesh-dry-run-{uuid.uuid4().hex[:12]}"
    arguments: dict[str, Any] = {
        "StackName": stack.stack,
        "ChangeSetName": name,
        "ChangeSetType": "CREATE" if creating else "UPDATE",
        "Parameters": [
            {"ParameterKey": key, "ParameterValue": value}
            for key, value in sorted(stack.parameters.items())
        ],
        "Capabilities": list(CAPABILITIES),
        **_template(target, stack, bucket),
    }
    try:
        cfn.create_change_set(**arguments)
        described = _settled(cfn, stack.stack, name)
        status, reason = described["Status"], described.get("StatusReason", "")
        if status == "FAILED" and not any(words in reason for words in _NOTHING_TO_CHANGE):
            raise StackError(f"{stack.stack}: change set failed: {reason}")
        changes = [] if status == "FAILED" else _changes(cfn, stack.stack, name, described)
    finally:
        _delete(cfn, stack.stack, name, creating)
    action = "create" if creating else ("update" if changes else "none")
    return StackChanges(stack.stack, action, changes)


def _template(target: Target, stack: PreparedStack, bucket: str | None) -> dict[str, str]:
    body = json.dumps(stack.template, separators=(",", ":"))
    if len(body.encode()) <= MAX_TEMPLATE_BODY_BYTES:
        return {"TemplateBody": body}
    if bucket is None:
        raise StackError(
            f"{stack.stack}: its template is over {MAX_TEMPLATE_BODY_BYTES} bytes and must be "
            "read from the deployment bucket, which does not exist yet: deploy the shared "
            "stack first (`lambdamesh deploy --only` names apps; the shared stack always goes)"
        )
    digest = hashlib.sha256(body.encode()).hexdigest()
    key = f"lambdamesh/dry-run/{stack.service}/{digest}.json"
    target.client("s3").put_object(Bucket=bucket, Key=key, Body=body.encode())
    if target.endpoint_url is not None:
        return {"TemplateURL": f"{target.endpoint_url}/{bucket}/{key}"}
    return {"TemplateURL": f"https://{bucket}.s3.{target.region}.amazonaws.com/{key}"}


def _deployment_bucket(cfn: CloudFormationClient, options: DeployOptions) -> str | None:
    shared = describe_stack(cfn, options.stack_name("shared"))
    return stack_outputs(shared).get("DeploymentBucket") if shared else None


def _settled(cfn: CloudFormationClient, stack: str, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + CHANGE_SET_TIMEOUT_S
    while True:
        described: dict[str, Any] = dict(
            cfn.describe_change_set(StackName=stack, ChangeSetName=name)
        )
        if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return described
        if time.monotonic() > deadline:
            raise StackError(f"{stack}: change set still {described['Status']}")
        time.sleep(POLL_INTERVAL_S)


def _changes(
    cfn: CloudFormationClient, stack: str, name: str, first: dict[str, Any]
) -> list[ResourceChange]:
    changes: list[ResourceChange] = []
    page = first
    while True:
        for change in page.get("Changes", []):
            resource = change.get("ResourceChange", {})
            changes.append(
                ResourceChange(
                    str(resource.get("Action", "?")),
                    str(resource.get("LogicalResourceId", "?")),
                    str(resource.get("ResourceType", "?")),
                    str(resource.get("Replacement", "")),
                )
            )
        token = page.get("NextToken")
        if not token:
            return changes
        page = dict(cfn.describe_change_set(StackName=stack, ChangeSetName=name, NextToken=token))


def _delete(cfn: CloudFormationClient, stack: str, name: str, created_stack: bool) -> None:
    """Delete the change set and, for a ``CREATE`` one, the empty stack it made."""
    with contextlib.suppress(ClientError):  # never created, or already gone
        cfn.delete_change_set(StackName=stack, ChangeSetName=name)
    if created_stack:
        found = describe_stack(cfn, stack)
        if found is not None and found["StackStatus"] == "REVIEW_IN_PROGRESS":
            cfn.delete_stack(StackName=stack)


def format_changes(previews: list[StackChanges]) -> list[str]:
    """Each stack with its changes, then the totals."""
    lines: list[str] = []
    for stack in previews:
        lines.append(f"{stack.stack}: {stack.action}, {len(stack.changes)} change(s)")
        width = max((len(change.resource_type) for change in stack.changes), default=0)
        for change in stack.changes:
            replaced = " (replaced)" if change.replacement == "True" else ""
            if change.replacement == "Conditional":
                replaced = " (may be replaced)"
            lines.append(
                f"    {change.action:<6}  {change.resource_type:<{width}}  "
                f"{change.logical_id}{replaced}"
            )
    changed = sum(1 for stack in previews if stack.changes)
    total = sum(len(stack.changes) for stack in previews)
    lines.append(
        f"{changed} stack(s) of {len(previews)} would change ({total} resource change(s)); "
        "nothing was deployed (every change set deleted)"
    )
    return lines
