"""Every request a function makes, checked against its execution role: ``/_lambdamesh/permissions``.

LocalStack's open-source edition does not evaluate IAM policies, so a role that lacks a grant
works here and fails on AWS. A function's environment holds the credentials of its execution
role, as on AWS (LocalStack assumes the role for each execution environment), so the request
says whose it is. :func:`apply_permission_audit`, an ``on_infra_start`` hook, adds a response
handler that, for every AWS request signed with such credentials:

1. finds the role and the session (LocalStack names the session after the function),
2. derives the IAM actions and resource ARNs the request needs (:func:`required_permissions`:
   ``Invoke`` needs ``lambda:InvokeFunction`` on the function, a ``TransactWriteItems`` the
   item actions it holds on each table, a ``PublishBatch`` ``sns:Publish``, ...),
3. evaluates the role's policies, inline and attached, for each with moto's IAM policy
   evaluation (the engine of moto's own access control: ``Deny`` first, wildcards,
   ``NotAction``),

and counts the decision. Nothing is refused: the audit reports, the request goes on.

``GET /_lambdamesh/permissions``
    ``{"decisions": [{"role", "session", "action", "resource", "allowed", "count"}, ...]}``,
    the denied first; ``DELETE`` starts again.

What Lambda does with a function's role is checked too: LocalStack's event source pollers
assume it, as AWS's do, to read a queue or a stream. What it does not see: calls that are not
AWS operations (a SigV4-signed request to an API Gateway route is served by the gateway's
router), and LocalStack's calls under its own credentials. A request whose resource it cannot
name (``GetRecords`` names a shard iterator) is checked for its action alone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlparse

LOG = logging.getLogger(__name__)

PATH: Final = "/_lambdamesh/permissions"
"""Where the decisions are served (``GET``) and forgotten (``DELETE``)."""

EVERY_RESOURCE: Final = "*"

RENAMED_ACTIONS: Final[dict[tuple[str, str], str]] = {
    ("lambda", "Invoke"): "InvokeFunction",
    ("sns", "PublishBatch"): "Publish",
    ("sqs", "SendMessageBatch"): "SendMessage",
    ("sqs", "DeleteMessageBatch"): "DeleteMessage",
    ("sqs", "ChangeMessageVisibilityBatch"): "ChangeMessageVisibility",
}
"""(IAM prefix, operation) → the IAM action it needs, where the names differ."""

TRANSACTION_ITEM_ACTIONS: Final = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}
"""A DynamoDB transaction's item kind → the action it needs (IAM has no transaction action)."""

UNCHECKED_PREFIXES: Final = frozenset({"sts"})
"""Services whose calls need no permission (``GetCallerIdentity``) or set up the credentials."""


@dataclass(frozen=True)
class Permission:
    """An IAM action on a resource (``None``: the request names none this audit can read)."""

    action: str
    resource: str | None


def _arn(prefix: str, region: str, account: str, rest: str) -> str:
    return f"arn:aws:{prefix}:{region}:{account}:{rest}"


def _table(name: str, region: str, account: str, index: str | None = None) -> str:
    arn = name if name.startswith("arn:") else _arn("dynamodb", region, account, f"table/{name}")
    return f"{arn}/index/{index}" if index else arn


def _queue(url: str, region: str, account: str) -> str:
    """A queue's ARN from its URL (``.../<account>/<name>``, as SQS and LocalStack write it)."""
    parts = [part for part in urlparse(url).path.split("/") if part]
    if len(parts) >= 2:
        account, name = parts[-2], parts[-1]
    else:
        name = parts[-1] if parts else url
    return _arn("sqs", region, account, name)


def _function(name: str, region: str, account: str) -> str:
    """A function's ARN from a name, a partial ARN or an ARN, without its qualifier."""
    if name.startswith("arn:"):
        return ":".join(name.split(":")[:7])
    parts = name.split(":")
    if len(parts) >= 3 and parts[1] == "function":  # account:function:name[:qualifier]
        account, name = parts[0], parts[2]
    else:
        name = parts[0]
    return _arn("lambda", region, account, f"function:{name}")


def _dynamodb(
    operation: str, request: Mapping[str, Any], region: str, account: str
) -> list[Permission]:
    if operation in ("TransactWriteItems", "TransactGetItems"):
        return [
            Permission(
                f"dynamodb:{TRANSACTION_ITEM_ACTIONS[kind]}",
                _table(body["TableName"], region, account),
            )
            for item in request.get("TransactItems", [])
            for kind, body in item.items()
            if kind in TRANSACTION_ITEM_ACTIONS
        ]
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [
            Permission(f"dynamodb:{operation}", _table(name, region, account))
            for name in request.get("RequestItems", {})
        ]
    if operation == "ListStreams" or "ShardIterator" in request:
        return [Permission(f"dynamodb:{operation}", None)]
    if "StreamArn" in request:
        return [Permission(f"dynamodb:{operation}", request["StreamArn"])]
    if "TableName" in request:
        table = _table(request["TableName"], region, account, request.get("IndexName"))
        return [Permission(f"dynamodb:{operation}", table)]
    return [Permission(f"dynamodb:{operation}", None)]


