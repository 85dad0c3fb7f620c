"""Fixtures of the end-to-end tests: every service deployed once per session.

``deployed`` runs ``lambdamesh deploy``'s own code path (:func:`deploy_all`) against the
``emulator``, with the default stack prefix, and hands tests the API URLs, function names
and stack outputs of every service. Packages are cached where the CLI caches them, so a
session after the first one skips ``chalice package`` for unchanged apps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from lambdamesh.deploy import DeployOptions, DeployReport, Target, deploy_all
from lambdamesh.deploy.stacks import existing_stack_outputs
from lambdamesh.emulator.paths import ProjectPaths
from tests.conftest import RunningEmulator

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


@pytest.fixture(scope="session")
def deployed(emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> DeployedSystem:
    """Every service deployed once for the session (default stack names)."""
    state_dir = (emulator.home / "deployments") if emulator.home else tmp_path_factory.mktemp("dep")
    return deploy_system(emulator, state_dir)
