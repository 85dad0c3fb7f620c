"""Create or update one CloudFormation stack and wait for it, reporting progress."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import StackEventTypeDef, StackTypeDef

Progress = Callable[[str], None]

FINGERPRINT_TAG = "lambdamesh:source-hash"
"""Stack tag holding what the stack was deployed from; equal value → nothing to do."""

CAPABILITIES = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND")

MAX_TEMPLATE_BODY_BYTES = 51_200
"""CloudFormation's limit for an inline template; larger ones go through S3."""

POLL_INTERVAL_S = 0.5
"""How often a stack is read while it settles, on AWS (where a stack takes minutes)."""
EMULATOR_POLL_INTERVAL_S = 0.1
"""The same on an emulator, where a stack settles in 0.3-3 s: a longer pause is mostly wait."""
DEFAULT_TIMEOUT_S = 900.0

_NO_UPDATES = "No updates are to be performed"
_RECREATE_STATES = frozenset(
    {"CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "DELETE_FAILED"}
)
"""States a stack cannot be updated from: a creation that failed (LocalStack ends in
``CREATE_FAILED``, AWS in ``ROLLBACK_COMPLETE``)."""


class StackError(RuntimeError):
    """A stack operation failed; the message names the failed resources and why."""


@dataclass(frozen=True)
class StackResult:
    """The outcome of :func:`apply_stack`.

    Attributes
    ----------
    name
        Stack name.
    action
        ``created``, ``updated``, ``unchanged`` (no update needed per CloudFormation) or
        ``skipped`` (fingerprint tag equal, no call made).
    outputs
        The stack's Outputs.
    """

    name: str
    action: str
    outputs: dict[str, str]


@dataclass(frozen=True)
class StackRequest:
    """What to deploy.

    Attributes
    ----------
    name
        Stack name.
    template
        The template (a dict); sent inline, or through ``upload_template`` when too large.
    parameters
        Parameter values.
    fingerprint
        Goes into the :data:`FINGERPRINT_TAG` tag.
    """

    name: str
    template: Mapping[str, Any]
    parameters: Mapping[str, str]
    fingerprint: str


def describe_stack(cfn: CloudFormationClient, name: str) -> StackTypeDef | None:
    """The stack, or ``None`` if it does not exist."""
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as error:
        if "does not exist" in str(error):
            return None
        raise
    return stacks[0] if stacks else None


def stack_outputs(stack: StackTypeDef) -> dict[str, str]:
    """Output key → value."""
    return {
        output["OutputKey"]: output.get("OutputValue", "")
        for output in stack.get("Outputs", [])
        if "OutputKey" in output
    }


def existing_stack_outputs(cfn: CloudFormationClient, name: str) -> dict[str, str]:
    """The outputs of stack ``name``, which must exist.

    Raises
    ------
    StackError
        When there is no such stack, saying to deploy first.
    """
    stack = describe_stack(cfn, name)
    if stack is None:
        raise StackError(f"stack {name} does not exist: deploy first (lambdamesh deploy)")
    return stack_outputs(stack)


def stack_fingerprint_tag(stack: StackTypeDef) -> str | None:
    """The value of the fingerprint tag, if any."""
    for tag in stack.get("Tags", []):
        if tag.get("Key") == FINGERPRINT_TAG:
            return tag.get("Value")
    return None


def is_current(stack: StackTypeDef | None, fingerprint: str) -> bool:
    """Whether ``stack`` is complete and was deployed from ``fingerprint``."""
    if stack is None or stack_fingerprint_tag(stack) != fingerprint:
        return False
    status = stack["StackStatus"]
    return status.endswith("_COMPLETE") and "ROLLBACK" not in status and "DELETE" not in status


def _template_argument(
    request: StackRequest, upload_template: Callable[[str], str] | None
) -> dict[str, str]:
    body = json.dumps(request.template, separators=(",", ":"))
    if len(body.encode()) <= MAX_TEMPLATE_BODY_BYTES or upload_template is None:
        return {"TemplateBody": body}
    return {"TemplateURL": upload_template(body)}


def apply_stack(
    cfn: CloudFormationClient,
    request: StackRequest,
    *,
    progress: Progress,
    upload_template: Callable[[str], str] | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    poll_interval_s: float = POLL_INTERVAL_S,
) -> StackResult:
    """Create or update a stack and wait until it settles.

    Parameters
    ----------
    cfn
        CloudFormation client.
    request
        Stack name, template, parameters and fingerprint.
    progress
        Receives one line per resource event.
    upload_template
        Stores a template body too large to send inline and returns its URL.
    timeout_s
        Give up waiting after this long.
    poll_interval_s
        The pause between two reads of the stack and its events while it settles.

    Raises
    ------
    StackError
        When the operation fails or rolls back; names each failed resource and its reason.
    """
    existing = describe_stack(cfn, request.name)
    if is_current(existing, request.fingerprint):
        return StackResult(request.name, "skipped", stack_outputs(existing))  # type: ignore[arg-type]
    if existing is not None and existing["StackStatus"] in _RECREATE_STATES:
        # A stack whose creation rolled back cannot be updated; AWS's advice is to delete it.
        progress(f"    {request.name} is {existing['StackStatus']}; deleting it to start over")
        cfn.delete_stack(StackName=request.name)
        _wait(cfn, existing["StackId"], time.time() - 1, progress, timeout_s, poll_interval_s)
        existing = None
    arguments: dict[str, Any] = {
        "StackName": request.name,
        **_template_argument(request, upload_template),
        "Parameters": [
            {"ParameterKey": key, "ParameterValue": value}
            for key, value in sorted(request.parameters.items())
        ],
        "Capabilities": list(CAPABILITIES),
        "Tags": [{"Key": FINGERPRINT_TAG, "Value": request.fingerprint}],
    }
    started = time.time() - 1  # event timestamps have second resolution on some backends
    if existing is None:
        stack_id = cfn.create_stack(**arguments)["StackId"]
        action = "created"
    else:
        try:
            stack_id = cfn.update_stack(**arguments)["StackId"]
        except ClientError as error:
            if _NO_UPDATES not in str(error):
                raise
            # CloudFormation found nothing to change: the stack already is what was asked.
            return StackResult(request.name, "unchanged", stack_outputs(existing))
        action = "updated"
    final = _wait(cfn, stack_id, started, progress, timeout_s, poll_interval_s)
    return StackResult(request.name, action, stack_outputs(final) if final else {})


def _wait(
    cfn: CloudFormationClient,
    stack_id: str,
    since: float,
    progress: Progress,
    timeout_s: float,
    poll_interval_s: float,
) -> StackTypeDef | None:
    # Polled by hand instead of botocore's stack_create_complete waiter: that one sleeps 30 s
    # between polls (an emulated stack settles in ~3 s) and cannot report progress.
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while True:
        stack = describe_stack(cfn, stack_id)
        _report_events(cfn, stack_id, since, seen, progress)
        status = stack["StackStatus"] if stack else "DELETE_COMPLETE"
        if not status.endswith("_IN_PROGRESS"):
            break
        if time.monotonic() > deadline:
            raise StackError(f"{stack_id}: still {status} after {timeout_s:.0f} s")
        time.sleep(poll_interval_s)
    if status == "DELETE_COMPLETE":
        return None
    if "ROLLBACK" in status or status.endswith("_FAILED"):
        raise StackError(_failure_message(cfn, stack_id, status, since))
    return stack


def _events_since(
    cfn: CloudFormationClient, stack_id: str, since: float
) -> list[StackEventTypeDef]:
    events: list[StackEventTypeDef] = []
    for page in cfn.get_paginator("describe_stack_events").paginate(StackName=stack_id):
        fresh = [event for event in page["StackEvents"] if _timestamp(event) >= since]
        events += fresh
        if len(fresh) < len(page["StackEvents"]):
            break  # newest first: the rest is older
    return list(reversed(events))


def _timestamp(event: StackEventTypeDef) -> float:
    moment = event["Timestamp"]
    return moment.timestamp() if isinstance(moment, datetime) else float(moment)


def _report_events(
    cfn: CloudFormationClient, stack_id: str, since: float, seen: set[str], progress: Progress
) -> None:
    for event in _events_since(cfn, stack_id, since):
        if event["EventId"] in seen:
            continue
        seen.add(event["EventId"])
        reason = event.get("ResourceStatusReason")
        suffix = f" ({reason})" if reason and "FAILED" in event.get("ResourceStatus", "") else ""
        progress(
            f"    {event.get('ResourceStatus', '?'):<20} {event.get('ResourceType', '?'):<32} "
            f"{event.get('LogicalResourceId', '?')}{suffix}"
        )


def _failure_message(cfn: CloudFormationClient, stack_id: str, status: str, since: float) -> str:
    # One line per failed resource that says why; the stack's own "failed" events and
    # resources cancelled because of another's failure repeat nothing useful.
    failures = list(
        dict.fromkeys(
            f"  {event.get('LogicalResourceId', '?')} ({event.get('ResourceType', '?')}): "
            f"{event['ResourceStatusReason']}"
            for event in _events_since(cfn, stack_id, since)
            if event.get("ResourceStatus", "").endswith("_FAILED")
            and event.get("ResourceStatusReason")
        )
    )
    stack = describe_stack(cfn, stack_id)
    reason = stack.get("StackStatusReason") if stack else None
    lines = [f"{stack_id}: {status}" + (f" - {reason}" if reason else "")]
    return "\n".join(lines + (failures or ["  (no failed resource reported)"]))
