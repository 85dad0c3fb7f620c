"""``lambdamesh deploy --dry-run``: every stack deploy would send, without sending any.

It runs deploy's own steps short of AWS (:func:`~lambdamesh.deploy.runner.prepare_app_stack`):
the apps are packaged (``chalice package``, cached as for a deploy), their templates prepared,
and each stack's parameters wired from the stacks before it — whose outputs do not exist yet,
so each stands as ``<stack>.<OutputKey>``. It needs no credentials and no region, and catches
what would stop a real deploy at its first step: an app that does not package, a parameter no
stack provides, a queue the messaging stack lacks.

>>> stack = PlannedStack("users", "lambdamesh-users", {"Fn": "AWS::Serverless::Function"},
...                      {"UsersTopicArn": "lambdamesh-messaging.UsersTopicArn"})
>>> print("\\n".join(format_plan([stack])))
lambdamesh-users (users): 1 resource(s)
    AWS::Serverless::Function  Fn
    parameter UsersTopicArn = lambdamesh-messaging.UsersTopicArn
1 stack(s), 1 resource(s); nothing was deployed
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lambdamesh.deploy.runner import DeployOptions, prepare_app_stack, topology_parameters
from lambdamesh.deploy.services import discover_apps
from lambdamesh.deploy.wiring import DeployedStack
from lambdamesh.emulator.settings import REGION

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PlannedStack:
    """A stack deploy would create or update.

    Attributes
    ----------
    service
        Its service (``shared``, ``messaging``, ``users``, ...).
    stack
        The stack's name.
    resources
        Logical id → resource type, as in the template (an app's are SAM types, which
        CloudFormation expands when it applies the transform).
    parameters
        Parameter → where its value comes from (``<stack>.<OutputKey>``, or the value itself).
    """

    service: str
    stack: str
    resources: Mapping[str, str]
    parameters: Mapping[str, str]


def _resources(template: Mapping[str, Any]) -> dict[str, str]:
    return {
        logical_id: str(resource.get("Type", "?"))
        for logical_id, resource in template.get("Resources", {}).items()
    }


def placeholder_stack(service: str, stack: str, template: Mapping[str, Any]) -> DeployedStack:
    """A stack as later stacks would see it, its outputs named instead of known
    (``<stack>.<OutputKey>``, its API's URL ``<stack>.ApiUrl``)."""
    return DeployedStack(
        service,
        {key: f"{stack}.{key}" for key in template.get("Outputs", {})},
        api_url=f"{stack}.ApiUrl" if "RestAPI" in template.get("Resources", {}) else None,
    )


@dataclass(frozen=True)
class PreparedStack:
    """A stack as deploy would send it: its template prepared, its parameters wired.

    Attributes
    ----------
    service
        Its service (``shared``, ``messaging``, ``users``, ...).
    stack
        The stack's name.
    template
        The template deploy would send (an app's after
        :func:`~lambdamesh.deploy.runner.prepare_app_stack`).
    parameters
        Parameter → where its value comes from (``<stack>.<OutputKey>``, or the value itself).
    """

    service: str
    stack: str
    template: Mapping[str, Any]
    parameters: Mapping[str, str]


ExistingStack = Callable[[str, str, Mapping[str, Any], str | None], DeployedStack | None]
"""``(service, stack name, template, API stage) → the stack as the target has it`` (its real
outputs), or ``None`` when it is not deployed there."""


def prepare_all(
    options: DeployOptions,
    progress: Progress = print,
    existing: ExistingStack | None = None,
) -> list[PreparedStack]:
    """Every stack of a deploy with ``options``, in deploy order, prepared as deploy would send
    it; nothing is sent anywhere (also what ``lambdamesh topology --from-templates`` reads).

    Parameters
    ----------
    options
        What to deploy.
    progress
        Receives a line per app packaged.
    existing
        The stacks the target already has: later stacks are wired from their real outputs
        (a change set is then what a deploy would do). Without it, or for a stack the target
        lacks, each output stands as ``<stack>.<OutputKey>``.

    Raises
    ------
    PackagingError, UnresolvedParameterError, UnknownQueueError
        As deploy would, at the same step.
    """

    def as_deployed(
        service: str, stack: str, template: Mapping[str, Any], stage: str | None
    ) -> DeployedStack:
        found = existing(service, stack, template, stage) if existing else None
        return found or placeholder_stack(service, stack, template)

    prepared: list[PreparedStack] = []
    deployed: dict[str, DeployedStack] = {}
    for service, template_file in options.topology():
        template: dict[str, Any] = json.loads(template_file.read_text())
        stack = options.stack_name(service)
        parameters = topology_parameters(service, template, deployed, options.stack_prefix)
        prepared.append(PreparedStack(service, stack, template, parameters))
        deployed[service] = as_deployed(service, stack, template, None)
    shared = deployed.get("shared")
    bucket = (shared.outputs.get("DeploymentBucket") if shared else None) or (
        f"{options.stack_name('shared')}.DeploymentBucket"
    )
    for app in discover_apps(options.apps_dir, options.only):
        stack = options.stack_name(app.name)
        progress(f"==> {app.name}: packaging (chalice package, cached)")
        app_stack = prepare_app_stack(app, deployed, bucket, options.cache_dir, REGION)
        prepared.append(PreparedStack(app.name, stack, app_stack.template, app_stack.parameters))
        deployed[app.name] = as_deployed(app.name, stack, app_stack.template, app.api_stage())
    return prepared


def plan_all(options: DeployOptions, progress: Progress = print) -> list[PlannedStack]:
    """Every stack of a deploy with ``options``, in deploy order; nothing is sent anywhere.

    Raises
    ------
    PackagingError, UnresolvedParameterError, UnknownQueueError
        As deploy would, at the same step.
    """
    return [
        PlannedStack(stack.service, stack.stack, _resources(stack.template), stack.parameters)
        for stack in prepare_all(options, progress)
    ]


def format_plan(planned: list[PlannedStack]) -> list[str]:
    """The stacks, each with its resources and parameters, then the totals."""
    lines: list[str] = []
    for stack in planned:
        lines.append(f"{stack.stack} ({stack.service}): {len(stack.resources)} resource(s)")
        width = max((len(kind) for kind in stack.resources.values()), default=0)
        lines += [
            f"    {kind:<{width}}  {logical_id}"
            for logical_id, kind in sorted(stack.resources.items(), key=lambda item: item[::-1])
        ]
        lines += [f"    parameter {name} = {value}" for name, value in stack.parameters.items()]
    total = sum(len(stack.resources) for stack in planned)
    lines.append(f"{len(planned)} stack(s), {total} resource(s); nothing was deployed")
    return lines
