"""The ``lambdamesh`` command line: help, argument errors, and commands with nothing running."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lambdamesh import cli
from lambdamesh.emulator import commands as emulator_commands
from lambdamesh.emulator.settings import ALLOW_NON_LOOPBACK_FLAG


@pytest.fixture
def closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port: int = server.getsockname()[1]
    return port


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the CLI  WHEN asked for help
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    # THEN it exits 0 and names every command
    assert exited.value.code == 0
    out = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert command.name in out


@pytest.mark.parametrize("command", [c.name for c in cli.COMMANDS])
def test_every_command_has_help_with_examples(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a command  WHEN asked for its help
    with pytest.raises(SystemExit) as exited:
        cli.main([command, "--help"])
    # THEN it exits 0 and shows examples
    assert exited.value.code == 0
    assert f"lambdamesh {command}" in capsys.readouterr().out


IMPORTED_BY = """
import json, sys
from lambdamesh import cli
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def modules_imported_by(*argv: str) -> set[str]:
    """The modules a fresh interpreter holds after ``lambdamesh ARGV`` (help, or a usage error)."""
    run = subprocess.run(
        [sys.executable, "-c", IMPORTED_BY, *argv], capture_output=True, text=True, check=True
    )
    modules: list[str] = json.loads(run.stdout.splitlines()[-1])
    return set(modules)


def test_help_imports_no_command_and_a_command_imports_only_its_own_module() -> None:
    # GIVEN the listed commands' modules
    listed = {command.module for command in cli.COMMANDS}
    # WHEN the top-level help runs, then a command's help
    top_level = modules_imported_by("--help")
    dlq = modules_imported_by("dlq", "--help")
    # THEN the help imported no command's module (nor boto3 or the event contracts)
    assert not listed & top_level
    assert not {"boto3", "pydantic", "lambdamesh_toolkit"} & top_level
    # AND the dlq command imported its own module, not those of unrelated commands
    assert "lambdamesh.dlq.command" in dlq
    assert not {"lambdamesh.load.command", "lambdamesh.chaos.command", "lambdamesh.demo"} & dlq


def test_every_listed_command_is_defined_where_the_list_says() -> None:
    # GIVEN the list behind lambdamesh --help  WHEN each command is loaded
    # THEN its module defines a command of that name, with examples in its description
    for listed in cli.COMMANDS:
        command = listed.command()
        assert command.name == listed.name
        assert f"lambdamesh {listed.name}" in command.description


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no arguments  WHEN run  THEN it is a usage error
    with pytest.raises(SystemExit) as exited:
        cli.main([])
    assert exited.value.code == 2


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN an unknown command  WHEN run  THEN it is a usage error naming it
    with pytest.raises(SystemExit) as exited:
        cli.main(["launch"])
    assert exited.value.code == 2
    assert "launch" in capsys.readouterr().err


