"""The topology as data: nodes and the edges between them, under names stable across deploys.

A node is a function, a service's REST API, a DynamoDB stream a function consumes, an SNS topic,
an SQS queue or a dead-letter queue. Its id is a logical name, never a physical one: a function
is ``<service>.<logical id>`` (``orders.APIHandler``), as are an API (``orders.RestAPI``) and
a stream (``orders.OrderEventsTable``, its table's logical id); a topic is ``topic:<name>`` and
a queue ``queue:<name>``, the name as ``infra/topology/messaging.json`` spells it without the
stack prefix (``queue:orders-outcomes``). No account, region, random suffix or prefix enters a
node or an edge, so two deployments of the same templates give the same :class:`Topology`, and
:meth:`Topology.content_hash` tells whether a picture drawn from one is stale.

>>> builder = TopologyBuilder()
>>> handler = builder.add_function("users", "APIHandler")
>>> topic = builder.add_topic("users")
>>> builder.connect(handler, topic, EdgeKind.PUBLISHES)
>>> topology = builder.build()
>>> [node.id for node in topology.nodes]
['topic:users', 'users.APIHandler']
>>> topology.services
('users',)
>>> topology.content_hash() == builder.build().content_hash()
True
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lambdamesh.topology.labels import (
    batch_label,
    filter_policy_label,
    on_failure_label,
    redrive_label,
)

DEAD_LETTER_SUFFIX = "-dlq"
FIFO_SUFFIX = ".fifo"


class NodeKind(StrEnum):
    """What a node is."""

    FUNCTION = "function"
    REST_API = "rest_api"
    STREAM = "stream"
    TOPIC = "topic"
    QUEUE = "queue"
    DEAD_LETTER_QUEUE = "dead_letter_queue"


class EdgeKind(StrEnum):
    """What an edge means; it always points the way messages or calls go."""

    INVOKES = "invokes"
    """A REST API's integration invokes a function (its handler)."""
    HTTP = "http"
    """A function calls another service's REST API."""
    RPC = "rpc"
    """A function invokes another service's function directly (Lambda ``Invoke``)."""
    PUBLISHES = "publishes"
    """A function publishes to a topic."""
    DELIVERS = "delivers"
    """A topic delivers to a queue through a subscription (label: its filter policy)."""
    TRIGGERS = "triggers"
    """An event source mapping: a queue or a stream invokes a function (label: batch size)."""
    REDRIVES = "redrives"
    """A queue's redrive policy moves a message to its dead-letter queue."""
    ON_FAILURE = "on_failure"
    """A stream mapping of the function sends what it gave up on to its destination."""


@dataclass(frozen=True, order=True)
class Node:
    """A thing in the picture.

    Attributes
    ----------
    id
        Its stable name (see the module's description).
    kind
        What it is.
    label
        What the picture writes on it.
    service
        The service it belongs to (functions, APIs, streams); ``None`` for messaging.
    """

    id: str
    kind: NodeKind
    label: str
    service: str | None = None


@dataclass(frozen=True, order=True)
class Edge:
    """A connection from ``source`` to ``target`` (node ids), of a kind, with its words."""

    source: str
    target: str
    kind: EdgeKind
    label: str = ""


