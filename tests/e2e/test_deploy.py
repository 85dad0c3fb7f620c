"""``lambdamesh deploy`` on the embedded LocalStack: a Chalice app through CloudFormation."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import urllib3

from lambdamesh.deploy import DeployOptions, DeployReport, Target, deploy_all
from tests.conftest import RunningEmulator

HELLO_APP = Path(__file__).parent / "apps" / "hello"
SHARED_TEMPLATE = Path(__file__).parents[2] / "infra" / "topology" / "shared.json"


@dataclass(frozen=True)
class Deployment:
    """The hello app deployed once, with what is needed to deploy it again."""

    target: Target
    options: DeployOptions
    report: DeployReport

    @property
    def app_dir(self) -> Path:
        return self.options.apps_dir / "hello"

    def deploy_again(self) -> DeployReport:
        return deploy_all(self.target, self.options, progress=lambda _: None)


@pytest.fixture(scope="module")
def deployment(
    emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    """The hello app (a copy, so a test may change it) deployed under stacks of its own."""
    root = tmp_path_factory.mktemp("deploy")
    shutil.copytree(HELLO_APP, root / "apps" / "hello")
    options = DeployOptions(
        apps_dir=root / "apps",
        shared_template=SHARED_TEMPLATE,
        cache_dir=root / "cache",
        state_dir=root / "state",
        stack_prefix=f"t{uuid.uuid4().hex[:8]}",
    )
    target = Target.localstack(emulator.endpoint_url)
    report = deploy_all(target, options, progress=lambda _: None)
    yield Deployment(target, options, report)
    cfn = emulator.client("cloudformation")
    for service in ("hello", "messaging", "shared"):
        cfn.delete_stack(StackName=options.stack_name(service))


def _get_json(url: str) -> tuple[int, Any]:
    response = urllib3.request("GET", url, timeout=urllib3.Timeout(connect=2.0, read=30.0))
    return response.status, json.loads(response.data)


def test_first_deploy_creates_the_shared_stack_and_the_app_stack(deployment: Deployment) -> None:
    # GIVEN nothing deployed  WHEN the hello app is deployed (fixture)
    report = deployment.report
    # THEN the shared stack and the app's stack are created, the app packaged and uploaded
    assert [service.service for service in report.services] == ["shared", "messaging", "hello"]
    assert {service.action for service in report.services} == {"created"}
    hello = report.service("hello")
    assert hello.packaging == "built"
    assert hello.uploaded
    assert set(hello.functions) == {"APIHandler", "Greet"}


def test_the_route_answers_through_api_gateway(deployment: Deployment) -> None:
    # GIVEN the deployed app's API URL (path form on LocalStack)
    api_url = deployment.report.service("hello").api_url
    assert api_url is not None
    assert "/_aws/execute-api/" in api_url
    # WHEN its route is called over HTTP
    status, body = _get_json(f"{api_url}hello/ann")
    # THEN the function answers, with the table from resources.json in its environment
    assert status == 200
    assert body["greeting"] == "hello, ann"
    assert body["table"]


def test_the_lambda_function_answers_invoke_with_wired_parameters(
    deployment: Deployment, emulator: RunningEmulator
) -> None:
    # GIVEN the deployed app's greet function
    function_name = deployment.report.service("hello").functions["Greet"]
    # WHEN invoked directly
    response = emulator.client("lambda").invoke(
        FunctionName=function_name, Payload=json.dumps({"name": "bo"}).encode()
    )
    # THEN it answers, and its CircuitBreakerTable parameter came from the shared stack
    assert "FunctionError" not in response
    body = json.loads(response["Payload"].read())
    assert body["greeting"] == "hello, bo"
    shared = emulator.client("cloudformation").describe_stacks(
        StackName=deployment.options.stack_name("shared")
    )["Stacks"][0]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in shared["Outputs"]}
    assert body["breaker_table"] == outputs["CircuitBreakerTable"]


def test_deploy_records_api_urls_and_functions_for_status(deployment: Deployment) -> None:
    # GIVEN the deploy's record file
    assert deployment.report.records_file is not None
    recorded = json.loads(deployment.report.records_file.read_text())["services"]["hello"]
    # THEN it holds the API URL and the function names
    hello = deployment.report.service("hello")
    assert recorded["api_url"] == hello.api_url
    assert recorded["functions"] == hello.functions


def test_redeploy_skips_an_unchanged_app_and_updates_a_changed_one(
    deployment: Deployment,
) -> None:
    # GIVEN the app deployed  WHEN deployed again with no change
    unchanged = deployment.deploy_again()
    # THEN neither stack is touched, nothing is packaged or uploaded
    assert {service.action for service in unchanged.services} == {"skipped"}
    hello = unchanged.service("hello")
    assert hello.packaging == "cached"
    assert not hello.uploaded
    assert hello.api_url == deployment.report.service("hello").api_url
    # WHEN the app's code changes and it is deployed again
    app_file = deployment.app_dir / "app.py"
    app_file.write_text(app_file.read_text().replace('GREETING = "hello"', 'GREETING = "howdy"'))
    changed = deployment.deploy_again()
    # THEN only its stack is updated, and the route serves the new code
    assert changed.service("shared").action == "skipped"
    assert changed.service("hello").action == "updated"
    assert changed.service("hello").packaging == "built"
    status, body = _get_json(f"{changed.service('hello').api_url}hello/ann")
    assert status == 200
    assert body["greeting"] == "howdy, ann"
