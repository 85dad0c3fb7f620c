"""The topology as a mermaid flowchart: one subgraph per service, messaging in three columns.

Left to right: the services (each a subgraph of its REST API, streams and functions), the SNS
topics, the SQS queues, the dead-letter queues. Every edge carries its words (a subscription's
filter policy, a mapping's batch size, a redrive's ``maxReceiveCount``). The text is a function
of the model alone, so an unchanged topology gives the same bytes.

>>> from lambdamesh.topology.model import EdgeKind, TopologyBuilder
>>> builder = TopologyBuilder()
>>> handler = builder.add_function("users", "APIHandler")
>>> builder.connect(handler, builder.add_topic("users"), EdgeKind.PUBLISHES)
>>> print(render_mermaid(builder.build()))  # doctest: +ELLIPSIS
%% lambdamesh topology sha256:...
flowchart LR
  subgraph svc_users["users"]
    users_APIHandler["APIHandler"]
  end
  subgraph topics["SNS topics"]
    topic_users{{"users"}}
  end
  users_APIHandler --> topic_users
  classDef function fill:#ffffff,stroke:#334155,color:#0f172a
  ...
"""

from __future__ import annotations

import re

from lambdamesh.topology.model import EdgeKind, Node, NodeKind, Topology

HASH_COMMENT = "%% lambdamesh topology sha256:"
"""Begins the first line: the model's content hash, as the SVG carries it."""

_SHAPES: dict[NodeKind, tuple[str, str]] = {
    NodeKind.FUNCTION: ("[", "]"),
    NodeKind.REST_API: ("([", "])"),
    NodeKind.STREAM: ("[/", "/]"),
    NodeKind.TOPIC: ("{{", "}}"),
    NodeKind.QUEUE: ("[(", ")]"),
    NodeKind.DEAD_LETTER_QUEUE: ("[(", ")]"),
}

_ARROWS: dict[EdgeKind, str] = {
    EdgeKind.REDRIVES: "-.->",
    EdgeKind.ON_FAILURE: "-.->",
    EdgeKind.RPC: "==>",
    EdgeKind.HTTP: "==>",
}
"""Arrows other than ``-->``: dotted to dead letters, thick for synchronous calls."""

MESSAGING_GROUPS: tuple[tuple[str, str, NodeKind], ...] = (
    ("topics", "SNS topics", NodeKind.TOPIC),
    ("queues", "SQS queues", NodeKind.QUEUE),
    ("dlqs", "dead-letter queues", NodeKind.DEAD_LETTER_QUEUE),
)

CLASSES: dict[NodeKind, str] = {
    NodeKind.FUNCTION: "fill:#ffffff,stroke:#334155,color:#0f172a",
    NodeKind.REST_API: "fill:#e0f2fe,stroke:#0369a1,color:#0c4a6e",
    NodeKind.STREAM: "fill:#fef3c7,stroke:#b45309,color:#78350f",
    NodeKind.TOPIC: "fill:#ede9fe,stroke:#6d28d9,color:#4c1d95",
    NodeKind.QUEUE: "fill:#dcfce7,stroke:#15803d,color:#14532d",
    NodeKind.DEAD_LETTER_QUEUE: "fill:#fee2e2,stroke:#b91c1c,color:#7f1d1d",
}
"""The same colours as the SVG's."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")
_ESCAPES = {'"': "#quot;", "<": "#lt;", ">": "#gt;", "#": "#35;", "|": "#124;"}


def escape(text: str) -> str:
    """``text`` safe inside a quoted mermaid label (entity codes for what would end it).

    >>> escape('say "hi" <b> #1 | 2')
    'say #quot;hi#quot; #lt;b#gt; #35;1 #124; 2'
    """
    return "".join(_ESCAPES.get(character, character) for character in text)


def mermaid_ids(topology: Topology) -> dict[str, str]:
    """Node id → a mermaid id: readable, and unique (a counter where two would clash).

    >>> from lambdamesh.topology.model import TopologyBuilder
    >>> builder = TopologyBuilder()
    >>> _ = builder.add_queue("a-b"), builder.add_queue("a.b")
    >>> sorted(mermaid_ids(builder.build()).values())
    ['queue_a_b', 'queue_a_b_2']
    """
    ids: dict[str, str] = {}
    taken: set[str] = set()
    for node in topology.nodes:
        base = _UNSAFE.sub("_", node.id.replace(":", "_"))
        candidate, counter = base, 1
        while candidate in taken:
            counter += 1
            candidate = f"{base}_{counter}"
        taken.add(candidate)
        ids[node.id] = candidate
    return ids


def _node_line(node: Node, ids: dict[str, str]) -> str:
    opening, closing = _SHAPES[node.kind]
    return f'    {ids[node.id]}{opening}"{escape(node.label)}"{closing}'


def render_mermaid(topology: Topology) -> str:
    """The topology as mermaid source (``flowchart LR``), ending in a newline."""
    ids = mermaid_ids(topology)
    lines = [f"{HASH_COMMENT}{topology.content_hash()}", "flowchart LR"]
    for service in topology.services:
        lines.append(f'  subgraph svc_{_UNSAFE.sub("_", service)}["{escape(service)}"]')
        lines += [_node_line(node, ids) for node in topology.in_service(service)]
        lines.append("  end")
    for group, title, kind in MESSAGING_GROUPS:
        members = topology.of_kind(kind)
        if members:
            lines.append(f'  subgraph {group}["{title}"]')
            lines += [_node_line(node, ids) for node in members]
            lines.append("  end")
    for edge in topology.edges:
        arrow = _ARROWS.get(edge.kind, "-->")
        label = f'|"{escape(edge.label)}"|' if edge.label else ""
        lines.append(f"  {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    used = {node.kind for node in topology.nodes}
    lines += [f"  classDef {kind} {style}" for kind, style in CLASSES.items()]
    for kind in CLASSES:
        if kind in used:
            listed = ",".join(ids[node.id] for node in topology.of_kind(kind))
            lines.append(f"  class {listed} {kind}")
    return "\n".join(lines) + "\n"


def mermaid_hash(text: str) -> str | None:
    """The content hash a mermaid text carries on its first line, or ``None``.

    >>> mermaid_hash("%% lambdamesh topology sha256:abc\\nflowchart LR\\n")
    'abc'
    """
    first = text.split("\n", 1)[0]
    return first.removeprefix(HASH_COMMENT).strip() if first.startswith(HASH_COMMENT) else None
