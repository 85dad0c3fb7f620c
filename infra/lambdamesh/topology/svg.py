"""The topology as an SVG picture, written here in plain Python.

Graphviz or a mermaid renderer would draw it too, but each is a system package or a Node.js
tool that neither ``make demo`` nor CI installs, and their output changes between versions
(coordinates, ids, fonts), so a checked-in picture would drift without the topology changing.
This module needs nothing but the model: :mod:`~lambdamesh.topology.layout` places the boxes
in whole pixels, and the same model always gives the same bytes. The picture's first line
carries the model's content hash (:data:`HASH_COMMENT`), so a test can tell a stale picture
without drawing it again.

>>> from lambdamesh.topology.model import EdgeKind, TopologyBuilder
>>> builder = TopologyBuilder()
>>> handler = builder.add_function("users", "APIHandler")
>>> builder.connect(handler, builder.add_topic("users"), EdgeKind.PUBLISHES)
>>> picture = render_svg(builder.build())
>>> svg_hash(picture) == builder.build().content_hash()
True
>>> picture == render_svg(builder.build())
True
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from xml.sax.saxutils import escape as _xml_escape

from lambdamesh.topology.layout import (
    COLUMN_TITLES,
    FONT_SIZE,
    MARGIN,
    Box,
    Label,
    Layout,
    Route,
    lay_out,
    text_width,
)
from lambdamesh.topology.model import EdgeKind, NodeKind, Topology

HASH_COMMENT = "<!-- lambdamesh topology sha256:"
"""Begins the picture's first line; the model's content hash follows."""
_HASH = re.compile(r"<!-- lambdamesh topology sha256:(?P<hash>[0-9a-f]{64}) ")

FONT_FAMILY = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"


@dataclass(frozen=True)
class NodeStyle:
    """How a kind of node is drawn, and what the legend calls it."""

    fill: str
    stroke: str
    text: str
    radius: int
    legend: str


@dataclass(frozen=True)
class EdgeStyle:
    """How a kind of edge is drawn, and what the legend calls it."""

    colour: str
    dashed: bool
    legend: str


NODE_STYLES: dict[NodeKind, NodeStyle] = {
    NodeKind.REST_API: NodeStyle("#e0f2fe", "#0369a1", "#0c4a6e", 13, "REST API"),
    NodeKind.STREAM: NodeStyle("#fef3c7", "#b45309", "#78350f", 2, "DynamoDB stream"),
    NodeKind.FUNCTION: NodeStyle("#ffffff", "#334155", "#0f172a", 4, "Lambda function"),
    NodeKind.TOPIC: NodeStyle("#ede9fe", "#6d28d9", "#4c1d95", 13, "SNS topic"),
    NodeKind.QUEUE: NodeStyle("#dcfce7", "#15803d", "#14532d", 2, "SQS queue"),
    NodeKind.DEAD_LETTER_QUEUE: NodeStyle("#fee2e2", "#b91c1c", "#7f1d1d", 2, "dead-letter queue"),
}
"""The same colours as the mermaid picture's."""

EDGE_STYLES: dict[EdgeKind, EdgeStyle] = {
    EdgeKind.INVOKES: EdgeStyle("#64748b", False, "API invokes"),
    EdgeKind.HTTP: EdgeStyle("#0891b2", False, "HTTP call"),
    EdgeKind.RPC: EdgeStyle("#c026d3", False, "RPC (Lambda Invoke)"),
    EdgeKind.PUBLISHES: EdgeStyle("#2563eb", False, "publishes"),
    EdgeKind.DELIVERS: EdgeStyle("#7c3aed", False, "delivers: filter policy; raw"),
    EdgeKind.TRIGGERS: EdgeStyle("#15803d", False, "event source mapping: batch"),
    EdgeKind.REDRIVES: EdgeStyle("#dc2626", True, "redrive: maxReceiveCount"),
    EdgeKind.ON_FAILURE: EdgeStyle("#b45309", True, "stream on-failure destination"),
}

TITLE_Y = 28
SUBTITLE_Y = 48
LEGEND_Y = 70
LEGEND_ROW = 22
SWATCH = 22
LEGEND_GAP = 18


def escape(text: str) -> str:
    """``text`` safe in SVG text or an attribute.

    >>> escape('a < b & "c"')
    'a &lt; b &amp; &quot;c&quot;'
    """
    return _xml_escape(text, {'"': "&quot;"})


def svg_hash(picture: str) -> str | None:
    """The content hash a picture carries on its first line, or ``None``."""
    found = _HASH.match(picture)
    return found["hash"] if found else None


def _legend_items() -> list[tuple[str, NodeKind | EdgeKind]]:
    nodes: list[tuple[str, NodeKind | EdgeKind]] = [
        (style.legend, kind) for kind, style in NODE_STYLES.items()
    ]
    edges: list[tuple[str, NodeKind | EdgeKind]] = [
        (style.legend, kind) for kind, style in EDGE_STYLES.items()
    ]
    return nodes + edges


def _legend_positions(width: int) -> list[tuple[int, int, str, NodeKind | EdgeKind]]:
    """Each legend item's swatch position, wrapping to ``width``."""
    placed = []
    x, y = MARGIN, LEGEND_Y
    for text, kind in _legend_items():
        item_width = SWATCH + 6 + text_width(text) + LEGEND_GAP
        if x + item_width > width - MARGIN and x > MARGIN:
            x, y = MARGIN, y + LEGEND_ROW
        placed.append((x, y, text, kind))
        x += item_width
    return placed


