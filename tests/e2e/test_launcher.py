"""``lambdamesh up / status / down`` drive a real embedded LocalStack from the command line.

Each test starts its own LocalStack through the CLI in a subprocess, on a free port,
exactly as a developer would (the session's ``emulator`` fixture is not used).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import lambdamesh
from lambdamesh.emulator.clients import emulator_client
from lambdamesh.emulator.install import ensure_emulator_installed
from lambdamesh.emulator.paths import ProjectPaths
from tests.e2e.lambda_support import create_function, invoke

pytestmark = pytest.mark.e2e

NOOP_HANDLER = "def handler(event, context):\n    return {'pong': event.get('ping')}\n"


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port: int = server.getsockname()[1]
    return port


def _lambdamesh(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a separate process, as ``.venv/bin/lambdamesh`` would."""
    env = dict(os.environ)
    # The launcher under test is the embedded one, whatever the session uses.
    env.pop("LAMBDAMESH_ENDPOINT", None)
    package_parent = str(Path(lambdamesh.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_parent, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "lambdamesh.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _status(port: int) -> dict[str, Any]:
    completed = _lambdamesh("status", "--json", "--port", str(port))
    assert completed.returncode == 0, completed.stderr
    status: dict[str, Any] = json.loads(completed.stdout)
    return status


def _listening_on(port: int) -> list[Any]:
    return [
        conn
        for conn in psutil.net_connections(kind="tcp")
        if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port
    ]


def _in_process_group(pgid: int) -> list[int]:
    members = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                members.append(process.pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


@pytest.fixture
def port() -> Iterator[int]:
    """A free port; whatever the test leaves running there is stopped and its files removed."""
    ensure_emulator_installed(progress=lambda _: None)
    chosen = _free_port()
    yield chosen
    _lambdamesh("down", "--port", str(chosen))
    shutil.rmtree(ProjectPaths.discover().run_dir(chosen), ignore_errors=True)


def test_up_status_reuse_and_down_leave_nothing_behind(port: int) -> None:
    # GIVEN nothing runs on the port
    assert _status(port)["running"] is False

    # WHEN up starts LocalStack
    started = _lambdamesh("up", "--port", str(port))
    # THEN it reports the endpoint and how to use it, and status --json says it runs
    assert started.returncode == 0, started.stdout + started.stderr
    endpoint = f"http://127.0.0.1:{port}"
    assert f"export AWS_ENDPOINT_URL={endpoint}" in started.stdout
    status = _status(port)
    assert status["running"] is True
    assert status["external"] is False
    assert status["healthy"] is True
    assert status["endpoint"] == endpoint
    pid = status["pid"]

    # WHEN a function is deployed and invoked (so a function process exists)
    lambda_client = emulator_client(endpoint, "lambda")
    function_name = create_function(lambda_client, NOOP_HANDLER)
    payload, error = invoke(lambda_client, function_name, {"ping": 1})
    assert (payload, error) == ({"pong": 1}, None)
    descendants = psutil.Process(pid).children(recursive=True)
    assert descendants, "the invoke left no function process to clean up"

    # WHEN up runs again on the same port
    again = _lambdamesh("up", "--port", str(port))
    # THEN it finds the running one instead of starting another
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    assert _status(port)["pid"] == pid

    # WHEN down runs
    stopped = _lambdamesh("down", "--port", str(port))
    # THEN LocalStack, its process group and its function processes are gone, the port is free
    assert stopped.returncode == 0, stopped.stderr
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert [p.pid for p in descendants if p.is_running()] == []
    assert _in_process_group(pid) == []
    assert _listening_on(port) == []
    assert _status(port)["running"] is False


def test_non_loopback_host_without_opt_in_is_refused_and_starts_nothing(port: int) -> None:
    # GIVEN nothing runs on the port
    # WHEN up is asked to listen on every interface without the opt-in
    refused = _lambdamesh("up", "--port", str(port), "--host", "0.0.0.0")
    # THEN it fails naming the opt-in, and nothing listens on the port
    assert refused.returncode == 2
    assert "--allow-non-loopback" in refused.stderr
    assert _listening_on(port) == []
    assert _status(port)["running"] is False
