"""The topology a deploy would create, read from the templates it would send (no AWS needed).

``lambdamesh topology --from-templates`` draws what ``lambdamesh deploy --dry-run`` prepares
(:func:`~lambdamesh.deploy.dry_run.prepare_all`: the topology templates, and every app packaged
and its template prepared and wired by deploy's own code), so that the picture can be drawn
where nothing is deployed and no credentials exist, and compared with what is: the same facts
as :mod:`~lambdamesh.topology.deployed` reads from the services, here read from the templates.
A dry run's parameters name the output they would come from (``<stack>.<OutputKey>``, an API's
URL ``<stack>.ApiUrl``); they are followed to the resource behind that output, so a function's
``ORDERS_TOPIC_ARN`` leads to the messaging stack's ``OrdersTopic`` as its value would.

Only what CloudFormation would compute from these templates is drawn; names given in the
templates (``TopicName``, ``QueueName``) are needed for the picture to match a deployed one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lambdamesh.deploy.dry_run import PreparedStack
from lambdamesh.topology.labels import is_true, parse_policy
from lambdamesh.topology.model import EdgeKind, NodeKind, Topology, TopologyBuilder
from lambdamesh.topology.references import ReferenceIndex, connect_environment

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
SERVERLESS_API = "AWS::Serverless::Api"
REST_API = "AWS::ApiGateway::RestApi"
TOPIC = "AWS::SNS::Topic"
QUEUE = "AWS::SQS::Queue"
SUBSCRIPTION = "AWS::SNS::Subscription"
TABLE = "AWS::DynamoDB::Table"
EVENT_SOURCE_MAPPING = "AWS::Lambda::EventSourceMapping"
API_METHOD = "AWS::ApiGateway::Method"

API_URL_KEY = "ApiUrl"
"""What a dry run's placeholder of a service's API URL ends with (``lambdamesh-users.ApiUrl``)."""
API_LOGICAL_ID = "RestAPI"
"""Chalice's logical id of an app's REST API."""

DEFAULT_BATCH_SIZE = {"SQS": 10, "DynamoDB": 100}
"""Lambda's batch size when a mapping states none."""
INTEGRATION = "x-amazon-apigateway-integration"

_PLACEHOLDER = re.compile(r"(?P<stack>[a-z][a-z0-9-]*)\.(?P<key>[A-Za-z0-9]+)")
_SUBSTITUTION = re.compile(r"\$\{(?P<name>[A-Za-z0-9:.]+)\}")
_ARN_OF = re.compile(r"\$\{(?P<resource>[A-Za-z0-9]+)\.Arn\}")


def _properties(resource: Mapping[str, Any]) -> Mapping[str, Any]:
    properties: Mapping[str, Any] = resource.get("Properties") or {}
    return properties


@dataclass
class TemplateValues:
    """Resolves a template's values to strings: a resource as ``<stack>#<logical id>``.

    ``Ref`` of a parameter gives its wired value, followed when it names another stack's
    output; ``Ref`` and ``Fn::GetAtt`` of a resource give the resource; ``Fn::Sub`` substitutes
    what it can.

    >>> stacks = [
    ...     PreparedStack("messaging", "shop-messaging",
    ...         {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
    ...          "Outputs": {"TopicArn": {"Value": {"Ref": "Topic"}}}}, {"NamePrefix": "shop"}),
    ...     PreparedStack("users", "shop-users", {"Resources": {}},
    ...         {"UsersTopicArn": "shop-messaging.TopicArn"}),
    ... ]
    >>> values = TemplateValues({stack.stack: stack for stack in stacks})
    >>> values.resolve("shop-users", {"Ref": "UsersTopicArn"})
    'shop-messaging#Topic'
    >>> values.resolve("shop-messaging", {"Fn::Sub": "${NamePrefix}-users"})
    'shop-users'
    """

    stacks: Mapping[str, PreparedStack]

    def resolve(self, stack: str, value: Any) -> str | None:
        """``value`` of ``stack``'s template as a string, or ``None`` when it cannot be told."""
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, Mapping) or len(value) != 1:
            return None
        (function, argument), *_ = value.items()
        if function == "Ref":
            return self._ref(stack, str(argument))
        if function == "Fn::GetAtt":
            logical_id = argument[0] if isinstance(argument, list) else str(argument).split(".")[0]
            return self._resource(stack, str(logical_id))
        if function == "Fn::Sub":
            return self._sub(stack, argument)
        return None

    def _template(self, stack: str) -> Mapping[str, Any]:
        return self.stacks[stack].template

    def _resource(self, stack: str, logical_id: str) -> str | None:
        return (
            f"{stack}#{logical_id}"
            if logical_id in self._template(stack).get("Resources", {})
            else None
        )

    def _ref(self, stack: str, name: str) -> str | None:
        prepared = self.stacks[stack]
        if name in prepared.parameters:
            return self.follow(prepared.parameters[name])
        declared = prepared.template.get("Parameters", {}).get(name)
        if isinstance(declared, Mapping) and "Default" in declared:
            return str(declared["Default"])
        return self._resource(stack, name)

    def follow(self, value: str) -> str:
        """A dry run's placeholder (``<stack>.<OutputKey>``) followed to what the output holds;
        any other value as it is."""
        placeholder = _PLACEHOLDER.fullmatch(value)
        if placeholder is None or placeholder["stack"] not in self.stacks:
            return value
        stack, key = placeholder["stack"], placeholder["key"]
        output = self._template(stack).get("Outputs", {}).get(key)
        if isinstance(output, Mapping):
            return self.resolve(stack, output.get("Value")) or value
        if key == API_URL_KEY:
            return self._resource(stack, API_LOGICAL_ID) or value
        return value

    def _sub(self, stack: str, argument: Any) -> str | None:
        text, variables = (
            (argument[0], argument[1]) if isinstance(argument, list) else (argument, {})
        )
        if not isinstance(text, str):
            return None

        def substitute(match: re.Match[str]) -> str:
            name = match["name"]
            if name in variables:
                found = self.resolve(stack, variables[name])
            elif "." in name:
                found = self._resource(stack, name.split(".")[0])
            else:
                found = self._ref(stack, name) if not name.startswith("AWS::") else None
            return found if found is not None else match[0]

        return _SUBSTITUTION.sub(substitute, text)


