"""Hops joined into trees by their span ids.

A hop whose ``parent_span_id`` is the span of another hop read is that hop's child; one whose
parent is missing (the first hop of a trace, or one called by a client that logs nothing, such
as ``curl`` or the demo) is a root. Children and roots are in the order they started.

>>> from lambdamesh.trace.records import HopRecord
>>> def record(span, parent, start):
...     return HopRecord("api", "users", "GET /users/{id}", start, 1.0, "ok", None, "t",
...                      span, parent, {})
>>> [root] = build_forest([record("b", "a", 2), record("a", None, 1), record("c", "a", 3)])
>>> root.hop.span_id, [child.hop.span_id for child in root.children]
('a', ['b', 'c'])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from lambdamesh.trace.records import HopRecord


@dataclass
class HopNode:
    """A hop and the hops it caused.

    Attributes
    ----------
    hop
        The hop.
    children
        What it caused, in the order they started.
    parent_found
        Whether its parent's record was read (``False`` for a root whose caller logs nothing).
    """

    hop: HopRecord
    children: list[HopNode] = field(default_factory=list)
    parent_found: bool = False


def build_forest(hops: Iterable[HopRecord]) -> list[HopNode]:
    """The trees the hops make: every hop once (a span read twice counts once), each under
    the hop that caused it, the roots and every node's children in the order they started."""
    nodes: dict[str, HopNode] = {}
    for hop in sorted(hops, key=_start_order):
        nodes.setdefault(hop.span_id, HopNode(hop))
    roots: list[HopNode] = []
    for node in nodes.values():
        parent = nodes.get(node.hop.parent_span_id or "")
        if parent is None or parent is node or _descends_from(parent, node, nodes):
            roots.append(node)
            continue
        node.parent_found = True
        parent.children.append(node)
    return roots


def in_trace(hops: Iterable[HopRecord], trace_id: str) -> list[HopRecord]:
    """The hops of one W3C trace (a trace id's first characters are enough)."""
    wanted = trace_id.lower()
    return [hop for hop in hops if hop.trace_id is not None and hop.trace_id.startswith(wanted)]


def walk(forest: Iterable[HopNode], depth: int = 0) -> Iterator[tuple[HopNode, int]]:
    """Every node of the forest, depth first, with its depth (0 for a root)."""
    for node in forest:
        yield node, depth
        yield from walk(node.children, depth + 1)


def trace_ids(forest: Iterable[HopNode]) -> list[str]:
    """The traces of the forest's roots, in the order they started, each once."""
    return list(dict.fromkeys(node.hop.trace_id for node in forest if node.hop.trace_id))


def _start_order(hop: HopRecord) -> tuple[int, str]:
    return hop.start_ms, hop.span_id


def _descends_from(candidate: HopNode, ancestor: HopNode, nodes: dict[str, HopNode]) -> bool:
    """Whether ``candidate``'s chain of parents reaches ``ancestor`` (a cycle, which random
    span ids never make, but a hand-edited or corrupted log could)."""
    seen: set[str] = set()
    current: HopNode | None = candidate
    while current is not None and current.hop.span_id not in seen:
        if current is ancestor:
            return True
        seen.add(current.hop.span_id)
        current = nodes.get(current.hop.parent_span_id or "")
    return False
