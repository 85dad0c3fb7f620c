"""Fixtures to run the service apps in-process, under moto (loading: ``service_loader``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from moto import mock_aws

from tests.unit.services.service_loader import (
    LoadedService,
    create_tables,
    function_environment,
    load_service,
    service_resources,
)

ServiceFactory = Callable[..., LoadedService]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An in-process AWS (moto) with fake credentials; nothing leaves the process."""
    for variable, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield


@pytest.fixture
def deployed_service(aws: None, monkeypatch: pytest.MonkeyPatch) -> ServiceFactory:
    """Create a service's tables and environment under moto, then load its app.

    Call it as ``deployed_service("orders", UsersApiUrl="http://users.test")``: keyword
    arguments resolve the fragment's ``Parameters`` (its dependencies).
    """

    def deploy(name: str, **parameters: str) -> LoadedService:
        resources = service_resources(name)
        tables = create_tables(resources, prefix=f"test-{name}")
        environment = function_environment(resources, {**tables, **parameters})
        for variable, value in environment.items():
            monkeypatch.setenv(variable, value)
        return load_service(name)

    return deploy
