"""A trace's forest drawn for people (a tree in the terminal), for documents (Mermaid) and for
scripts (JSON).

Every hop is one line: its kind, its service and what it reached (``→``) or what entered it
(``←``), its outcome, how long it took and when it started: the first hop of a tree at its
time of day (UTC), every other one as milliseconds after it.

>>> from lambdamesh.trace.records import HopRecord
>>> from lambdamesh.trace.tree import build_forest
>>> api = HopRecord("api", "orders", "POST /orders", 1767225600000, 84.2, "ok", "201",
...                 "4bf92f3577b34da6a3ce929d0e0e4736", "a1", None, {})
>>> call = HopRecord("http", "orders", "users-api", 1767225600003, 12.0, "ok", "200",
...                  "4bf92f3577b34da6a3ce929d0e0e4736", "b2", "a1", {"method": "GET"})
>>> print(tree_text(build_forest([api, call]), "correlation id c-1"))
correlation id c-1
└── api orders ← POST /orders · ok 201 · 84.2 ms · 00:00:00.000 UTC · trace 4bf92f35
    └── http orders → users-api GET · ok 200 · 12.0 ms · +3 ms
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from lambdamesh.trace.records import DEAD_LETTERED, HopRecord
from lambdamesh.trace.tree import HopNode, trace_ids, walk
from lambdamesh_toolkit import hops

if TYPE_CHECKING:
    from rich.text import Text
    from rich.tree import Tree

FORMATS: Final = ("tree", "mermaid", "json")
"""What ``lambdamesh trace --format`` can draw."""

INBOUND: Final = frozenset({hops.API, hops.RPC_SERVE, hops.CONSUME, hops.STREAM})
"""Hops that enter a function: ``service ← what entered``; the others reach out: ``→``."""
ARROWS: Final = {hops.RETRY: "⟳", DEAD_LETTERED: "⇣"}
STYLES: Final = {hops.OK: "green", hops.REFUSED: "yellow", hops.FAILED: "bold red"}
TRACE_ID_CHARS: Final = 8
"""How much of a trace id the tree shows (``--trace-id`` takes that much)."""
PLAIN_WIDTH: Final = 240
"""Where a tree drawn as plain text wraps: a deep hop's line is long, and better kept whole."""


def hop_label(node: HopNode, origin_ms: int | None) -> str:
    """One hop as a line of text.

    Parameters
    ----------
    node
        The hop.
    origin_ms
        When the first hop of its tree started; ``None`` for that first hop itself, which
        shows its time of day and its trace instead of an offset.
    """
    return " · ".join(_label_parts(node.hop, origin_ms))


def _label_parts(hop: HopRecord, origin_ms: int | None) -> Iterator[str]:
    yield f"{hop.kind} {hop.service} {_reached(hop)}"
    yield _outcome(hop)
    if hop.duration_ms is not None:
        yield f"{hop.duration_ms:.1f} ms"
    if origin_ms is None:
        yield _time_of_day(hop.start_ms)
        if hop.trace_id:
            yield f"trace {hop.trace_id[:TRACE_ID_CHARS]}"
    else:
        yield f"+{max(0, hop.start_ms - origin_ms)} ms"


def _reached(hop: HopRecord) -> str:
    """What the hop reached (``→``) or what entered it (``←``), with what it carried."""
    arrow = ARROWS.get(hop.kind, "←" if hop.kind in INBOUND else "→")
    extras = [str(hop.details[key]) for key in ("method", "event_type") if key in hop.details]
    if "attempt" in hop.details and hop.kind in (hops.RETRY, DEAD_LETTERED):
        extras.append(f"attempt {hop.details['attempt']}")
    return " ".join([arrow, hop.peer, *extras])


def _outcome(hop: HopRecord) -> str:
    return hop.outcome if hop.status is None else f"{hop.outcome} {hop.status}"


def _time_of_day(epoch_ms: int) -> str:
    stamp = time.strftime("%H:%M:%S", time.gmtime(epoch_ms / 1000))
    return f"{stamp}.{epoch_ms % 1000:03d} UTC"


def tree(forest: Iterable[HopNode], title: str) -> Tree:
    """The forest as a ``rich`` tree under ``title``, each outcome in its colour."""
    # Imported here: rich is for people at a terminal, not for every command's start.
    from rich.tree import Tree

    top = Tree(title, guide_style="dim")
    for root in forest:
        _add(top, root, None)
    return top


def _add(parent: Tree, node: HopNode, origin_ms: int | None) -> None:
    branch = parent.add(_styled(node, origin_ms))
    for child in node.children:
        _add(branch, child, node.hop.start_ms if origin_ms is None else origin_ms)


