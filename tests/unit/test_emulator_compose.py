"""``localstack-compose.yml`` runs the same LocalStack, with the same settings, in Docker."""

from __future__ import annotations

from typing import Any

import pytest
import yaml  # type: ignore[import-untyped, unused-ignore]

from lambdamesh.emulator.install import pinned_version
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.settings import SHARED_SETTINGS

HOST_MODE_ONLY = (
    "OVERRIDE_IN_DOCKER",
    "TMPDIR",
    "FILESYSTEM_ROOT",
    "XDG_CACHE_HOME",
    "GATEWAY_SERVER",
    "LAMBDA_RUNTIME_EXECUTOR",
    "PROVIDER_OVERRIDE_DYNAMODB",
    "PROVIDER_OVERRIDE_DYNAMODBSTREAMS",
)


@pytest.fixture(scope="module")
def localstack_service() -> dict[str, Any]:
    paths = ProjectPaths.discover()
    compose = yaml.safe_load(paths.compose_file.read_text())
    service: dict[str, Any] = compose["services"]["localstack"]
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service["environment"]
    if isinstance(raw, list):
        return dict(str(item).split("=", 1) for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def test_image_tag_is_the_embedded_localstack_core_pin(localstack_service: dict[str, Any]) -> None:
    # GIVEN the compose file and the emulator's requirements
    pin = pinned_version(ProjectPaths.discover().requirements, "localstack-core")
    # WHEN the image is read  THEN it is LocalStack at exactly that version
    assert localstack_service["image"] == f"localstack/localstack:{pin}"


def test_ports_are_published_on_loopback_only(localstack_service: dict[str, Any]) -> None:
    # GIVEN the compose file  WHEN its port bindings are read
    ports = [str(port) for port in localstack_service["ports"]]
    # THEN every one is bound to 127.0.0.1, and the gateway is among them
    assert ports
    assert all(port.startswith("127.0.0.1:") for port in ports), ports
    assert "127.0.0.1:4566:4566" in ports


def test_shared_settings_have_the_embedded_values(localstack_service: dict[str, Any]) -> None:
    # GIVEN the compose file's environment  WHEN compared with the embedded settings
    env = _environment(localstack_service)
    # THEN every shared setting is present with the same value
    assert {name: env.get(name) for name in SHARED_SETTINGS} == SHARED_SETTINGS


def test_host_mode_settings_are_left_out(localstack_service: dict[str, Any]) -> None:
    # GIVEN the compose file's environment  WHEN host-mode-only names are looked up
    env = _environment(localstack_service)
    # THEN none is there: in Docker LocalStack's own executor and providers run
    assert not set(HOST_MODE_ONLY) & set(env)