@dataclass(frozen=True)
class Topology:
    """Every node and edge, sorted: the same facts always give the same value.

    Attributes
    ----------
    nodes
        Sorted by id.
    edges
        Sorted by source, target, kind and label; every end is one of :attr:`nodes`.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]

    @property
    def services(self) -> tuple[str, ...]:
        """The services that own a node, by name."""
        return tuple(sorted({node.service for node in self.nodes if node.service is not None}))

    def node(self, node_id: str) -> Node:
        """The node ``node_id``.

        Raises
        ------
        KeyError
            When there is none.
        """
        for node in self.nodes:
            if node.id == node_id:
                return node
        raise KeyError(node_id)

    def of_kind(self, *kinds: NodeKind) -> list[Node]:
        """The nodes of these kinds, by id."""
        return [node for node in self.nodes if node.kind in kinds]

    def in_service(self, service: str) -> list[Node]:
        """The nodes of ``service``: its REST API, its streams, then its functions."""
        order = {NodeKind.REST_API: 0, NodeKind.STREAM: 1, NodeKind.FUNCTION: 2}
        owned = [node for node in self.nodes if node.service == service]
        return sorted(owned, key=lambda node: (order.get(node.kind, 3), node.id))

    def as_dict(self) -> dict[str, Any]:
        """The topology as JSON-ready data (``lambdamesh topology --format json``)."""
        return {
            "nodes": [
                {
                    "id": node.id,
                    "kind": str(node.kind),
                    "label": node.label,
                    "service": node.service,
                }
                for node in self.nodes
            ],
            "edges": [
                {
                    "source": edge.source,
                    "target": edge.target,
                    "kind": str(edge.kind),
                    "label": edge.label,
                }
                for edge in self.edges
            ],
        }

    def content_hash(self) -> str:
        """The SHA-256 of :meth:`as_dict` in canonical JSON: equal exactly when the facts are."""
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class TopologyBuilder:
    """Collects nodes and edges as a reader finds them; :meth:`build` gives the topology.

    A queue becomes a dead-letter queue when a redrive policy or an on-failure destination
    names it, or when its name ends in ``-dlq`` (``-dlq.fifo``), as the topology's do.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}
        self._edges: set[Edge] = set()
        self._dead_letters: set[str] = set()

    def _add(self, node: Node) -> str:
        self._nodes.setdefault(node.id, node)
        return node.id

    def add_function(self, service: str, logical_id: str) -> str:
        """A function of ``service``; its node id (``orders.APIHandler``)."""
        return self._add(Node(f"{service}.{logical_id}", NodeKind.FUNCTION, logical_id, service))

    def add_rest_api(self, service: str, logical_id: str) -> str:
        """``service``'s REST API; its node id (``orders.RestAPI``)."""
        return self._add(Node(f"{service}.{logical_id}", NodeKind.REST_API, "REST API", service))

    def add_stream(self, service: str, table_logical_id: str) -> str:
        """The stream of ``service``'s table ``table_logical_id``; its node id."""
        node = Node(
            f"{service}.{table_logical_id}",
            NodeKind.STREAM,
            f"{table_logical_id} stream",
            service,
        )
        return self._add(node)

    def add_topic(self, name: str) -> str:
        """The topic ``name`` (without the stack prefix); its node id (``topic:orders.fifo``)."""
        return self._add(Node(f"topic:{name}", NodeKind.TOPIC, name))

    def add_queue(self, name: str) -> str:
        """The queue ``name`` (without the stack prefix); its node id (``queue:<name>``)."""
        if name.removesuffix(FIFO_SUFFIX).endswith(DEAD_LETTER_SUFFIX):
            self._dead_letters.add(f"queue:{name}")
        return self._add(Node(f"queue:{name}", NodeKind.QUEUE, name))

    def has(self, node_id: str) -> bool:
        """Whether the node was added."""
        return node_id in self._nodes

    def kind_of(self, node_id: str) -> NodeKind:
        """The kind of an added node."""
        return self._nodes[node_id].kind

    def service_of(self, node_id: str) -> str | None:
        """The service of an added node."""
        return self._nodes[node_id].service

    def connect(self, source: str, target: str, kind: EdgeKind, label: str = "") -> None:
        """An edge between two added nodes.

        Raises
        ------
        KeyError
            When either end was not added.
        """
        for end in (source, target):
            if end not in self._nodes:
                raise KeyError(f"no node {end} for a {kind} edge")
        self._edges.add(Edge(source, target, kind, label))

    def subscribe(
        self,
        topic: str,
        endpoint: str,
        *,
        filter_policy: Mapping[str, Any] | None,
        scope: str | None,
        raw: bool,
    ) -> None:
        """A subscription of ``endpoint`` (a queue or a function) to ``topic``."""
        label = filter_policy_label(filter_policy, scope=scope, raw=raw)
        self.connect(topic, endpoint, EdgeKind.DELIVERS, label)

    def redrive(self, queue: str, dead_letter_queue: str, max_receive_count: int) -> None:
        """``queue``'s redrive policy to ``dead_letter_queue``."""
        self._dead_letters.add(dead_letter_queue)
        self.connect(queue, dead_letter_queue, EdgeKind.REDRIVES, redrive_label(max_receive_count))

    def event_source(self, source: str, function: str, batch_size: int | None) -> None:
        """An event source mapping of ``function`` on a queue or a stream."""
        self.connect(source, function, EdgeKind.TRIGGERS, batch_label(batch_size))

    def on_failure(self, function: str, destination: str, retries: int | None) -> None:
        """The on-failure destination of a stream mapping of ``function``."""
        if self._nodes[destination].kind is NodeKind.QUEUE:
            self._dead_letters.add(destination)
        self.connect(function, destination, EdgeKind.ON_FAILURE, on_failure_label(retries))

    def build(self) -> Topology:
        """The topology: queues that serve as dead-letter queues marked so, all sorted."""
        nodes = [
            Node(node.id, NodeKind.DEAD_LETTER_QUEUE, node.label, node.service)
            if node.kind is NodeKind.QUEUE and node.id in self._dead_letters
            else node
            for node in self._nodes.values()
        ]
        return Topology(tuple(sorted(nodes)), tuple(sorted(self._edges)))