def _styled(node: HopNode, origin_ms: int | None) -> Text:
    from rich.text import Text

    # A Text, not markup: a route or a reason may hold brackets.
    return Text(hop_label(node, origin_ms), style=STYLES.get(node.hop.outcome, ""))


def tree_text(forest: Iterable[HopNode], title: str, *, width: int = PLAIN_WIDTH) -> str:
    """The tree as plain text (no colour), lines of at most ``width`` characters."""
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=width, color_system=None, emoji=False).print(tree(forest, title))
    return out.getvalue().rstrip("\n")


def mermaid(forest: Iterable[HopNode]) -> str:
    """The forest as a Mermaid flowchart, top to bottom; refused and failed hops coloured.

    >>> from lambdamesh.trace.records import HopRecord
    >>> from lambdamesh.trace.tree import build_forest
    >>> a = HopRecord("api", "users", 'GET "x"', 0, 1.0, "ok", "200", "t", "a", None, {})
    >>> b = HopRecord("publish", "users", "topic", 1, 2.0, "failed", "Boom", "t", "b", "a", {})
    >>> print(mermaid(build_forest([a, b])))
    flowchart TD
      classDef refused fill:#fff4cc,stroke:#b58900
      classDef failed fill:#ffd6d6,stroke:#cc0000
      h1["api · users<br/>← GET #quot;x#quot;<br/>ok 200 · 1.0 ms"]
      h2["publish · users<br/>→ topic<br/>failed Boom · 2.0 ms · +1 ms"]:::failed
      h1 --> h2
    """
    placed = list(_with_origins(forest))
    ids = {id(node): f"h{number}" for number, (node, _) in enumerate(placed, start=1)}
    lines = [
        "flowchart TD",
        "  classDef refused fill:#fff4cc,stroke:#b58900",
        "  classDef failed fill:#ffd6d6,stroke:#cc0000",
    ]
    edges: list[str] = []
    for node, origin in placed:
        suffix = f":::{node.hop.outcome}" if node.hop.outcome != hops.OK else ""
        lines.append(f'  {ids[id(node)]}["{_mermaid_label(node.hop, origin)}"]{suffix}')
        edges += [f"  {ids[id(node)]} --> {ids[id(child)]}" for child in node.children]
    return "\n".join([*lines, *edges])


def _with_origins(
    forest: Iterable[HopNode], origin_ms: int | None = None
) -> Iterator[tuple[HopNode, int | None]]:
    """Every node depth first, with when its tree's first hop started (``None`` for that one)."""
    for node in forest:
        yield node, origin_ms
        yield from _with_origins(
            node.children, node.hop.start_ms if origin_ms is None else origin_ms
        )


def _mermaid_label(hop: HopRecord, origin_ms: int | None) -> str:
    timing = [_outcome(hop)]
    if hop.duration_ms is not None:
        timing.append(f"{hop.duration_ms:.1f} ms")
    if origin_ms is not None:
        timing.append(f"+{max(0, hop.start_ms - origin_ms)} ms")
    text = f"{hop.kind} · {hop.service}<br/>{_reached(hop)}<br/>{' · '.join(timing)}"
    return _mermaid_escape(text)


def _mermaid_escape(text: str) -> str:
    # Mermaid's entity codes inside a quoted label; the <br/> line breaks are kept.
    escaped = text.replace('"', "#quot;").replace("<br/>", "\0")
    escaped = escaped.replace("<", "#lt;").replace(">", "#gt;")
    return escaped.replace("\0", "<br/>")


def json_document(correlation_id: str, forest: list[HopNode]) -> dict[str, Any]:
    """The forest as JSON-ready data: the correlation id, its traces, and the hops nested.

    >>> from lambdamesh.trace.records import HopRecord
    >>> from lambdamesh.trace.tree import build_forest
    >>> api = HopRecord("api", "users", "POST /users", 0, 1.0, "ok", "201", "t1", "a", None, {})
    >>> document = json_document("c-1", build_forest([api]))
    >>> document["traces"], document["hops"][0]["peer"], document["hops"][0]["children"]
    (['t1'], 'POST /users', [])
    """
    return {
        "correlation_id": correlation_id,
        "traces": trace_ids(forest),
        "hop_count": sum(1 for _ in walk(forest)),
        "hops": [_node_document(node) for node in forest],
    }


def _node_document(node: HopNode) -> dict[str, Any]:
    hop = node.hop
    return {
        "hop": hop.kind,
        "service": hop.service,
        "peer": hop.peer,
        "outcome": hop.outcome,
        "status": hop.status,
        "start_ms": hop.start_ms,
        "duration_ms": hop.duration_ms,
        "trace_id": hop.trace_id,
        "span_id": hop.span_id,
        "parent_span_id": hop.parent_span_id,
        "parent_found": node.parent_found,
        **hop.details,
        "children": [_node_document(child) for child in node.children],
    }