def _resource(
    prefix: str, operation: str, request: Mapping[str, Any], region: str, account: str
) -> str | None:
    if prefix == "sns":
        return request.get("TopicArn") or request.get("TargetArn")
    if prefix == "sqs":
        if "QueueUrl" in request:
            return _queue(request["QueueUrl"], region, account)
        if "QueueName" in request:
            owner = request.get("QueueOwnerAWSAccountId") or account
            return _arn("sqs", region, owner, request["QueueName"])
        return None
    if prefix == "lambda" and "FunctionName" in request:
        return _function(request["FunctionName"], region, account)
    if prefix == "ses":
        if operation in ("SendEmail", "SendRawEmail", "SendTemplatedEmail"):
            source = request.get("SourceArn") or request.get("Source")
            if source and not str(source).startswith("arn:"):
                address = str(source).rsplit("<", 1)[-1].rstrip(">").strip()
                return _arn("ses", region, account, f"identity/{address}")
            return source
        return EVERY_RESOURCE  # identities' own operations have no resource type
    return None


def required_permissions(
    prefix: str, operation: str, request: Mapping[str, Any], region: str, account: str
) -> list[Permission]:
    """The IAM permissions a request needs: ``(action, resource ARN)`` pairs.

    Parameters
    ----------
    prefix
        The service's IAM prefix (its signing name: ``dynamodb`` for DynamoDB Streams too).
    operation
        The API operation (``Invoke``, ``TransactWriteItems``, ...).
    request
        The request's parameters, parsed.
    region, account
        Where the request was made, for the ARNs of resources it names by name.

    >>> required_permissions("lambda", "Invoke", {"FunctionName": "rpc"}, "eu-west-1", "1")
    [Permission(action='lambda:InvokeFunction', resource='arn:aws:lambda:eu-west-1:1:function:rpc')]
    >>> [p.action for p in required_permissions("dynamodb", "TransactWriteItems", {
    ...     "TransactItems": [{"Put": {"TableName": "t"}}, {"ConditionCheck": {"TableName": "u"}}]
    ... }, "r", "1")]
    ['dynamodb:PutItem', 'dynamodb:ConditionCheckItem']
    """
    if prefix in UNCHECKED_PREFIXES:
        return []
    if prefix == "dynamodb":
        return _dynamodb(operation, request, region, account)
    action = f"{prefix}:{RENAMED_ACTIONS.get((prefix, operation), operation)}"
    return [Permission(action, _resource(prefix, operation, request, region, account))]


@functools.lru_cache(maxsize=256)
def _policy(document: str, any_resource: bool) -> Any:
    """moto's evaluator of a policy document (with every statement on ``*``: the action only)."""
    from moto.iam.access_control import IAMPolicy

    if not any_resource:
        return IAMPolicy(document)
    parsed = json.loads(document)
    statements = parsed["Statement"]
    parsed["Statement"] = [
        {**{k: v for k, v in statement.items() if k != "NotResource"}, "Resource": EVERY_RESOURCE}
        for statement in (statements if isinstance(statements, list) else [statements])
    ]
    return IAMPolicy(json.dumps(parsed))


def allowed(documents: Iterable[str], permission: Permission) -> bool:
    """Whether the policy documents allow the permission: some statement allows, none denies.

    >>> document = json.dumps({"Statement": [{"Effect": "Allow", "Action": ["sqs:Send*"],
    ...     "Resource": "arn:aws:sqs:r:1:q"}]})
    >>> allowed([document], Permission("sqs:SendMessage", "arn:aws:sqs:r:1:q"))
    True
    >>> allowed([document], Permission("sqs:SendMessage", "arn:aws:sqs:r:1:other"))
    False
    >>> allowed([document], Permission("sqs:SendMessage", None))
    True
    """
    from moto.iam.access_control import PermissionResult

    resource = permission.resource or EVERY_RESOURCE
    results = [
        _policy(document, permission.resource is None).is_action_permitted(
            permission.action, resource
        )
        for document in documents
    ]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


@dataclass(frozen=True)
class Decision:
    """One permission a request signed by a role needed, and whether the role grants it.

    ``session`` is the role session's name: a function's own name for what its code calls,
    another for what Lambda does with the function's role (its event source pollers).
    """

    role: str
    session: str
    action: str
    resource: str | None
    allowed: bool


