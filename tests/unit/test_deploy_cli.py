"""``lambdamesh deploy`` arguments and its refusal when there is nowhere to deploy."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lambdamesh import cli


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


APP_SOURCE = """\
from chalice import Chalice

app = Chalice(app_name="lambdamesh-greeter")


@app.route("/hello")
def hello():
    return {"hello": "world"}
"""
APP_CONFIG = (
    '{"version": "2.0", "app_name": "lambdamesh-greeter", "automatic_layer": false,'
    ' "stages": {"dev": {"autogen_policy": true}}}'
)


def _project_with_app(root: Path, resources: str | None = None) -> Path:
    """``root`` as a project: the real topology templates and one small app under apps/."""
    topology = Path(__file__).resolve().parents[2] / "infra" / "topology"
    (root / "infra" / "topology").mkdir(parents=True, exist_ok=True)
    for template in topology.glob("*.json"):
        (root / "infra" / "topology" / template.name).write_text(template.read_text())
    app = root / "apps" / "greeter"
    (app / ".chalice").mkdir(parents=True)
    (app / "app.py").write_text(APP_SOURCE)
    (app / "requirements.txt").write_text("")
    (app / ".chalice" / "config.json").write_text(APP_CONFIG)
    if resources is not None:
        (app / "resources.json").write_text(resources)
    return root / "apps"


def test_a_dry_run_prints_every_stack_with_its_resources_and_needs_no_aws(
    empty_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a project with one app, and an AWS profile that does not exist (any AWS client
    # built would fail)
    apps = _project_with_app(empty_project)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    # WHEN deploy runs with --dry-run
    code = cli.main(["deploy", "--dry-run", "--apps-dir", str(apps)])
    # THEN every stack is listed with its resources, and nothing was deployed
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "lambdamesh-shared (shared)" in out
    assert "lambdamesh-messaging (messaging)" in out
    assert "lambdamesh-greeter (greeter)" in out
    assert "AWS::Serverless::Function" in out
    assert "AWS::SNS::Topic" in out
    assert out.rstrip().endswith("nothing was deployed")


def test_a_dry_run_names_a_parameter_no_stack_provides(
    empty_project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an app whose template asks for a parameter nothing outputs
    apps = _project_with_app(
        empty_project, '{"Parameters": {"NoSuchThingArn": {"Type": "String"}}}'
    )
    # WHEN deploy runs with --dry-run
    code = cli.main(["deploy", "--dry-run", "--apps-dir", str(apps)])
    # THEN it fails as deploy would, in one line naming the parameter
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert "NoSuchThingArn" in err[0]


def test_deploy_to_aws_with_an_unknown_profile_is_a_one_line_error(
    empty_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a profile that is in no AWS config
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty_project / "aws-config"))
    # WHEN deploy --aws runs
    code = cli.main(["deploy", "--aws"])
    # THEN one line says which profile and what to do, no traceback
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1
    assert "no-such-profile" in err[0]
    assert "AWS_PROFILE" in err[0]


def test_a_dry_run_on_aws_without_credentials_prints_the_plan_and_says_so(
    empty_project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a project with one app, a region, and no credentials anywhere
    apps = _project_with_app(empty_project)
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    # WHEN deploy runs with --aws --dry-run
    code = cli.main(["deploy", "--aws", "--dry-run", "--apps-dir", str(apps)])
    # THEN it says why there are no change sets, and prints the plan
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "no AWS credentials found: the plan alone" in out
    assert "lambdamesh-greeter (greeter)" in out
    assert out.rstrip().endswith("nothing was deployed")


def test_a_dry_run_on_aws_with_an_unknown_profile_is_a_one_line_error(
    empty_project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a profile that does not exist
    apps = _project_with_app(empty_project)
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    # WHEN deploy runs with --aws --dry-run  THEN one line says what to do
    assert cli.main(["deploy", "--aws", "--dry-run", "--apps-dir", str(apps)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "no-such-profile" in err
    assert len(err.strip().splitlines()) == 1
