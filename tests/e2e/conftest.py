"""Fixtures of the end-to-end tests: every service deployed once per session.

When the session ends, the embedded emulator's permission audit (``/_lambdamesh/permissions``)
must hold no call that a role of the deployed system made and that role does not allow: every
test that ran exercised the system's roles, and AWS would have refused what they were missing.

``deployed`` runs ``lambdamesh deploy``'s own code path (:func:`deploy_all`) against the
``emulator``, with the default stack prefix, and hands tests the API URLs, function names
and stack outputs of every service. Packages are cached where the CLI caches them, so a
session after the first one skips ``chalice package`` for unchanged apps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lambdamesh.deploy import DeployOptions, DeployReport, Target, deploy_all
from lambdamesh.deploy.stacks import existing_stack_outputs
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.permissions_status import read_decisions
from tests.conftest import RunningEmulator
from tests.e2e.scheduling import LongestFirstScheduling


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` hands the longest modules out first (:mod:`tests.e2e.scheduling`)."""
    if config.getvalue("dist") == "loadscope":
        return LongestFirstScheduling(config, log)
    return None


SERVICES = ("users", "catalog", "reviews", "orders", "payments", "inventory", "notifications")
"""Every service, in deploy order."""


@dataclass(frozen=True)
class DeployedService:
    """One deployed service.

    Attributes
    ----------
    name
        Service name (``orders``).
    stack
        Its CloudFormation stack.
    api_url
        Base URL of its REST API stage, ending in ``/``; ``None`` for a service without one.
    functions
        Logical id (``APIHandler``, ``Rpc``, ...) → function name.
    outputs
        The stack's outputs (table names, function names).
    """

    name: str
    stack: str
    api_url: str | None
    functions: Mapping[str, str]
    outputs: Mapping[str, str]

    def url(self, path: str) -> str:
        """The full URL of ``path`` on this service's API."""
        assert self.api_url is not None, f"{self.name} has no REST API"
        return self.api_url + path.lstrip("/")


@dataclass(frozen=True)
class DeployedSystem:
    """Every service deployed on the emulator.

    Attributes
    ----------
    report
        What deploy did.
    services
        Service name → its deployment.
    shared_outputs
        Outputs of the shared stack (``CircuitBreakerTable``, ``DeploymentBucket``).
    messaging_outputs
        Outputs of the messaging stack (topic ARNs, queue URLs, the consumers' tables).
    cache_dir
        Where the deployed packages are cached (``<cache_dir>/<service>/...``).
    """

    report: DeployReport
    services: Mapping[str, DeployedService]
    shared_outputs: Mapping[str, str]
    messaging_outputs: Mapping[str, str]
    cache_dir: Path

    def __getitem__(self, service: str) -> DeployedService:
        return self.services[service]

    @property
    def breaker_table(self) -> str:
        """The shared circuit-breaker table."""
        return self.shared_outputs["CircuitBreakerTable"]


def deploy_system(emulator: RunningEmulator, state_dir: Path) -> DeployedSystem:
    """Deploy the shared stack and every service to ``emulator``, as ``lambdamesh deploy`` does.

    Parameters
    ----------
    emulator
        The LocalStack to deploy to.
    state_dir
        Where the deployment record is written.
    """
    paths = ProjectPaths.discover()
    options = DeployOptions(
        apps_dir=paths.root / "functions",
        shared_template=paths.root / "infra" / "topology" / "shared.json",
        cache_dir=paths.state_root / "deploy" / "packages",
        state_dir=state_dir,
        only=frozenset(SERVICES),
    )
    report = deploy_all(Target.localstack(emulator.endpoint_url), options, progress=print)
    cfn = emulator.client("cloudformation")
    services: dict[str, DeployedService] = {}
    for name in SERVICES:
        service = report.service(name)
        services[name] = DeployedService(
            name=name,
            stack=service.stack,
            api_url=service.api_url,
            functions=dict(service.functions),
            outputs=existing_stack_outputs(cfn, service.stack),
        )
    shared = existing_stack_outputs(cfn, options.stack_name("shared"))
    messaging = existing_stack_outputs(cfn, options.stack_name("messaging"))
    return DeployedSystem(report, services, shared, messaging, options.cache_dir)


PERMISSIONS_PATH = "/_lambdamesh/permissions"
MISSING_TABLE = "lambdamesh-no-such-table"
"""What tests point a consumer at to make it fail: no role grants it, and the calls on it that
the audit denies are the fault they mean, not a missing grant."""


def permission_decisions(emulator: RunningEmulator) -> list[dict[str, Any]] | None:
    """The emulator's permission audit (``None`` when it has none: another LocalStack)."""
    return read_decisions(emulator.endpoint_url, timeout_s=10)


def system_decisions(
    decisions: list[dict[str, Any]], system: DeployedSystem
) -> list[dict[str, Any]]:
    """The decisions of the roles of the system's stacks (CloudFormation names a role
    ``<stack>-<logical id>-<suffix>``)."""
    stacks = tuple(f"{service.stack}-" for service in system.services.values())
    return [d for d in decisions if d["role"].startswith(stacks)]


def denied_to_the_system(
    decisions: list[dict[str, Any]], system: DeployedSystem
) -> list[dict[str, Any]]:
    """The denied decisions of the system's roles, but those on :data:`MISSING_TABLE`."""
    return [
        d
        for d in system_decisions(decisions, system)
        if not d["allowed"] and not str(d["resource"]).endswith(f":table/{MISSING_TABLE}")
    ]


@pytest.fixture(scope="session")
def deployed(
    emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeployedSystem]:
    """Every service deployed once for the session (default stack names); at the end, no call
    of its functions (nor of Lambda with their roles) that their roles do not allow."""
    state_dir = (emulator.home / "deployments") if emulator.home else tmp_path_factory.mktemp("dep")
    system = deploy_system(emulator, state_dir)
    yield system
    decisions = permission_decisions(emulator)
    if decisions is not None:
        denied = denied_to_the_system(decisions, system)
        assert denied == [], "calls the roles do not allow (AWS would refuse them):\n" + "\n".join(
            f"  {d['session']} ({d['role']}): {d['action']} on {d['resource']} x{d['count']}"
            for d in denied
        )