@dataclass
class TemplateReader:
    """Reads the topology of ``stacks`` (deploy's prepared stacks, in deploy order).

    Attributes
    ----------
    stacks
        The stacks deploy would send (:func:`~lambdamesh.deploy.dry_run.prepare_all`).
    prefix
        Their stack prefix, taken off topic and queue names.
    """

    stacks: Sequence[PreparedStack]
    prefix: str = "lambdamesh"
    _builder: TopologyBuilder = field(default_factory=TopologyBuilder, init=False)
    _index: ReferenceIndex = field(default_factory=ReferenceIndex, init=False)
    _tables: dict[str, tuple[str, str]] = field(default_factory=dict, init=False)
    _values: TemplateValues = field(init=False)

    def __post_init__(self) -> None:
        self._values = TemplateValues({stack.stack: stack for stack in self.stacks})

    def read(self) -> Topology:
        """The topology the stacks would make once deployed."""
        for stack in self.stacks:
            for logical_id, resource in self._resources(stack):
                self._add_node(stack, logical_id, resource)
        for stack in self.stacks:
            for logical_id, resource in self._resources(stack):
                self._add_edges(stack, logical_id, resource)
        return self._builder.build()

    @staticmethod
    def _resources(stack: PreparedStack) -> list[tuple[str, Mapping[str, Any]]]:
        return sorted(stack.template.get("Resources", {}).items())

    def _node(self, stack: PreparedStack, value: Any) -> str | None:
        resolved = self._values.resolve(stack.stack, value)
        return self._index.find(resolved) if resolved is not None else None

    def _name(
        self, stack: PreparedStack, resource: Mapping[str, Any], key: str, default: str
    ) -> str:
        name = self._values.resolve(stack.stack, _properties(resource).get(key)) or default
        return name.removeprefix(f"{self.prefix}-")

    def _add_node(self, stack: PreparedStack, logical_id: str, resource: Mapping[str, Any]) -> None:
        kind = resource.get("Type")
        token = f"{stack.stack}#{logical_id}"
        if kind == TOPIC:
            node = self._builder.add_topic(self._name(stack, resource, "TopicName", logical_id))
        elif kind == QUEUE:
            node = self._builder.add_queue(self._name(stack, resource, "QueueName", logical_id))
        elif kind in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
            node = self._builder.add_function(stack.service, logical_id)
        elif kind in (SERVERLESS_API, REST_API):
            node = self._builder.add_rest_api(stack.service, logical_id)
        elif kind == TABLE:
            self._tables[token] = (stack.service, logical_id)
            return
        else:
            return
        self._index.add_value(token, node)

    def _source(self, stack: PreparedStack, value: Any) -> str | None:
        """The queue, or the table's stream, an event source names."""
        resolved = self._values.resolve(stack.stack, value)
        if resolved in self._tables:
            return self._builder.add_stream(*self._tables[resolved])
        return self._index.find(resolved) if resolved is not None else None

    def _add_edges(
        self, stack: PreparedStack, logical_id: str, resource: Mapping[str, Any]
    ) -> None:
        kind = resource.get("Type")
        properties = _properties(resource)
        if kind == QUEUE:
            self._add_redrive(stack, logical_id, properties)
        elif kind == SUBSCRIPTION:
            self._add_subscription(stack, properties)
        elif kind in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
            self._add_function_edges(stack, logical_id, properties)
        elif kind == EVENT_SOURCE_MAPPING:
            function = self._node(stack, properties.get("FunctionName"))
            if function is not None:
                self._add_event_source(stack, function, properties, EVENT_SOURCE_MAPPING)
        elif kind in (SERVERLESS_API, REST_API):
            document = properties.get("DefinitionBody") or properties.get("Body") or {}
            self._add_integrations(stack, f"{stack.stack}#{logical_id}", document)
        elif kind == API_METHOD:
            integration = {"x": {"post": {INTEGRATION: {"uri": _integration_uri(properties)}}}}
            self._add_integrations(
                stack,
                self._values.resolve(stack.stack, properties.get("RestApiId")),
                {"paths": integration},
            )

    def _add_redrive(
        self, stack: PreparedStack, logical_id: str, properties: Mapping[str, Any]
    ) -> None:
        policy = properties.get("RedrivePolicy")
        policy = json.loads(policy) if isinstance(policy, str) else policy
        if not isinstance(policy, Mapping):
            return
        queue = self._index.find(f"{stack.stack}#{logical_id}")
        target = self._node(stack, policy.get("deadLetterTargetArn"))
        if queue is not None and target is not None:
            self._builder.redrive(queue, target, int(policy["maxReceiveCount"]))

    def _add_subscription(self, stack: PreparedStack, properties: Mapping[str, Any]) -> None:
        topic = self._node(stack, properties.get("TopicArn"))
        endpoint = self._node(stack, properties.get("Endpoint"))
        if topic is None or endpoint is None:
            return
        self._builder.subscribe(
            topic,
            endpoint,
            filter_policy=parse_policy(properties.get("FilterPolicy")),
            scope=properties.get("FilterPolicyScope"),
            raw=is_true(properties.get("RawMessageDelivery")),
        )

    def _environment(self, stack: PreparedStack, properties: Mapping[str, Any]) -> dict[str, str]:
        shared = stack.template.get("Globals", {}).get("Function", {}).get("Environment", {})
        own = properties.get("Environment", {})
        variables = {**shared.get("Variables", {}), **own.get("Variables", {})}
        resolved = {
            name: self._values.resolve(stack.stack, value) for name, value in variables.items()
        }
        return {name: value for name, value in resolved.items() if value is not None}

    def _add_function_edges(
        self, stack: PreparedStack, logical_id: str, properties: Mapping[str, Any]
    ) -> None:
        function = f"{stack.service}.{logical_id}"
        for _, event in sorted(properties.get("Events", {}).items()):
            if event.get("Type") in DEFAULT_BATCH_SIZE:
                self._add_event_source(stack, function, _properties(event), str(event["Type"]))
        connect_environment(
            self._builder, function, self._environment(stack, properties), self._index
        )

    def _add_event_source(
        self, stack: PreparedStack, function: str, properties: Mapping[str, Any], kind: str
    ) -> None:
        source = self._source(
            stack,
            properties.get("Queue") or properties.get("Stream") or properties.get("EventSourceArn"),
        )
        if source is None:
            return
        default = DEFAULT_BATCH_SIZE[
            "SQS" if self._builder.kind_of(source) is not NodeKind.STREAM else "DynamoDB"
        ]
        self._builder.event_source(source, function, int(properties.get("BatchSize", default)))
        destination = (
            properties.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        )
        target = self._node(stack, destination) if destination is not None else None
        if target is not None:
            self._builder.on_failure(
                function, target, int(properties.get("MaximumRetryAttempts", -1))
            )

    def _add_integrations(
        self, stack: PreparedStack, api_token: str | None, document: Mapping[str, Any]
    ) -> None:
        api = self._index.find(api_token) if api_token is not None else None
        if api is None:
            return
        for integrated in sorted(set(integrated_resources(document))):
            function = self._index.find(f"{stack.stack}#{integrated}")
            if function is not None:
                self._builder.connect(api, function, EdgeKind.INVOKES)