def _markers() -> Iterator[str]:
    yield "<defs>"
    for kind, style in EDGE_STYLES.items():
        yield (
            f'<marker id="topology-arrow-{kind}" viewBox="0 0 10 10" refX="9" refY="5" '
            f'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
            f'<path d="M0,0 L10,5 L0,10 z" fill="{style.colour}"/></marker>'
        )
    yield "</defs>"


def _line(points: tuple[tuple[int, int], ...], kind: EdgeKind) -> str:
    style = EDGE_STYLES[kind]
    dash = ' stroke-dasharray="5 3"' if style.dashed else ""
    listed = " ".join(f"{x},{y}" for x, y in points)
    return (
        f'<polyline points="{listed}" fill="none" stroke="{style.colour}" stroke-width="1.4"'
        f'{dash} marker-end="url(#topology-arrow-{kind})"/>'
    )


def _node_rect(x: int, y: int, width: int, height: int, kind: NodeKind) -> str:
    style = NODE_STYLES[kind]
    dash = ' stroke-dasharray="4 2"' if kind is NodeKind.DEAD_LETTER_QUEUE else ""
    return (
        f'<rect x="{x}" y="{y}" width="{width}" height="{height}" rx="{style.radius}" '
        f'fill="{style.fill}" stroke="{style.stroke}" stroke-width="1.2"{dash}/>'
    )


def _legend(width: int) -> Iterator[str]:
    for x, y, text, kind in _legend_positions(width):
        if isinstance(kind, NodeKind):
            yield _node_rect(x, y - 11, SWATCH, 14, kind)
        else:
            yield _line(((x, y - 4), (x + SWATCH, y - 4)), kind)
        yield f'<text x="{x + SWATCH + 6}" y="{y}">{escape(text)}</text>'


def _box(box: Box) -> Iterator[str]:
    style = NODE_STYLES[box.node.kind]
    yield _node_rect(box.x, box.y, box.width, box.height, box.node.kind)
    yield (
        f'<text x="{box.x + 10}" y="{box.middle + FONT_SIZE // 3}" fill="{style.text}">'
        f"{escape(box.node.label)}</text>"
    )


def _label(route: Route, label: Label) -> str:
    colour = EDGE_STYLES[route.edge.kind].colour
    return (
        f'<text class="topology-label" x="{label.x}" y="{label.y}" text-anchor="{label.anchor}" '
        f'fill="{colour}">{escape(label.text)}</text>'
    )


def _picture(topology: Topology, layout: Layout) -> Iterator[str]:
    digest = topology.content_hash()
    yield f"{HASH_COMMENT}{digest} (drawn by lambdamesh topology) -->"
    yield (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{layout.width}" '
        f'height="{layout.height}" viewBox="0 0 {layout.width} {layout.height}" '
        f'font-family="{FONT_FAMILY}" font-size="{FONT_SIZE}">'
    )
    yield "<title>lambdamesh topology</title>"
    yield (
        # Class names and ids carry a prefix: a page that inlines the picture (the dashboard)
        # shares one namespace of both with it.
        "<style>.topology-label{font-size:11px;paint-order:stroke;stroke:#ffffff;"
        "stroke-width:3px;stroke-linejoin:round}.topology-title{font-size:16px;font-weight:bold}"
        ".topology-note{fill:#475569;font-size:11px}"
        ".topology-column{fill:#475569;font-weight:bold}</style>"
    )
    yield from _markers()
    yield f'<rect width="{layout.width}" height="{layout.height}" fill="#ffffff"/>'
    yield f'<text class="topology-title" x="{MARGIN}" y="{TITLE_Y}">lambdamesh topology</text>'
    yield (
        f'<text class="topology-note" x="{MARGIN}" y="{SUBTITLE_Y}">drawn from the stacks by '
        f"`lambdamesh topology`; names without stack prefix, account or region; "
        f"model sha256 {digest[:12]}</text>"
    )
    yield from _legend(layout.width)
    for x, title in zip(layout.column_x, COLUMN_TITLES, strict=True):
        yield f'<text class="topology-column" x="{x}" y="{layout.top + 8}">{title}</text>'
    for frame in layout.frames:
        yield (
            f'<rect x="{frame.x}" y="{frame.y}" width="{frame.width}" height="{frame.height}" '
            f'rx="8" fill="#f8fafc" stroke="#94a3b8"/>'
        )
        yield (
            f'<text x="{frame.x + 10}" y="{frame.y + 16}" font-weight="bold" fill="#334155">'
            f"{escape(frame.service)}</text>"
        )
    for route in layout.routes:
        yield _line(route.points, route.edge.kind)
    for box in layout.boxes:
        yield from _box(box)
    for route in layout.routes:
        if route.label is not None:
            yield _label(route, route.label)
    yield "</svg>"


def legend_height(width: int) -> int:
    """How far down the legend reaches in a picture ``width`` wide."""
    return max(y for _, y, _, _ in _legend_positions(width)) + LEGEND_ROW


def render_svg(topology: Topology) -> str:
    """The picture of ``topology``: an SVG document, ending in a newline."""
    # The width does not depend on where the columns start: a first pass tells it, and so how
    # far down the legend above them wraps.
    width = lay_out(topology, 0).width
    layout = lay_out(topology, legend_height(width) + 8)
    return "\n".join(_picture(topology, layout)) + "\n"
