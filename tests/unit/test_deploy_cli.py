"""``lambdamesh deploy`` arguments and its refusal when there is nowhere to deploy."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lambdamesh import cli


@pytest.fixture
def empty_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project root with nothing running, selected by LAMBDAMESH_HOME."""
    requirements = tmp_path / "infra" / "emulator" / "requirements.txt"
    requirements.parent.mkdir(parents=True)
    requirements.write_text("localstack-core==4.14.0\n")
    monkeypatch.setenv("LAMBDAMESH_HOME", str(tmp_path))
    monkeypatch.delenv("LAMBDAMESH_ENDPOINT", raising=False)
    return tmp_path


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port: int = server.getsockname()[1]
    return port


def test_deploy_without_a_running_emulator_says_how_to_start_one(
    empty_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no embedded LocalStack on the port  WHEN deploy runs
    port = _closed_port()
    code = cli.main(["deploy", "--port", str(port)])
    # THEN it fails and names the command that starts one
    assert code == 1
    assert f"lambdamesh up --port {port}" in capsys.readouterr().err


def test_deploy_refuses_endpoint_and_aws_together(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN both targets  WHEN parsed  THEN it is a usage error
    with pytest.raises(SystemExit) as exited:
        cli.main(["deploy", "--aws", "--endpoint", "http://127.0.0.1:4566"])
    assert exited.value.code == 2
    assert "not allowed with" in capsys.readouterr().err
