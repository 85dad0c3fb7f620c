"""Filling a stack's ``Parameters`` from the ``Outputs`` of the stacks deployed before it.

The wiring is mostly a naming convention, so that a new dependency needs no change here.
For a parameter ``P`` of a service's template, in this order:

0. ``P`` is in :data:`EXPLICIT_SOURCES` → the Output named there;
1. a topology stack (:data:`~lambdamesh.deploy.services.TOPOLOGY`: the shared stack, then the
   messaging stack) has an Output named ``P`` (``CircuitBreakerTable``, ``OrdersTopicArn``,
   ``EventFailuresTable``, ``OrdersOutcomesQueueArn``) → its value;
2. ``P`` is ``<Service>ApiUrl`` (``UsersApiUrl``) → the base URL of that service's REST API
   (path form on LocalStack, ``https://{api}.execute-api...`` on AWS), without the trailing
   slash, so that clients join paths to it as ``f"{base}/users/{id}"``;
3. ``P`` is ``<Service><OutputKey>`` (``CatalogFunctionName`` → catalog's Output
   ``FunctionName``) → that Output's value;
4. the parameter has a ``Default`` → left to CloudFormation;
5. otherwise deploy stops with an error naming the parameter.

``<Service>`` is the service name capitalised (``users`` → ``Users``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdamesh.deploy.services import TOPOLOGY

API_URL_SUFFIX = "ApiUrl"

EXPLICIT_SOURCES: dict[str, tuple[str, str]] = {
    # The catalog's RPC function is its Chalice ``lambda_function`` named ``rpc``.
    "CatalogFunctionName": ("catalog", "RpcFunctionName"),
}
"""Parameter → (service, Output key), for names the convention does not cover."""


class UnresolvedParameterError(ValueError):
    """A template parameter that no earlier stack provides and that has no default."""


@dataclass(frozen=True)
class DeployedStack:
    """What later stacks may use of a deployed one.

    Attributes
    ----------
    service
        Service name (``shared`` for the shared stack).
    outputs
        The stack's Outputs (key → value).
    api_url
        Its REST API's base URL, when it has one.
    """

    service: str
    outputs: Mapping[str, str] = field(default_factory=dict)
    api_url: str | None = None


def _prefix(service: str) -> str:
    return "".join(part.capitalize() for part in service.replace("_", "-").split("-"))


def _resolve(name: str, deployed: Mapping[str, DeployedStack]) -> str | None:
    if name in EXPLICIT_SOURCES:
        service, key = EXPLICIT_SOURCES[name]
        source = deployed.get(service)
        if source is not None and key in source.outputs:
            return source.outputs[key]
    for topology in TOPOLOGY:
        offered = deployed.get(topology)
        if offered is not None and name in offered.outputs:
            return offered.outputs[name]
    for service, stack in deployed.items():
        prefix = _prefix(service)
        if not name.startswith(prefix):
            continue
        rest = name.removeprefix(prefix)
        if rest == API_URL_SUFFIX and stack.api_url is not None:
            return stack.api_url.rstrip("/")
        if rest in stack.outputs:
            return stack.outputs[rest]
    return None


def resolve_parameters(
    service: str,
    declared: Mapping[str, Mapping[str, Any]],
    deployed: Mapping[str, DeployedStack],
) -> dict[str, str]:
    """The values of ``service``'s template parameters.

    Parameters
    ----------
    service
        The service whose template declares the parameters (named in errors).
    declared
        The template's ``Parameters`` section.
    deployed
        Stacks deployed before it, by service name.

    Returns
    -------
    dict[str, str]
        Parameter name → value; parameters left to their ``Default`` are absent.

    Raises
    ------
    UnresolvedParameterError
        For a parameter without a source and without a default.
    """
    values: dict[str, str] = {}
    missing: list[str] = []
    for name, declaration in declared.items():
        value = _resolve(name, deployed)
        if value is not None:
            values[name] = value
        elif "Default" not in declaration:
            missing.append(name)
    if missing:
        available = sorted(
            f"{topology}: {key}"
            for topology in TOPOLOGY
            if topology in deployed
            for key in deployed[topology].outputs
        )
        raise UnresolvedParameterError(
            f"{service}: no earlier stack provides parameter(s) {', '.join(missing)}; "
            f"name them <Service><OutputKey>, <Service>ApiUrl or a topology Output "
            f"({', '.join(available) or 'none deployed'})"
        )
    return values
