"""A CloudFormation update of an API Gateway stage patches it: deployment, settings, variables."""

from __future__ import annotations

import types
from typing import Any

from lambdamesh_localstack.stage_updates import patch_stage_provider, stage_patch, update


def test_a_new_deployment_and_changed_variables_become_patch_operations() -> None:
    # GIVEN a stage's previous and desired properties
    previous = {"DeploymentId": "d1", "TracingEnabled": False, "Variables": {"a": "1", "b": "2"}}
    desired = {"DeploymentId": "d2", "TracingEnabled": True, "Variables": {"a": "1", "c": "3"}}
    # WHEN / THEN the patch moves the deployment, turns tracing on, drops b and sets c
    assert stage_patch(previous, desired) == [
        {"op": "replace", "path": "/deploymentId", "value": "d2"},
        {"op": "replace", "path": "/tracingEnabled", "value": "true"},
        {"op": "remove", "path": "/variables/b"},
        {"op": "replace", "path": "/variables/c", "value": "3"},
    ]


def test_an_unchanged_stage_needs_no_patch() -> None:
    # GIVEN / WHEN the same properties  THEN nothing to patch
    same = {"DeploymentId": "d1", "Variables": {"a": "1"}}
    assert stage_patch(same, dict(same)) == []


def test_the_provider_gets_the_update_once() -> None:
    # GIVEN a module holding a provider without an update
    class Provider:
        def update(self, request: Any) -> Any:
            raise NotImplementedError

    module = types.ModuleType("aws_apigateway_stage")
    module.ApiGatewayStageProvider = Provider  # type: ignore[attr-defined]
    # WHEN it is patched twice
    patch_stage_provider(module)
    patch_stage_provider(module)
    # THEN its update is the stage update
    assert Provider.update is update
