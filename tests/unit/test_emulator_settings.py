"""The embedded LocalStack's environment and its loopback-only rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from lambdamesh.emulator.process import EmbeddedLocalStack
from lambdamesh.emulator.settings import (
    ALLOW_NON_LOOPBACK_ENV,
    ALLOW_NON_LOOPBACK_FLAG,
    GATEWAY_SERVER_ENV,
    SERVICES,
    SHARED_SETTINGS,
    EmulatorSettings,
    NonLoopbackRefusedError,
    UnknownGatewayServerError,
    emulator_environment,
    endpoint_url,
    is_loopback_host,
)


def _settings(tmp_path: Path, **overrides: object) -> EmulatorSettings:
    return EmulatorSettings(
        port=45123,
        run_dir=tmp_path / "run",
        lambda_runtime_dir=tmp_path / "lambda-runtime",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.3.2.1", "::1", "[::1]", "localhost", "LocalHost"]
)
def test_loopback_addresses_are_recognised(host: str) -> None:
    # GIVEN a loopback address  WHEN it is checked  THEN it counts as loopback
    assert is_loopback_host(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com", ""])
def test_other_addresses_are_not_loopback(host: str) -> None:
    # GIVEN a wildcard, LAN or DNS name  WHEN it is checked  THEN it is not loopback
    assert not is_loopback_host(host)


def test_non_loopback_host_is_refused_naming_the_opt_in(tmp_path: Path) -> None:
    # GIVEN a wildcard bind address and no opt-in
    # WHEN settings are made  THEN they are refused with a message naming the flag
    with pytest.raises(NonLoopbackRefusedError, match=ALLOW_NON_LOOPBACK_FLAG):
        _settings(tmp_path, host="0.0.0.0")


def test_non_loopback_host_with_opt_in_binds_it_and_tells_the_plugin(tmp_path: Path) -> None:
    # GIVEN a wildcard bind address with the opt-in
    settings = _settings(tmp_path, host="0.0.0.0", allow_non_loopback=True)
    # WHEN the environment is built
    env = emulator_environment(settings, inherited={})
    # THEN LocalStack binds it, the loopback plugin is told, and clients still use loopback
    assert env["GATEWAY_LISTEN"] == "0.0.0.0:45123"
    assert env[ALLOW_NON_LOOPBACK_ENV] == "1"
    assert settings.endpoint_url == "http://127.0.0.1:45123"


def test_default_environment_listens_on_loopback_through_the_loopback_server(
    tmp_path: Path,
) -> None:
    # GIVEN default settings  WHEN the environment is built
    env = emulator_environment(_settings(tmp_path), inherited={})
    # THEN it binds 127.0.0.1 with the loopback gateway server and no opt-in
    assert env["GATEWAY_LISTEN"] == "127.0.0.1:45123"
    assert env["GATEWAY_SERVER"] == "loopback"
    assert ALLOW_NON_LOOPBACK_ENV not in env


def test_the_twisted_gateway_server_can_be_chosen_and_no_other(tmp_path: Path) -> None:
    # GIVEN settings asking for the twisted loopback server, and settings asking for
    # LocalStack's own twisted server (which listens on every interface)
    twisted = _settings(tmp_path, gateway_server="loopback-twisted")
    stock = _settings(tmp_path, gateway_server="twisted")
    # WHEN their environments are built
    # THEN the first is served by it, and the second is refused, naming the choices
    assert emulator_environment(twisted, inherited={})["GATEWAY_SERVER"] == "loopback-twisted"
    with pytest.raises(UnknownGatewayServerError, match="loopback, loopback-twisted"):
        emulator_environment(stock, inherited={})


def test_the_gateway_server_comes_from_the_environment_unless_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN LAMBDAMESH_GATEWAY_SERVER naming the twisted loopback server
    monkeypatch.setenv(GATEWAY_SERVER_ENV, "loopback-twisted")
    # WHEN emulators are made without a server, and with one
    chosen_by_environment = EmbeddedLocalStack(45123, tmp_path / "a")
    chosen_here = EmbeddedLocalStack(45123, tmp_path / "b", gateway_server="loopback")
    # THEN the first takes the environment's, the second its own
    assert chosen_by_environment.settings.gateway_server == "loopback-twisted"
    assert chosen_here.settings.gateway_server == "loopback"


def test_all_writable_locations_are_inside_the_run_dir(tmp_path: Path) -> None:
    # GIVEN settings with a run dir
    settings = _settings(tmp_path)
    # WHEN the environment is built
    env = emulator_environment(settings, inherited={"TMPDIR": "/tmp"})
    # THEN tmp, cache and state live in the run dir, never in LocalStack's system paths
    for name in ("TMPDIR", "XDG_CACHE_HOME", "FILESYSTEM_ROOT"):
        assert Path(env[name]).is_relative_to(settings.run_dir), name
    assert env["OVERRIDE_IN_DOCKER"] == "0"
    for value in env.values():
        assert "/tmp/localstack" not in value
        assert "/var/lib/localstack" not in value


def test_host_mode_plugins_and_lambda_runtime_path_are_selected(tmp_path: Path) -> None:
    # GIVEN default settings  WHEN the environment is built
    env = emulator_environment(_settings(tmp_path), inherited={})
    # THEN the process executor, the moto DynamoDB providers and the runtime library are set
    assert env["LAMBDA_RUNTIME_EXECUTOR"] == "process"
    assert env["PROVIDER_OVERRIDE_DYNAMODB"] == "moto"
    assert env["PROVIDER_OVERRIDE_DYNAMODBSTREAMS"] == "moto"
    assert env["LAMBDAMESH_LAMBDA_RUNTIME_PATH"] == str(tmp_path / "lambda-runtime")
    assert env["DNS_ADDRESS"] == "0"
    assert env["AWS_DEFAULT_REGION"] == "us-east-1"


def test_environment_carries_the_shared_settings_and_every_service(tmp_path: Path) -> None:
    # GIVEN default settings  WHEN the environment is built
    env = emulator_environment(_settings(tmp_path), inherited={})
    # THEN every shared setting is there and SERVICES lists what the system uses
    assert {k: env[k] for k in SHARED_SETTINGS} == SHARED_SETTINGS
    assert set(env["SERVICES"].split(",")) == set(SERVICES)
    assert {"lambda", "sqs", "sns", "dynamodb", "apigateway", "cloudformation"} <= set(SERVICES)


def test_callers_endpoint_and_opt_in_do_not_leak_but_other_variables_do(tmp_path: Path) -> None:
    # GIVEN a caller environment pointing elsewhere, opting in, and asking for DEBUG
    inherited = {
        "AWS_ENDPOINT_URL": "http://elsewhere:4566",
        "AWS_PROFILE": "prod",
        ALLOW_NON_LOOPBACK_ENV: "1",
        "VIRTUAL_ENV": "/work/.venv",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DEBUG": "1",
    }
    # WHEN the environment is built
    env = emulator_environment(_settings(tmp_path), inherited=inherited)
    # THEN only DEBUG survives
    assert env["DEBUG"] == "1"
    for dropped in (
        "AWS_ENDPOINT_URL",
        "AWS_PROFILE",
        ALLOW_NON_LOOPBACK_ENV,
        "VIRTUAL_ENV",
        "PYTHONDONTWRITEBYTECODE",
    ):
        assert dropped not in env


def test_ipv6_loopback_is_bracketed(tmp_path: Path) -> None:
    # GIVEN the IPv6 loopback  WHEN settings are built  THEN addresses are bracketed
    settings = _settings(tmp_path, host="::1")
    assert emulator_environment(settings, inherited={})["GATEWAY_LISTEN"] == "[::1]:45123"
    assert settings.endpoint_url == "http://[::1]:45123"


def test_endpoint_of_a_named_host_keeps_the_name() -> None:
    # GIVEN localhost  WHEN the endpoint is built  THEN it is used as given
    assert endpoint_url("localhost", 4566) == "http://localhost:4566"
