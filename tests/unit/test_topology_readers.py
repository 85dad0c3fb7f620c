"""The topology read from deployed stacks (on moto), and from the templates deploy would send.

The shop (``tests/support/topology_shop.py``) is deployed on moto and read by the deployed
reader through the services' APIs; handed over as a dry run prepares it, the same templates are
read by the templates reader. Both must tell the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh.deploy.dry_run import PreparedStack
from lambdamesh.deploy.runner import topology_parameters
from lambdamesh.topology.deployed import NothingDeployedError, read_deployed
from lambdamesh.topology.model import Edge, EdgeKind, NodeKind, Topology
from lambdamesh.topology.templates import read_templates
from tests.support.fake_aws import use_fake_aws
from tests.support.topology_shop import PREFIX, REGION, deploy_shop, prepared_shop

MESSAGING_JSON = Path(__file__).resolve().parents[2] / "infra" / "topology" / "messaging.json"

pytestmark = pytest.mark.filterwarnings("ignore:Tried to parse AWS..SNS..Subscription")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """moto, and a client factory on it (what ``Target.client`` is to the reader)."""
    use_fake_aws(monkeypatch, region=REGION)
    with mock_aws():
        yield lambda service: boto3.client(service, region_name=REGION)


@pytest.fixture
def deployed_shop(aws: Any) -> Any:
    deploy_shop(aws)
    return aws


def _edges(topology: Topology, kind: EdgeKind) -> list[tuple[str, str, str]]:
    return [(edge.source, edge.target, edge.label) for edge in topology.edges if edge.kind is kind]


def test_nodes_are_the_stacks_resources_under_their_logical_names(deployed_shop: Any) -> None:
    # GIVEN the shop deployed  WHEN its topology is read
    topology = read_deployed(deployed_shop, PREFIX)
    # THEN every node is named without prefix, random suffix, account or region, and only the
    # stacks deploy made count (no stray function, no listener queue)
    assert {node.id: node.kind for node in topology.nodes} == {
        "catalog.Rpc": NodeKind.FUNCTION,
        "orders.APIHandler": NodeKind.FUNCTION,
        "orders.HandleOutcomes": NodeKind.FUNCTION,
        "orders.OrderEventsTable": NodeKind.STREAM,
        "orders.PublishOrderEvents": NodeKind.FUNCTION,
        "queue:mail-users": NodeKind.QUEUE,
        "queue:mail-users-dlq": NodeKind.DEAD_LETTER_QUEUE,
        "queue:order-events-dlq": NodeKind.DEAD_LETTER_QUEUE,
        "queue:orders-outcomes": NodeKind.QUEUE,
        "queue:orders-outcomes-dlq": NodeKind.DEAD_LETTER_QUEUE,
        "topic:orders.fifo": NodeKind.TOPIC,
        "topic:users": NodeKind.TOPIC,
        "users.APIHandler": NodeKind.FUNCTION,
        "users.RestAPI": NodeKind.REST_API,
    }
    assert topology.services == ("catalog", "orders", "users")


def test_subscriptions_carry_their_filter_policy_and_raw_delivery(deployed_shop: Any) -> None:
    # GIVEN subscriptions with filter policies, one raw and one not
    # WHEN the topology is read
    topology = read_deployed(deployed_shop, PREFIX)
    # THEN each topic delivers to its queue with its policy, sorted; the listener outside the
    # stacks is left out
    assert _edges(topology, EdgeKind.DELIVERS) == [
        ("topic:orders.fifo", "queue:orders-outcomes", "type: order.cancelled, order.placed"),
        ("topic:users", "queue:mail-users", "type: user.created; raw"),
    ]


def test_redrives_mappings_and_on_failure_destinations_are_edges(deployed_shop: Any) -> None:
    # GIVEN queues with redrive policies, a queue mapping and a stream mapping with an
    # on-failure destination  WHEN the topology is read
    topology = read_deployed(deployed_shop, PREFIX)
    # THEN each is an edge with its numbers
    assert _edges(topology, EdgeKind.REDRIVES) == [
        ("queue:mail-users", "queue:mail-users-dlq", "maxReceiveCount 5"),
        ("queue:orders-outcomes", "queue:orders-outcomes-dlq", "maxReceiveCount 5"),
    ]
    assert _edges(topology, EdgeKind.TRIGGERS) == [
        ("orders.OrderEventsTable", "orders.PublishOrderEvents", "batch 100"),
        ("queue:orders-outcomes", "orders.HandleOutcomes", "batch 10"),
    ]
    assert _edges(topology, EdgeKind.ON_FAILURE) == [
        ("orders.PublishOrderEvents", "queue:order-events-dlq", "on failure, after 10 retries")
    ]


def test_environments_tell_who_publishes_and_who_calls_whom(deployed_shop: Any) -> None:
    # GIVEN functions whose environments hold a topic's ARN, another service's API URL and
    # another service's function name  WHEN the topology is read
    topology = read_deployed(deployed_shop, PREFIX)
    # THEN they publish, call over HTTP and call by RPC; a table's name is no edge
    assert _edges(topology, EdgeKind.PUBLISHES) == [
        ("orders.PublishOrderEvents", "topic:orders.fifo", ""),
        ("users.APIHandler", "topic:users", ""),
    ]
    assert _edges(topology, EdgeKind.HTTP) == [("orders.APIHandler", "users.RestAPI", "HTTP")]
    assert _edges(topology, EdgeKind.RPC) == [("orders.APIHandler", "catalog.Rpc", "RPC (Invoke)")]


def test_a_rest_api_invokes_the_function_its_integration_names(deployed_shop: Any) -> None:
    # GIVEN users' REST API with a route integrated with its APIHandler
    # WHEN the topology is read
    topology = read_deployed(deployed_shop, PREFIX)
    # THEN the API invokes the handler
    assert Edge("users.RestAPI", "users.APIHandler", EdgeKind.INVOKES) in topology.edges


def test_nothing_deployed_under_the_prefix_is_an_error(deployed_shop: Any) -> None:
    # GIVEN the shop deployed under "shop"  WHEN another prefix is read
    # THEN it says no stack of that prefix was made by deploy
    with pytest.raises(NothingDeployedError, match=r"no other-\* stack made by lambdamesh deploy"):
        read_deployed(deployed_shop, "other")


def test_the_templates_tell_what_the_deployed_stacks_tell(deployed_shop: Any) -> None:
    # GIVEN the shop deployed, and the same templates as a dry run prepares them
    # WHEN each is read by its reader
    deployed = read_deployed(deployed_shop, PREFIX)
    planned = read_templates(prepared_shop(), PREFIX)
    # THEN both give the same topology, and so the same picture
    assert planned == deployed
    assert planned.content_hash() == deployed.content_hash()


def test_the_messaging_template_is_read_with_every_subscription_and_redrive() -> None:
    # GIVEN the project's own messaging template, prepared as deploy prepares it
    template = json.loads(MESSAGING_JSON.read_text())
    parameters = topology_parameters("messaging", template, {}, "lambdamesh")
    # WHEN the templates reader reads it
    topology = read_templates(
        [PreparedStack("messaging", "lambdamesh-messaging", template, parameters)]
    )
    # THEN topics and queues are named without the prefix, each queue redrives to its DLQ, and
    # the payments queue gets what its filter policy lets through, raw
    assert [node.label for node in topology.of_kind(NodeKind.TOPIC)] == [
        "inventory",
        "orders.fifo",
        "payments",
        "users",
    ]
    queues = topology.of_kind(NodeKind.QUEUE)
    redrives = _edges(topology, EdgeKind.REDRIVES)
    assert len(redrives) == len(queues) >= 7
    assert (
        "queue:payments-orders.fifo",
        "queue:payments-orders-dlq.fifo",
        "maxReceiveCount 5",
    ) in redrives
    assert (
        "topic:orders.fifo",
        "queue:payments-orders.fifo",
        "type: order.cancelled, order.placed, order.voided; raw",
    ) in _edges(topology, EdgeKind.DELIVERS)
    assert "queue:order-events-dlq" in {
        node.id for node in topology.of_kind(NodeKind.DEAD_LETTER_QUEUE)
    }
