"""A CloudFormation update of an ``AWS::IAM::Role``'s inline policies changes them, as on AWS.

LocalStack 4.14.0's Role resource provider updates a role only by replacing it, and only when
its name, trust policy or managed policies changed; any other change is answered with success
and the old state. A deploy that granted a function one more action (an inline ``Policies``
statement) therefore left the role as it was: the stack said ``UPDATE_COMPLETE`` and the
function was denied the new call (seen by the permission audit, ``permission_audit.py``).

:func:`apply_role_updates`, an ``on_infra_start`` hook, wraps the provider's ``update``: after
it, the role's inline policies are made what the template says (each one put, those no longer
declared deleted), and so are its description and longest session.

>>> inline_policy_changes(
...     {"Old": '{"Statement": []}', "Kept": '{"Statement": [{"Action": "a"}]}'},
...     [{"PolicyName": "Kept", "PolicyDocument": {"Statement": [{"Action": "a"}]}},
...      {"PolicyName": "New", "PolicyDocument": {"Statement": [{"Action": "b"}]}}],
... )
({'New': '{"Statement": [{"Action": "b"}], "Version": "2012-10-17"}'}, ['Old'])
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import (
    patch_when_imported,
    wrap_once,
)

LOG = logging.getLogger(__name__)

ROLE_MODULE: Final = "localstack.services.iam.resource_providers.aws_iam_role"
WHAT: Final = "role updates"
POLICY_VERSION: Final = "2012-10-17"


def _document(policy: Mapping[str, Any]) -> dict[str, Any]:
    """An inline policy's document as the role stores it (a ``Version`` always)."""
    document = policy.get("PolicyDocument") or {}
    if isinstance(document, str):
        document = json.loads(document)
    return {**document, "Version": document.get("Version") or POLICY_VERSION}


def inline_policy_changes(
    current: Mapping[str, str], desired: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, str], list[str]]:
    """What turns the role's inline policies ``current`` (name → document JSON) into
    ``desired`` (the template's ``Policies``): the policies to put (name → document JSON), and
    the names to delete."""
    wanted = {
        str(policy["PolicyName"]): _document(policy)
        for policy in desired
        if isinstance(policy, Mapping) and policy.get("PolicyName")
    }
    puts = {
        name: json.dumps(document, sort_keys=True)
        for name, document in wanted.items()
        if name not in current or _document({"PolicyDocument": current[name]}) != document
    }
    return puts, sorted(name for name in current if name not in wanted)


def sync_role(iam: Any, role_name: str, desired: Mapping[str, Any]) -> None:
    """Make the role's inline policies, description and longest session what ``desired`` says."""
    current = {}
    for name in iam.list_role_policies(RoleName=role_name).get("PolicyNames", []):
        document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        current[name] = document if isinstance(document, str) else json.dumps(document)
    puts, deletes = inline_policy_changes(current, desired.get("Policies") or [])
    for name, document in puts.items():
        iam.put_role_policy(RoleName=role_name, PolicyName=name, PolicyDocument=document)
    for name in deletes:
        iam.delete_role_policy(RoleName=role_name, PolicyName=name)
    settings = {
        prop: desired[prop]
        for prop in ("Description", "MaxSessionDuration")
        if desired.get(prop) is not None
    }
    if settings:
        iam.update_role(RoleName=role_name, **settings)
    if puts or deletes:
        LOG.info("role %s: inline policies put %s, deleted %s", role_name, sorted(puts), deletes)


def with_policies_synced(update: Callable[..., Any]) -> Callable[..., Any]:
    """``IAMRoleProvider.update``, then the role's inline policies synced to the template."""

    def update_role(self: Any, request: Any) -> Any:
        result = update(self, request)
        if getattr(getattr(result, "status", None), "name", None) != "SUCCESS":
            return result
        desired = request.desired_state
        model = dict(result.resource_model or {})
        role_name = model.get("RoleName") or (request.previous_state or {}).get("RoleName")
        if not role_name:
            return result
        sync_role(request.aws_client_factory.iam, role_name, desired)
        for prop in ("Policies", "Description", "MaxSessionDuration"):
            if prop in desired:
                model[prop] = desired[prop]
        result.resource_model = model
        return result

    return update_role


def patch_role_provider(module: ModuleType) -> None:
    """Wrap the module's ``IAMRoleProvider.update`` (idempotent)."""
    wrap_once(getattr(module, "IAMRoleProvider", None), "update", with_policies_synced, WHAT)


def apply_role_updates() -> None:
    """Patch the Role resource provider when its module is imported (idempotent)."""
    patch_when_imported({ROLE_MODULE: patch_role_provider}, WHAT)


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_role_updates")(apply_role_updates)