def _integration_uri(method: Mapping[str, Any]) -> Any:
    """The ``Uri`` of an ``AWS::ApiGateway::Method``'s integration."""
    integration = method.get("Integration")
    return integration.get("Uri") if isinstance(integration, Mapping) else None


def integrated_resources(document: Mapping[str, Any]) -> Iterator[str]:
    """The logical ids of the functions an OpenAPI document's integrations invoke.

    >>> uri = {"Fn::Sub": "arn:${AWS::Partition}:apigateway:${AWS::Region}:lambda:path/"
    ...        "2015-03-31/functions/${APIHandler.Arn}/invocations"}
    >>> list(integrated_resources({"paths": {"/users": {"post": {INTEGRATION: {"uri": uri}}}}}))
    ['APIHandler']
    """
    for methods in document.get("paths", {}).values():
        for operation in methods.values() if isinstance(methods, Mapping) else ():
            if not isinstance(operation, Mapping):
                continue
            uri = operation.get(INTEGRATION, {}).get("uri")
            text = uri.get("Fn::Sub") if isinstance(uri, Mapping) else uri
            text = text[0] if isinstance(text, list) else text
            if isinstance(text, str):
                yield from (match["resource"] for match in _ARN_OF.finditer(text))


def read_templates(stacks: Sequence[PreparedStack], prefix: str = "lambdamesh") -> Topology:
    """The topology ``stacks`` would make (see :class:`TemplateReader`)."""
    return TemplateReader(stacks, prefix).read()
