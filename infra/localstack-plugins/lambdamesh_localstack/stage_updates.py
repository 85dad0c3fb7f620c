"""A CloudFormation update of an ``AWS::ApiGateway::Stage`` updates the stage, as on AWS.

LocalStack 4.14.0's Stage resource provider has no ``update``. Its engine then either keeps the
old state, answering success, or — when it lost the previous state, as with a SAM API whose
routes changed — creates the stage again and fails with ``ConflictException: Stage already
exists``. Either way the stage keeps pointing at the old deployment, and when the old
``AWS::ApiGateway::Deployment`` is removed at the end of the update, LocalStack deletes the
stages that point at it: the API is gone although the stack says ``UPDATE_COMPLETE``. A deploy
that adds or removes a route (SAM names the deployment after a hash of the API's body, so every
such change replaces it) broke the service it updated.

:func:`apply_stage_updates`, an ``on_infra_start`` hook, gives the provider the ``update`` AWS
has: the stage (created if it is missing) is patched to the new deployment, description,
tracing and variables; what CloudFormation does not manage is left alone.

>>> stage_patch(
...     {"DeploymentId": "d1", "Variables": {"a": "1", "b": "2"}},
...     {"DeploymentId": "d2", "Variables": {"a": "1", "c": "3"}, "Description": "new"},
... )  # doctest: +NORMALIZE_WHITESPACE
[{'op': 'replace', 'path': '/deploymentId', 'value': 'd2'},
 {'op': 'replace', 'path': '/description', 'value': 'new'},
 {'op': 'remove', 'path': '/variables/b'},
 {'op': 'replace', 'path': '/variables/c', 'value': '3'}]
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Final

from lambdamesh_localstack.lazy_patching import patch_when_imported

LOG = logging.getLogger(__name__)

STAGE_MODULE: Final = "localstack.services.apigateway.resource_providers.aws_apigateway_stage"
_applied = threading.Lock()
# CloudFormation property → the stage's patch path, for the plain values it manages.
SCALARS: Final = {
    "DeploymentId": "/deploymentId",
    "Description": "/description",
    "TracingEnabled": "/tracingEnabled",
    "CacheClusterEnabled": "/cacheClusterEnabled",
    "CacheClusterSize": "/cacheClusterSize",
}


def stage_patch(previous: Mapping[str, Any], desired: Mapping[str, Any]) -> list[dict[str, str]]:
    """The ``UpdateStage`` patch operations that turn ``previous`` into ``desired``."""
    operations: list[dict[str, str]] = []
    for prop, path in SCALARS.items():
        if prop in desired and desired[prop] != previous.get(prop):
            value = desired[prop]
            text = str(value).lower() if isinstance(value, bool) else str(value)
            operations.append({"op": "replace", "path": path, "value": text})
    old: Mapping[str, Any] = previous.get("Variables") or {}
    new: Mapping[str, Any] = desired.get("Variables") or {}
    operations += [
        {"op": "remove", "path": f"/variables/{name}"} for name in sorted(old) if name not in new
    ]
    operations += [
        {"op": "replace", "path": f"/variables/{name}", "value": str(value)}
        for name, value in sorted(new.items())
        if old.get(name) != value
    ]
    return operations


def update(self: Any, request: Any) -> Any:
    """``ApiGatewayStageProvider.update``: patch the stage, or create it if it is missing."""
    from localstack.services.cloudformation.resource_provider import (  # type: ignore[import-not-found,unused-ignore]
        OperationStatus,
        ProgressEvent,
    )

    model = request.desired_state
    previous = request.previous_state or {}
    apigw = request.aws_client_factory.apigateway
    stage_name = model.get("StageName") or previous.get("StageName") or "default"
    try:
        current = apigw.get_stage(restApiId=model["RestApiId"], stageName=stage_name)
    except apigw.exceptions.NotFoundException:
        return self.create(request)
    known = previous or {"DeploymentId": current.get("deploymentId")}
    operations = stage_patch(known, model)
    if operations:
        apigw.update_stage(
            restApiId=model["RestApiId"], stageName=stage_name, patchOperations=operations
        )
    model["StageName"] = stage_name
    return ProgressEvent(
        status=OperationStatus.SUCCESS, resource_model=model, custom_context=request.custom_context
    )


def patch_stage_provider(module: ModuleType) -> None:
    """Give the module's ``ApiGatewayStageProvider`` its ``update`` (idempotent)."""
    with _applied:
        provider = getattr(module, "ApiGatewayStageProvider", None)
        if provider is None:
            LOG.warning("ApiGatewayStageProvider not found: stage updates left as they are")
            return
        if getattr(provider.update, "__module__", "") == __name__:
            return
        provider.update = update


def apply_stage_updates() -> None:
    """Patch the Stage resource provider when its module is imported (idempotent)."""
    patch_when_imported({STAGE_MODULE: patch_stage_provider}, "stage updates")


try:
    from localstack.runtime import hooks as _localstack_hooks  # type: ignore[import-not-found,unused-ignore]
except ModuleNotFoundError:  # imported without LocalStack, e.g. by unit tests
    pass
else:
    _localstack_hooks.on_infra_start(name="lambdamesh_stage_updates")(apply_stage_updates)