class Decisions:
    """Decisions counted; safe across threads."""

    def __init__(self) -> None:
        self._counts: Counter[Decision] = Counter()
        self._lock = threading.Lock()

    def add(self, decision: Decision) -> None:
        """Count one decision (logging a denial the first time it is seen)."""
        with self._lock:
            first = decision not in self._counts
            self._counts[decision] += 1
        if first and not decision.allowed:
            LOG.warning(
                "%s (role %s) is not allowed %s on %s: AWS would refuse it",
                decision.session,
                decision.role,
                decision.action,
                decision.resource or "its resource",
            )

    def snapshot(self) -> list[dict[str, Any]]:
        """Every decision with its count: the denied first."""
        with self._lock:
            items = list(self._counts.items())
        items.sort(
            key=lambda item: (item[0].allowed, item[0].role, item[0].action, item[0].resource or "")
        )
        return [{**dataclasses.asdict(decision), "count": count} for decision, count in items]

    def reset(self) -> None:
        """Forget every decision."""
        with self._lock:
            self._counts.clear()


DECISIONS: Final = Decisions()


@dataclass(frozen=True)
class Caller:
    """Whose credentials signed a request: the role, the session (the function), its secret."""

    account: str
    role_name: str
    session: str
    secret_access_key: str
    session_token: str


_callers: dict[str, Caller] = {}


def assumed_role(access_key_id: str, account: str) -> Caller | None:
    """The assumed role an access key belongs to (remembered), or ``None``."""
    if access_key_id in _callers:
        return _callers[access_key_id]
    from moto.sts.models import sts_backends

    assumed = sts_backends[account]["aws"].get_assumed_role_from_access_key(access_key_id)
    if assumed is None:
        return None
    caller = Caller(
        account,
        assumed.role_arn.rsplit("/", 1)[-1],
        assumed.session_name,
        assumed.secret_access_key,
        assumed.session_token,
    )
    _callers[access_key_id] = caller
    return caller


TEMPORARY_KEY_PREFIXES: Final = ("ASIA", "LSIA")
"""How the access key ids of assumed roles begin (AWS's, and LocalStack's own)."""

_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/")


def access_key(authorization: str | None) -> str | None:
    """The access key id of a SigV4 ``Authorization`` header.

    Read here rather than with LocalStack's helper so that the unit tests run without it.

    >>> access_key("AWS4-HMAC-SHA256 Credential=ASIAX/20261203/us-east-1/sqs/aws4_request, ...")
    'ASIAX'
    >>> access_key(None) is None
    True
    """
    match = _CREDENTIAL.search(authorization or "")
    return match[1] if match else None


def role_documents(account: str, role_name: str) -> list[str] | None:
    """The role's inline and attached policy documents, as moto's IAM holds them now.

    ``None`` for a role IAM does not know (LocalStack lets a function name any role ARN).
    """
    from moto.iam.exceptions import NotFoundException
    from moto.iam.models import iam_backends

    backend = iam_backends[account]["aws"]
    try:
        backend.get_role(role_name)
    except NotFoundException:
        return None
    documents = [
        backend.get_role_policy(role_name, name)[1]
        for name in backend.list_role_policies(role_name)
    ]
    attached, _ = backend.list_attached_role_policies(role_name)
    for policy in attached:
        version = next(v for v in policy.versions if v.is_default)
        documents.append(version.document)
    return documents


def audit_request(chain: Any, context: Any, response: Any) -> None:
    """LocalStack response handler: check a request signed by a role against that role."""
    operation = getattr(context, "operation", None)
    if operation is None:
        return
    access_key_id = access_key(context.request.headers.get("Authorization"))
    if not access_key_id or not access_key_id.startswith(TEMPORARY_KEY_PREFIXES):
        return
    try:
        caller = assumed_role(access_key_id, context.account_id)
        if caller is None:
            return
        prefix = operation.service_model.signing_name
        needed = required_permissions(
            prefix, operation.name, context.service_request or {}, context.region, caller.account
        )
        if not needed:
            return
        documents = role_documents(caller.account, caller.role_name)
        if documents is None:
            return
        for permission in needed:
            DECISIONS.add(
                Decision(
                    caller.role_name,
                    caller.session,
                    permission.action,
                    permission.resource,
                    allowed(documents, permission),
                )
            )
    except Exception:  # an audit that fails must never fail the request it watches
        LOG.exception("permission audit of %s failed", operation.name)


def serve_decisions(request: Any, **_: Any) -> Any:
    """``GET``: the decisions as JSON; ``DELETE``: forget them (204)."""
    from localstack.http import Response  # type: ignore[import-not-found,unused-ignore]

    if request.method == "DELETE":
        DECISIONS.reset()
        return Response(status=204)
    return Response.for_json({"decisions": DECISIONS.snapshot()})


def apply_permission_audit() -> None:
    """Audit every request a role signs, serve the decisions (``on_infra_start`` hook)."""
    from localstack.aws.handlers import (  # type: ignore[import-not-found,unused-ignore]
        run_custom_response_handlers,
    )
    from localstack.services.edge import ROUTER  # type: ignore[import-not-found,unused-ignore]

    run_custom_response_handlers.append(audit_request)
    ROUTER.add(PATH, serve_decisions, methods=["GET", "DELETE"])
    LOG.info("requests signed by execution roles checked against them: %s", PATH)


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_permission_audit")(apply_permission_audit)