def test_non_numeric_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a port that is not a number  WHEN up runs  THEN it is a usage error
    with pytest.raises(SystemExit) as exited:
        cli.main(["up", "--port", "http"])
    assert exited.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_up_on_a_non_loopback_host_is_refused_before_anything_starts(
    empty_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN install and start would fail the test if reached
    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be installed or started")

    monkeypatch.setattr(emulator_commands, "ensure_emulator_installed", must_not_run)
    monkeypatch.setattr(emulator_commands, "EmbeddedLocalStack", must_not_run)
    # WHEN up is asked to listen on every interface without the opt-in
    code = cli.main(["up", "--host", "0.0.0.0"])
    # THEN it is refused with a message naming the opt-in
    assert code == 2
    err = capsys.readouterr().err
    assert ALLOW_NON_LOOPBACK_FLAG in err
    assert "0.0.0.0" in err


def test_down_with_nothing_running_says_so(
    empty_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN nothing running  WHEN down runs  THEN it says so and succeeds
    assert cli.main(["down", "--port", "45999"]) == 0
    assert "no embedded LocalStack is running on port 45999" in capsys.readouterr().out


def test_status_json_with_nothing_running(
    empty_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN nothing running  WHEN status --json runs
    assert cli.main(["status", "--json", "--port", "45999"]) == 0
    status = json.loads(capsys.readouterr().out)
    # THEN it reports an embedded emulator that is not running
    assert status["running"] is False
    assert status["external"] is False
    assert status["port"] == 45999
    assert status["endpoint"] == "http://127.0.0.1:45999"
    assert status["pid"] is None


def test_status_of_an_external_endpoint_is_marked_external(
    empty_project: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an external endpoint where nothing answers
    endpoint = f"http://127.0.0.1:{closed_port}"
    # WHEN status --json runs against it
    assert cli.main(["status", "--json", "--endpoint", endpoint]) == 0
    status = json.loads(capsys.readouterr().out)
    # THEN it is external and not running
    assert status["external"] is True
    assert status["running"] is False
    assert status["port"] == closed_port


def test_endpoint_from_the_environment_is_used(
    empty_project: Path,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN LAMBDAMESH_ENDPOINT names an external LocalStack
    monkeypatch.setenv("LAMBDAMESH_ENDPOINT", f"http://127.0.0.1:{closed_port}")
    # WHEN status --json runs without --endpoint  THEN it reports the external one
    assert cli.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["external"] is True


def test_down_never_stops_an_external_localstack(
    empty_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an external endpoint  WHEN down runs  THEN it leaves it alone and succeeds
    assert cli.main(["down", "--endpoint", "http://127.0.0.1:4566"]) == 0
    assert "left running" in capsys.readouterr().out


def test_up_against_an_unreachable_external_endpoint_fails(
    empty_project: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an external endpoint where nothing answers
    endpoint = f"http://127.0.0.1:{closed_port}"
    # WHEN up checks it  THEN it fails saying it is not answering
    assert cli.main(["up", "--endpoint", endpoint, "--timeout", "0.3"]) == 1
    assert "not answering" in capsys.readouterr().err


def test_status_text_lists_each_services_functions_and_flags_a_non_empty_dlq() -> None:
    # GIVEN a running emulator's status with a deployed service and a DLQ holding a message
    status = {
        "external": True,
        "running": True,
        "endpoint": "http://127.0.0.1:4566",
        "healthy": True,
        "version": "4.14.0",
        "deployed": {
            "orders": {
                "api_url": "http://127.0.0.1:4566/restapis/a1/api/_user_request_/",
                "functions": {"APIHandler": "lambdamesh-orders-dev", "Rpc": "orders-rpc"},
            }
        },
        "messaging": {
            "topics": ["lambdamesh-orders.fifo"],
            "queues": [{"name": "lambdamesh-orders-outcomes", "waiting": 0, "in_flight": 0}],
            "dead_letter_queues": [
                {"name": "lambdamesh-orders-outcomes-dlq", "waiting": 2, "in_flight": 0},
                {"name": "lambdamesh-payments-orders-dlq.fifo", "waiting": 0, "in_flight": 0},
            ],
        },
    }
    # WHEN formatted
    lines = emulator_commands._format_status(status)
    text = "\n".join(lines)
    # THEN each function is listed under its service, and only the non-empty DLQ is flagged
    assert "lambdamesh-orders-dev" in text
    assert "orders-rpc" in text
    flagged = [line for line in lines if "←" in line]
    assert len(flagged) == 1
    assert flagged[0].strip().startswith("lambdamesh-orders-outcomes-dlq")
    assert flagged[0].endswith("lambdamesh dlq show orders-outcomes")


def test_lambdamesh_port_is_every_commands_default_port(
    empty_project: Path,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN LAMBDAMESH_PORT names a port
    monkeypatch.setenv("LAMBDAMESH_PORT", str(closed_port))
    # WHEN status runs without --port  THEN it looks there
    assert cli.main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["port"] == closed_port


def test_a_lambdamesh_port_that_is_not_a_port_is_a_one_line_error(
    empty_project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN LAMBDAMESH_PORT is not a number  WHEN a command runs
    monkeypatch.setenv("LAMBDAMESH_PORT", "http://x")
    with pytest.raises(SystemExit) as exited:
        cli.main(["status"])
    # THEN it stops with one line naming the variable
    assert "LAMBDAMESH_PORT='http://x' is not a port number" in str(exited.value.code)


def test_env_prints_exports_for_the_emulator_in_use() -> None:
    # GIVEN / WHEN the exports for an emulator on port 4600
    lines = emulator_commands.shell_exports("http://127.0.0.1:4600")
    # THEN boto3, the AWS CLI and awslocal are pointed there, with the test credentials
    assert lines == [
        "export AWS_ENDPOINT_URL=http://127.0.0.1:4600",
        "export LOCALSTACK_HOST=127.0.0.1:4600",
        "export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1",
        "export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test",
    ]


def test_env_with_nothing_running_prints_nothing_and_says_how_to_start_it(
    empty_project: Path, closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN nothing on the port  WHEN env runs
    assert cli.main(["env", "--port", str(closed_port)]) == 1
    # THEN standard output is empty (an eval does nothing) and the error says what to do
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "lambdamesh up" in captured.err
