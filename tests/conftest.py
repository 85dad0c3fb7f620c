"""Shared fixtures: the embedded LocalStack for end-to-end tests.

``emulator`` starts one LocalStack per test session, the first time an e2e test
asks for it, on a free port with a run directory of its own; unit tests never
start it. With ``$LAMBDAMESH_ENDPOINT`` set, the LocalStack there is used as is.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

from lambdamesh.emulator.clients import emulator_client
from lambdamesh.emulator.install import ensure_emulator_installed
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.process import (
    LOCALSTACK_MAIN,
    EmbeddedLocalStack,
    ExternalLocalStack,
)
from lambdamesh.emulator.settings import DEFAULT_HOST
from lambdamesh_toolkit.aws import clients
from lambdamesh_toolkit.deadline import configured_budget_s, use_deadline

ENDPOINT_ENV = "LAMBDAMESH_ENDPOINT"
E2E_DIR = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under ``tests/e2e`` with ``e2e`` (select with ``-m 'not e2e'``)."""
    for item in items:
        if E2E_DIR in item.path.parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def no_deadline() -> Iterator[None]:
    """Each test starts without a request deadline (one test's must not reach the next), and
    reads ``REQUEST_DEADLINE_S`` afresh (a test may set it)."""
    use_deadline(None)
    configured_budget_s.cache_clear()
    yield
    use_deadline(None)
    configured_budget_s.cache_clear()


@pytest.fixture(autouse=True)
def fresh_aws_clients() -> Iterator[None]:
    """Each test builds its own shared AWS clients: a client keeps the environment (region,
    credentials, endpoint) of the test that built it."""
    clients.reset_shared_clients()
    yield
    clients.reset_shared_clients()


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class RunningEmulator:
    """The LocalStack e2e tests talk to.

    Attributes
    ----------
    endpoint_url
        Its base URL, e.g. ``http://127.0.0.1:45123``.
    port
        Its gateway port.
    pid
        LocalStack's process id; ``None`` for an external LocalStack.
    home
        Its run directory (``localstack.log``, state, tmp); ``None`` for an external one.
    """

    endpoint_url: str
    port: int
    pid: int | None
    home: Path | None

    def client(self, service_name: str) -> Any:
        """A boto3 client for ``service_name`` (region us-east-1, test credentials)."""
        return emulator_client(self.endpoint_url, service_name)


def _external(endpoint: str) -> RunningEmulator:
    external = ExternalLocalStack(endpoint)
    health = external.wait_healthy(timeout=30)
    if not health.healthy:
        pytest.fail(f"${ENDPOINT_ENV}={endpoint}: LocalStack is not healthy there")
    port = external.status()["port"] or 4566
    return RunningEmulator(external.endpoint_url, port, embedded_pid(endpoint), None)


def embedded_pid(endpoint: str) -> int | None:
    """The pid of an embedded LocalStack serving ``endpoint`` on this machine (one started with
    ``lambdamesh up``, e.g. from another checkout to compare two versions), so that the
    benchmarks can read its CPU; ``None`` for any other (Docker, another machine)."""
    parsed = urlsplit(endpoint)
    if parsed.hostname not in ("localhost", "127.0.0.1", "::1") or parsed.port is None:
        return None
    for connection in psutil.net_connections(kind="tcp"):
        if (
            connection.status == psutil.CONN_LISTEN
            and connection.laddr
            and connection.laddr.port == parsed.port
            and connection.pid is not None
        ):
            try:
                command = psutil.Process(connection.pid).cmdline()
            except psutil.Error:
                return None
            return connection.pid if LOCALSTACK_MAIN in command else None
    return None


@pytest.fixture(scope="session")
def emulator() -> Iterator[RunningEmulator]:
    """One LocalStack for the whole session: embedded and started here, or external."""
    endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
    if endpoint:
        yield _external(endpoint)
        return
    paths = ProjectPaths.discover()
    ensure_emulator_installed(paths)
    port = free_port()
    run_dir = paths.test_runs / str(port)
    shutil.rmtree(run_dir, ignore_errors=True)
    embedded = EmbeddedLocalStack(port, run_dir, paths=paths)
    try:
        result = embedded.start()
        yield RunningEmulator(embedded.endpoint_url, port, result.pid, embedded.home)
    finally:
        embedded.stop()
