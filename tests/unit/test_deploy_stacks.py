"""Stack create/update/skip logic and deploy records, on moto's CloudFormation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh.deploy.fingerprint import stack_fingerprint
from lambdamesh.deploy.records import ServiceRecord, load_services, save_services
from lambdamesh.deploy.stacks import (
    FINGERPRINT_TAG,
    StackError,
    StackRequest,
    apply_stack,
    existing_stack_outputs,
)
from tests.support.fake_aws import use_fake_aws

SHARED_TEMPLATE = Path(__file__).parents[2] / "infra" / "topology" / "shared.json"


@pytest.fixture
def cfn(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    use_fake_aws(monkeypatch)
    with mock_aws():
        yield boto3.client("cloudformation", region_name="us-east-1")


def _request(template: dict[str, Any]) -> StackRequest:
    return StackRequest("lambdamesh-shared", template, {}, stack_fingerprint(template, {}))


def test_shared_stack_creates_the_breaker_table_with_the_key_powertools_expects(cfn: Any) -> None:
    # GIVEN the shared template
    template = json.loads(SHARED_TEMPLATE.read_text())
    lines: list[str] = []
    # WHEN deployed
    result = apply_stack(cfn, _request(template), progress=lines.append)
    # THEN it is created, tagged, and its table is keyed by "id" (Powertools' default key_attr)
    assert result.action == "created"
    table = boto3.client("dynamodb", region_name="us-east-1").describe_table(
        TableName=result.outputs["CircuitBreakerTable"]
    )["Table"]
    assert table["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert result.outputs["DeploymentBucket"]
    tags = cfn.describe_stacks(StackName="lambdamesh-shared")["Stacks"][0]["Tags"]
    assert {"Key": FINGERPRINT_TAG, "Value": _request(template).fingerprint} in tags
    # (moto records the stack's own events only; LocalStack and AWS add one per resource)
    assert any("CREATE_COMPLETE" in line and "lambdamesh-shared" in line for line in lines)


def test_an_unchanged_stack_is_skipped_without_calling_cloudformation_again(cfn: Any) -> None:
    # GIVEN the shared stack deployed
    template = json.loads(SHARED_TEMPLATE.read_text())
    apply_stack(cfn, _request(template), progress=lambda _: None)
    # WHEN deployed again with the same template
    again = apply_stack(cfn, _request(template), progress=lambda _: None)
    # THEN nothing is done and the outputs are still reported
    assert again.action == "skipped"
    assert set(again.outputs) >= {"CircuitBreakerTable", "DeploymentBucket"}


def test_a_changed_template_updates_the_stack(cfn: Any) -> None:
    # GIVEN the shared stack deployed
    template = json.loads(SHARED_TEMPLATE.read_text())
    apply_stack(cfn, _request(template), progress=lambda _: None)
    # WHEN a resource is added
    template["Resources"]["Extra"] = {"Type": "AWS::SQS::Queue"}
    result = apply_stack(cfn, _request(template), progress=lambda _: None)
    # THEN the stack is updated
    assert result.action == "updated"
    resources = cfn.list_stack_resources(StackName="lambdamesh-shared")["StackResourceSummaries"]
    assert "Extra" in {resource["LogicalResourceId"] for resource in resources}


def test_records_merge_services_across_runs(tmp_path: Path) -> None:
    # GIVEN users recorded by one run
    save_services(tmp_path, "t", {"users": ServiceRecord("s-users", "http://u/api/", {"A": "f"})})
    # WHEN orders is recorded by another
    save_services(tmp_path, "t", {"orders": ServiceRecord("s-orders", None)})
    # THEN both are there, in the shape status reports
    services = load_services(tmp_path)
    assert services["users"]["api_url"] == "http://u/api/"
    assert services["users"]["functions"] == {"A": "f"}
    assert set(services) == {"users", "orders"}


def test_no_records_reads_as_no_services(tmp_path: Path) -> None:
    # GIVEN a run directory nothing was deployed from  THEN no services
    assert load_services(tmp_path) == {}


def test_an_existing_stacks_outputs_are_read_and_a_missing_stack_says_to_deploy(cfn: Any) -> None:
    # GIVEN the shared stack deployed
    template = json.loads(SHARED_TEMPLATE.read_text())
    deployed = apply_stack(cfn, _request(template), progress=lambda _: None)
    # WHEN its outputs are read, and those of a stack that was never deployed
    outputs = existing_stack_outputs(cfn, "lambdamesh-shared")
    # THEN the first are the deploy's own; the second is an error saying what to do
    assert outputs == deployed.outputs
    with pytest.raises(StackError, match="deploy first"):
        existing_stack_outputs(cfn, "lambdamesh-nothing")
