"""The topology of what is deployed, read through AWS's APIs (any LocalStack, or AWS).

The project's stacks are those ``lambdamesh deploy`` made under a prefix: named
``<prefix>-<service>`` and tagged with its fingerprint (``lambdamesh:source-hash``), so stacks
of tests or of other prefixes are left out. Their resources (``ListStackResources``) give the
nodes under their logical names, and the services themselves give the edges:

- SNS ``ListSubscriptionsByTopic`` and ``GetSubscriptionAttributes``: which queue (or function)
  each topic delivers to, with its ``FilterPolicy``, scope and ``RawMessageDelivery``;
- SQS ``GetQueueAttributes``: each queue's ``RedrivePolicy`` (its DLQ, ``maxReceiveCount``);
- Lambda ``ListEventSourceMappings``: the queue or DynamoDB stream invoking each function, its
  batch size, and a stream mapping's on-failure destination; ``GetFunctionConfiguration``: the
  environment telling which topic a function publishes to and which service it calls
  (:mod:`~lambdamesh.topology.references`);
- API Gateway ``GetResources`` and ``GetIntegration``: the function each REST API invokes.

Only what the stacks hold is drawn: a subscription whose endpoint is no queue or function of
theirs (a test's listener) is left out.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from lambdamesh.deploy.stacks import FINGERPRINT_TAG
from lambdamesh.dlq.queues import queue_name
from lambdamesh.topology.labels import is_true, parse_policy
from lambdamesh.topology.model import EdgeKind, Topology, TopologyBuilder
from lambdamesh.topology.references import ReferenceIndex, connect_environment
from lambdamesh_toolkit.aws.errors import error_code

if TYPE_CHECKING:
    from mypy_boto3_apigateway.client import APIGatewayClient
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_lambda.client import LambdaClient
    from mypy_boto3_lambda.type_defs import EventSourceMappingConfigurationTypeDef
    from mypy_boto3_sns.client import SNSClient
    from mypy_boto3_sqs.client import SQSClient

ClientFactory = Callable[[str], Any]
"""Builds the boto3 client of a service (``Target.client``)."""

FUNCTION = "AWS::Lambda::Function"
TOPIC = "AWS::SNS::Topic"
QUEUE = "AWS::SQS::Queue"
TABLE = "AWS::DynamoDB::Table"
REST_API = "AWS::ApiGateway::RestApi"

_STREAM_TABLE = re.compile(r":table/(?P<table>[^/]+)/stream/")
_INTEGRATED_FUNCTION = re.compile(r":function:(?P<name>[^/:]+)")


class NothingDeployedError(LookupError):
    """No stack of the prefix was deployed by ``lambdamesh deploy`` there."""


@dataclass(frozen=True)
class StackResource:
    """One resource of a stack: its logical id, type and physical id."""

    logical_id: str
    type: str
    physical_id: str


def project_stacks(cfn: CloudFormationClient, prefix: str) -> dict[str, str]:
    """Service → stack name, for the stacks ``lambdamesh deploy`` made under ``prefix``.

    A stack counts when it is named ``<prefix>-<service>``, carries deploy's fingerprint tag
    and is not deleted.
    """
    found: dict[str, str] = {}
    for page in cfn.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            name = stack["StackName"]
            tagged = any(tag.get("Key") == FINGERPRINT_TAG for tag in stack.get("Tags", []))
            if (
                name.startswith(f"{prefix}-")
                and tagged
                and not stack["StackStatus"].startswith("DELETE_")
            ):
                found[name.removeprefix(f"{prefix}-")] = name
    return dict(sorted(found.items()))


def stack_resources(cfn: CloudFormationClient, stack: str) -> list[StackResource]:
    """The resources of ``stack`` that exist (deleted ones are left out)."""
    return [
        StackResource(
            summary["LogicalResourceId"],
            summary["ResourceType"],
            summary.get("PhysicalResourceId", ""),
        )
        for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack)
        for summary in page["StackResourceSummaries"]
        if not summary["ResourceStatus"].startswith("DELETE_") and summary.get("PhysicalResourceId")
    ]


@dataclass
class _Function:
    node: str
    name: str
    arn: str
    environment: dict[str, str]


@dataclass
class _Queue:
    node: str
    url: str
    redrive_policy: dict[str, Any] | None


@dataclass
class DeployedReader:
    """Reads the topology of the stacks deployed under ``prefix`` through ``clients``.

    Attributes
    ----------
    clients
        Builds a service's boto3 client (``Target.client``; a test's clients on moto).
    prefix
        The stack prefix deploy used (``lambdamesh``).
    """

    clients: ClientFactory
    prefix: str = "lambdamesh"
    _builder: TopologyBuilder = field(default_factory=TopologyBuilder, init=False)
    _index: ReferenceIndex = field(default_factory=ReferenceIndex, init=False)
    _topics: dict[str, str] = field(default_factory=dict, init=False)
    _queues: dict[str, _Queue] = field(default_factory=dict, init=False)
    _functions: list[_Function] = field(default_factory=list, init=False)
    _function_names: dict[str, str] = field(default_factory=dict, init=False)
    _tables: dict[str, tuple[str, str]] = field(default_factory=dict, init=False)
    _apis: dict[str, str] = field(default_factory=dict, init=False)

    def read(self) -> Topology:
        """The topology of the deployed stacks.

        Raises
        ------
        NothingDeployedError
            When no stack of the prefix was deployed by ``lambdamesh deploy``.
        botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
            When an API refuses or cannot be reached.
        """
        cfn: CloudFormationClient = self.clients("cloudformation")
        stacks = project_stacks(cfn, self.prefix)
        if not stacks:
            raise NothingDeployedError(f"no {self.prefix}-* stack made by lambdamesh deploy")
        for service, stack in stacks.items():
            for resource in stack_resources(cfn, stack):
                self._add_resource(service, resource)
        self._connect_redrives()
        self._connect_subscriptions()
        lambda_client: LambdaClient = self.clients("lambda")
        for function in self._functions:
            self._connect_event_sources(lambda_client, function)
            connect_environment(self._builder, function.node, function.environment, self._index)
        self._connect_integrations()
        return self._builder.build()

    def _stable(self, name: str) -> str:
        return name.removeprefix(f"{self.prefix}-")

    def _add_resource(self, service: str, resource: StackResource) -> None:
        physical = resource.physical_id
        if resource.type == TOPIC:
            node = self._builder.add_topic(self._stable(physical.rsplit(":", 1)[-1]))
            self._topics[physical] = node
            self._index.add_value(physical, node)
        elif resource.type == QUEUE:
            self._add_queue(physical)
        elif resource.type == FUNCTION:
            self._add_function(service, resource)
        elif resource.type == TABLE:
            self._tables[physical] = (service, resource.logical_id)
        elif resource.type == REST_API:
            node = self._builder.add_rest_api(service, resource.logical_id)
            self._apis[physical] = node
            self._index.add_api_id(physical, node)

    def _add_queue(self, url: str) -> None:
        sqs: SQSClient = self.clients("sqs")
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["QueueArn", "RedrivePolicy"]
        )["Attributes"]
        node = self._builder.add_queue(self._stable(queue_name(url)))
        arn = attributes.get("QueueArn", "")
        redrive = attributes.get("RedrivePolicy")
        self._queues[arn] = _Queue(node, url, json.loads(redrive) if redrive else None)
        self._index.add_value(arn, node)

    def _add_function(self, service: str, resource: StackResource) -> None:
        lambda_client: LambdaClient = self.clients("lambda")
        configuration = lambda_client.get_function_configuration(FunctionName=resource.physical_id)
        node = self._builder.add_function(service, resource.logical_id)
        arn = configuration.get("FunctionArn", "")
        variables = dict(configuration.get("Environment", {}).get("Variables", {}))
        self._functions.append(_Function(node, resource.physical_id, arn, variables))
        self._function_names[resource.physical_id] = node
        self._index.add_value(resource.physical_id, node)
        self._index.add_value(arn, node)

    def _connect_redrives(self) -> None:
        for queue in self._queues.values():
            policy = queue.redrive_policy or {}
            target = self._queues.get(str(policy.get("deadLetterTargetArn", "")))
            if target is not None:
                self._builder.redrive(queue.node, target.node, int(policy["maxReceiveCount"]))

    def _endpoint_node(self, endpoint: str) -> str | None:
        if endpoint in self._queues:
            return self._queues[endpoint].node
        return self._index.exact.get(endpoint) if ":function:" in endpoint else None

    def _connect_subscriptions(self) -> None:
        sns: SNSClient = self.clients("sns")
        for topic_arn, topic in sorted(self._topics.items()):
            pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
            for subscription in (entry for page in pages for entry in page["Subscriptions"]):
                endpoint = self._endpoint_node(subscription.get("Endpoint", ""))
                if endpoint is None:
                    continue
                attributes = sns.get_subscription_attributes(
                    SubscriptionArn=subscription["SubscriptionArn"]
                )["Attributes"]
                self._builder.subscribe(
                    topic,
                    endpoint,
                    filter_policy=parse_policy(attributes.get("FilterPolicy")),
                    scope=attributes.get("FilterPolicyScope"),
                    raw=is_true(attributes.get("RawMessageDelivery")),
                )

    def _source_node(self, source_arn: str) -> str | None:
        if source_arn in self._queues:
            return self._queues[source_arn].node
        table = _STREAM_TABLE.search(source_arn)
        if table is None or table["table"] not in self._tables:
            return None
        return self._builder.add_stream(*self._tables[table["table"]])

    def _connect_event_sources(self, lambda_client: LambdaClient, function: _Function) -> None:
        pages = lambda_client.get_paginator("list_event_source_mappings").paginate(
            FunctionName=function.name
        )
        for mapping in (entry for page in pages for entry in page["EventSourceMappings"]):
            source = self._source_node(mapping.get("EventSourceArn", ""))
            if source is None:
                continue
            self._builder.event_source(source, function.node, mapping.get("BatchSize"))
            self._connect_on_failure(function, mapping)

    def _connect_on_failure(
        self, function: _Function, mapping: EventSourceMappingConfigurationTypeDef
    ) -> None:
        destination = (
            mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination", "")
        )
        target = self._index.exact.get(destination)
        if target is not None:
            self._builder.on_failure(function.node, target, mapping.get("MaximumRetryAttempts"))

    def _connect_integrations(self) -> None:
        gateway: APIGatewayClient = self.clients("apigateway")
        for api_id, api in sorted(self._apis.items()):
            pages = gateway.get_paginator("get_resources").paginate(restApiId=api_id)
            for resource in (entry for page in pages for entry in page.get("items", [])):
                for method in sorted(resource.get("resourceMethods", {})):
                    function = self._integrated_function(gateway, api_id, resource["id"], method)
                    if function is not None:
                        self._builder.connect(api, function, EdgeKind.INVOKES)

    def _integrated_function(
        self, gateway: APIGatewayClient, api_id: str, resource_id: str, method: str
    ) -> str | None:
        try:
            integration = gateway.get_integration(
                restApiId=api_id, resourceId=resource_id, httpMethod=method
            )
        except ClientError as error:
            if error_code(error) == "NotFoundException":
                return None  # a method without an integration (e.g. CORS preflight)
            raise
        found = _INTEGRATED_FUNCTION.search(integration.get("uri", ""))
        return self._function_names.get(found["name"]) if found else None


def read_deployed(clients: ClientFactory, prefix: str = "lambdamesh") -> Topology:
    """The topology of the stacks deployed under ``prefix`` (see :class:`DeployedReader`).

    Each service's client is built once: the reader asks for one per resource it reads.
    """
    return DeployedReader(functools.cache(clients), prefix).read()
