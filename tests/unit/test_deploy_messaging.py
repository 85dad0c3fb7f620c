"""The messaging stack in deploy: its place in the order, its parameters, and its wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from moto import mock_aws

from lambdamesh.deploy.runner import DeployError, DeployOptions, deploy_all, topology_parameters
from lambdamesh.deploy.target import Target
from lambdamesh.deploy.wiring import DeployedStack, UnresolvedParameterError, resolve_parameters
from tests.support.fake_aws import use_fake_aws
from tests.unit.test_deploy_template import write_app

TOPOLOGY_DIR = Path(__file__).parents[2] / "infra" / "topology"

DEPLOYED = {
    "shared": DeployedStack("shared", {"CircuitBreakerTable": "cb", "DeploymentBucket": "b"}),
    "messaging": DeployedStack(
        "messaging",
        {
            "OrdersTopicArn": "arn:aws:sns:us-east-1:1:lambdamesh-orders.fifo",
            "EventIdempotencyTable": "idem",
            "EventFailuresTable": "failures",
        },
    ),
}


def _options(tmp_path: Path, shared: Path, messaging: Path | None = None) -> DeployOptions:
    return DeployOptions(
        apps_dir=tmp_path,
        shared_template=shared,
        cache_dir=tmp_path,
        state_dir=tmp_path,
        messaging_template=messaging,
    )


def test_app_parameters_named_like_messaging_outputs_take_their_values() -> None:
    # GIVEN a consumer declaring the topic, the consumer tables and the breaker table
    declared = {
        name: {"Type": "String"}
        for name in ("OrdersTopicArn", "EventIdempotencyTable", "EventFailuresTable")
    }
    declared["CircuitBreakerTable"] = {"Type": "String"}
    # WHEN resolved after the shared and messaging stacks
    values = resolve_parameters("payments", declared, DEPLOYED)
    # THEN each comes from the topology stack that has an Output of that name
    assert values == {
        "OrdersTopicArn": "arn:aws:sns:us-east-1:1:lambdamesh-orders.fifo",
        "EventIdempotencyTable": "idem",
        "EventFailuresTable": "failures",
        "CircuitBreakerTable": "cb",
    }


def test_a_missing_parameter_error_lists_the_messaging_outputs_too() -> None:
    # GIVEN a parameter no stack provides
    declared = {"ShippingTopicArn": {"Type": "String"}}
    # WHEN resolved  THEN the error offers the topology outputs, messaging ones included
    with pytest.raises(UnresolvedParameterError, match=r"messaging: OrdersTopicArn"):
        resolve_parameters("orders", declared, DEPLOYED)


def test_the_messaging_template_gets_the_stack_prefix_as_its_name_prefix() -> None:
    # GIVEN the messaging template
    template = json.loads((TOPOLOGY_DIR / "messaging.json").read_text())
    # WHEN its parameters are resolved for stack prefix "lmtest"
    values = topology_parameters("messaging", template, DEPLOYED, "lmtest")
    # THEN topic and queue names will start with it
    assert values == {"NamePrefix": "lmtest"}


def test_a_topology_template_without_parameters_gets_none() -> None:
    # GIVEN the shared template  WHEN resolved  THEN nothing is passed
    template = json.loads((TOPOLOGY_DIR / "shared.json").read_text())
    assert topology_parameters("shared", template, {}, "lambdamesh") == {}


def test_the_messaging_stack_follows_the_shared_stack_by_default(tmp_path: Path) -> None:
    # GIVEN options naming only the project's shared template
    options = _options(tmp_path, TOPOLOGY_DIR / "shared.json")
    # WHEN the topology stacks are listed  THEN messaging.json beside it comes second
    assert options.topology() == [
        ("shared", TOPOLOGY_DIR / "shared.json"),
        ("messaging", TOPOLOGY_DIR / "messaging.json"),
    ]


def test_without_a_messaging_template_only_the_shared_stack_deploys(tmp_path: Path) -> None:
    # GIVEN a shared template with no messaging.json beside it
    shared = tmp_path / "shared.json"
    shared.write_text("{}")
    # WHEN listed  THEN only the shared stack is there
    assert _options(tmp_path, shared).topology() == [("shared", shared)]


def test_an_explicit_messaging_template_is_used(tmp_path: Path) -> None:
    # GIVEN options naming a messaging template elsewhere
    messaging = tmp_path / "topics.json"
    options = _options(tmp_path, TOPOLOGY_DIR / "shared.json", messaging)
    # WHEN listed  THEN it is the messaging stack's
    assert options.topology()[1] == ("messaging", messaging)


def test_deploy_stops_before_an_apps_stack_when_its_queue_is_not_in_the_messaging_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a messaging stack offering one queue, and an app consuming another
    use_fake_aws(monkeypatch)
    messaging = tmp_path / "messaging.json"
    messaging.write_text(
        json.dumps(
            {
                "Resources": {"Queue": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {"OtherOrdersQueueArn": {"Value": {"Fn::GetAtt": ["Queue", "Arn"]}}},
            }
        )
    )
    write_app(tmp_path / "apps" / "consumer")
    options = DeployOptions(
        apps_dir=tmp_path / "apps",
        shared_template=TOPOLOGY_DIR / "shared.json",
        cache_dir=tmp_path / "cache",
        state_dir=tmp_path / "state",
        messaging_template=messaging,
    )
    with mock_aws():
        target = Target.aws("us-east-1")
        # WHEN deployed  THEN deploy stops, naming the function, its queue and the Output
        with pytest.raises(
            DeployError,
            match=r"OnOrderPlaced: .*'lambdamesh-consumer-orders'.*ConsumerOrdersQueueArn",
        ):
            deploy_all(target, options, progress=lambda _: None)
        # AND no stack of the app was created
        stacks = target.client("cloudformation").describe_stacks()["Stacks"]
        assert sorted(stack["StackName"] for stack in stacks) == [
            "lambdamesh-messaging",
            "lambdamesh-shared",
        ]
