"""Where the SVG puts each box and how each connector runs: a layered, left-to-right layout.

Four columns: the services (a frame each, holding its REST API, streams and functions), the SNS
topics, the SQS queues and the dead-letter queues. Between two columns runs a gutter; every
connector is orthogonal and takes a vertical lane of its own in a gutter, so no two run on top
of each other and none crosses a box:

- to the next column (publish, deliver, redrive): out of the right side, along a lane of the
  gutter between, into the left side;
- to the column before (a queue invoking a function): out of the left side, back the same way;
- further (a stream mapping's on-failure destination, a queue's consumer two columns back):
  along a lane of the first gutter down to a channel below the columns it passes, across, and
  up a lane of the last gutter;
- inside a service (an API invoking its handler, a stream its functions): along a lane on the
  frame's inner left;
- between services (HTTP, RPC): along a lane of the left margin.

A box is as tall as the connectors on its busier side need; connectors meet a side in the order
of where they come from, to cross less. Columns of messaging are ordered by the mean height of
what they connect to. Every coordinate is a whole number computed from the model alone, so the
same model gives the same layout.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from lambdamesh.topology.model import Edge, EdgeKind, Node, NodeKind, Topology

FONT_SIZE = 12
LABEL_FONT_SIZE = 11
CHAR_WIDTH = 7.3
"""Advance of one character of the 12 px monospace font (0.6 em, rounded up)."""
LABEL_CHAR_WIDTH = 6.7
"""The same at 11 px, the edges' words."""

MARGIN = 20
PAD = 14
"""Space between a gutter's lanes or labels and the boxes on either side."""
LANE = 8
"""Distance between two lanes (and two channel tracks)."""
PORT_GAP = 16
"""Distance between two connectors meeting the same side of a box."""
NODE_HEIGHT = 26
NODE_GAP = 12
SERVICE_GAP = 18
SERVICE_TITLE = 24
INNER_PAD = 10
MIN_NODE_WIDTH = 120
LABEL_GAP = 4
CROSSING_CLEARANCE = 10
"""How far from a box a connector crossing its column keeps (its labels sit just above)."""
CROSSING_SEARCH = 60
"""How many lane widths up or down a far connector looks for a free height to cross at."""

COLUMN_OF: dict[NodeKind, int] = {
    NodeKind.REST_API: 0,
    NodeKind.STREAM: 0,
    NodeKind.FUNCTION: 0,
    NodeKind.TOPIC: 1,
    NodeKind.QUEUE: 2,
    NodeKind.DEAD_LETTER_QUEUE: 3,
}
COLUMNS = 4
COLUMN_TITLES = ("services", "SNS topics", "SQS queues", "dead-letter queues")


class Side(StrEnum):
    """The side of a box a connector meets."""

    LEFT = "left"
    RIGHT = "right"


class Shape(StrEnum):
    """How a connector runs (see the module's description)."""

    INNER = "inner"
    BETWEEN_SERVICES = "between_services"
    NEXT = "next"
    BACK = "back"
    FAR = "far"
    SAME_COLUMN = "same_column"


def text_width(text: str, char_width: float = CHAR_WIDTH) -> int:
    """The width ``text`` takes in the monospace font.

    >>> text_width("APIHandler")
    73
    """
    return math.ceil(len(text) * char_width)


def label_width(text: str) -> int:
    """The width of an edge's words (0 for none)."""
    return text_width(text, LABEL_CHAR_WIDTH) + LABEL_GAP * 2 if text else 0


@dataclass(frozen=True)
class Box:
    """A node's box: its top-left corner and size."""

    node: Node
    x: int
    y: int
    width: int
    height: int

    @property
    def right(self) -> int:
        """The x of its right side."""
        return self.x + self.width

    @property
    def bottom(self) -> int:
        """The y of its bottom."""
        return self.y + self.height

    @property
    def middle(self) -> int:
        """The y of its middle."""
        return self.y + self.height // 2


@dataclass(frozen=True)
class Frame:
    """A service's frame around its boxes, with its name on top."""

    service: str
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class Label:
    """An edge's words: where they start (``start``) or end (``end``), on their baseline."""

    text: str
    x: int
    y: int
    anchor: str


@dataclass(frozen=True)
class Route:
    """A connector: the edge, its corner points from source to target, and its words."""

    edge: Edge
    points: tuple[tuple[int, int], ...]
    label: Label | None


@dataclass(frozen=True)
class Layout:
    """Everything the SVG draws, in whole pixels.

    Attributes
    ----------
    width, height
        The picture's size.
    top
        Where the columns' titles are (the legend is above).
    column_x
        The left x of each column.
    frames, boxes, routes
        What to draw: frames by service, boxes by node id, routes by edge.
    """

    width: int
    height: int
    top: int
    column_x: tuple[int, ...]
    frames: tuple[Frame, ...]
    boxes: tuple[Box, ...]
    routes: tuple[Route, ...]


@dataclass(frozen=True)
class _Plan:
    """How one edge runs, before coordinates: its shape, sides and gutters."""

    edge: Edge
    shape: Shape
    source_side: Side
    target_side: Side
    first_gutter: int = 0
    last_gutter: int = 0


def _column(node: Node) -> int:
    return COLUMN_OF[node.kind]


def plan_edge(edge: Edge, source: Node, target: Node) -> _Plan:
    """The shape, sides and gutters of ``edge`` (gutter ``g`` lies right of column ``g``).

    >>> from lambdamesh.topology.model import Edge, EdgeKind, Node, NodeKind
    >>> queue = Node("queue:q", NodeKind.QUEUE, "q")
    >>> handler = Node("s.F", NodeKind.FUNCTION, "F", "s")
    >>> plan = plan_edge(Edge(queue.id, handler.id, EdgeKind.TRIGGERS), queue, handler)
    >>> plan.shape, plan.source_side, plan.target_side, plan.first_gutter, plan.last_gutter
    (<Shape.FAR: 'far'>, <Side.LEFT: 'left'>, <Side.RIGHT: 'right'>, 1, 0)
    """
    a, b = _column(source), _column(target)
    if a == b == 0:
        inner = source.service == target.service and edge.kind not in (EdgeKind.HTTP, EdgeKind.RPC)
        shape = Shape.INNER if inner else Shape.BETWEEN_SERVICES
        return _Plan(edge, shape, Side.LEFT, Side.LEFT)
    if a == b:
        return _Plan(edge, Shape.SAME_COLUMN, Side.RIGHT, Side.RIGHT, a, a)
    if b == a + 1:
        return _Plan(edge, Shape.NEXT, Side.RIGHT, Side.LEFT, a, a)
    if b == a - 1:
        return _Plan(edge, Shape.BACK, Side.LEFT, Side.RIGHT, b, b)
    if b > a:
        return _Plan(edge, Shape.FAR, Side.RIGHT, Side.LEFT, a, b - 1)
    return _Plan(edge, Shape.FAR, Side.LEFT, Side.RIGHT, a - 1, b)


@dataclass
class _Gutter:
    """A gutter's parts, left to right: pad, labels landing on the left column, lanes, labels
    landing on the right column, pad."""

    left_labels: int = 0
    lanes: list[_Plan] = field(default_factory=list)
    right_labels: int = 0
    x: int = 0

    @property
    def width(self) -> int:
        return PAD * 2 + self.left_labels + len(self.lanes) * LANE + self.right_labels

    @property
    def lanes_x(self) -> int:
        return self.x + PAD + self.left_labels


def _mean(values: Iterable[float], default: float) -> float:
    listed = list(values)
    return sum(listed) / len(listed) if listed else default


class _Planner:
    """Computes a :class:`Layout`; one instance per topology.

    Heights come first (they need no x): boxes, ports, and where each far connector crosses
    the columns between its ends. Then the gutters know their lanes and labels, which gives
    every x; then the points.
    """

    def __init__(self, topology: Topology) -> None:
        self.topology = topology
        self.nodes = {node.id: node for node in topology.nodes}
        self.plans = [
            plan_edge(edge, self.nodes[edge.source], self.nodes[edge.target])
            for edge in topology.edges
        ]
        self.ports: dict[tuple[str, Side], list[_Plan]] = defaultdict(list)
        for plan in self.plans:
            self.ports[(plan.edge.source, plan.source_side)].append(plan)
            self.ports[(plan.edge.target, plan.target_side)].append(plan)
        self.gutters = [_Gutter() for _ in range(COLUMNS)]
        self.margin_lanes: list[_Plan] = []
        self.margin_labels = 0
        self.inner_lanes: dict[str, list[_Plan]] = defaultdict(list)
        self.inner_labels = 0
        self.column_width = [MIN_NODE_WIDTH] * COLUMNS
        self.column_x = [0] * COLUMNS
        self.frame_x = self.frame_width = 0
        self.top: dict[str, int] = {}
        self.frame_top: dict[str, tuple[int, int]] = {}
        self.port_y: dict[tuple[str, Side, Edge], int] = {}
        self.crossing: dict[Edge, int] = {}
        """Where a far connector crosses the columns between its ends."""
        self.direct: set[Edge] = set()
        """Far connectors crossing at their port's height: no lane on that side."""
        self.channel: list[_Plan] = []
        """Far connectors that found no free height: they cross below the columns."""

    # --- heights -------------------------------------------------------------------------

    def height_of(self, node: Node) -> int:
        busiest = max(len(self.ports[(node.id, side)]) for side in Side)
        return max(NODE_HEIGHT, busiest * PORT_GAP + 10)

    def middle(self, node_id: str) -> int:
        return self.top[node_id] + self.height_of(self.nodes[node_id]) // 2

    def bottom(self, node_id: str) -> int:
        return self.top[node_id] + self.height_of(self.nodes[node_id])

    def _place_services(self, top: int) -> int:
        y = top
        for service in self.topology.services:
            row = y + SERVICE_TITLE
            for node in self.topology.in_service(service):
                self.top[node.id] = row
                row += self.height_of(node) + NODE_GAP
            height = row - y - NODE_GAP + INNER_PAD
            self.frame_top[service] = (y, height)
            y += height + SERVICE_GAP
        return y - SERVICE_GAP

    def _neighbours(self, node_id: str) -> list[float]:
        return [
            self.middle(other)
            for edge in self.topology.edges
            for other in (edge.source, edge.target)
            if node_id in (edge.source, edge.target) and other != node_id and other in self.top
        ]

    def _place_column(self, column: int, top: int) -> int:
        members = [node for node in self.topology.nodes if _column(node) == column]
        wanted = sorted((_mean(self._neighbours(node.id), top), node.id) for node in members)
        bottom = top - NODE_GAP
        for centre, node_id in wanted:
            height = self.height_of(self.nodes[node_id])
            self.top[node_id] = max(round(centre) - height // 2, bottom + NODE_GAP)
            bottom = self.top[node_id] + height
        return bottom

    def _heading(self, plan: _Plan, node_id: str) -> tuple[int, str]:
        """Where a connector goes after leaving ``node_id``: ports are sorted by it."""
        other = plan.edge.target if plan.edge.source == node_id else plan.edge.source
        return self.middle(other), other

    def _place_ports(self) -> None:
        for (node_id, side), plans in sorted(self.ports.items()):
            ordered = sorted(plans, key=lambda plan: (self._heading(plan, node_id), plan.edge))
            first = self.middle(node_id) - (len(ordered) - 1) * PORT_GAP // 2
            for index, plan in enumerate(ordered):
                self.port_y[(node_id, side, plan.edge)] = first + index * PORT_GAP

    def _port_y(self, plan: _Plan, end: str) -> int:
        if end == "source":
            return self.port_y[(plan.edge.source, plan.source_side, plan.edge)]
        return self.port_y[(plan.edge.target, plan.target_side, plan.edge)]

    def _near_end(self, plan: _Plan) -> str:
        """The end of a far connector in the lower column (where it would rather cross)."""
        source, target = (_column(self.nodes[end]) for end in (plan.edge.source, plan.edge.target))
        return "source" if source < target else "target"

    def _blocked(self, plan: _Plan) -> list[tuple[int, int]]:
        """The heights a far connector may not cross at: boxes of the columns between."""
        ends = sorted(_column(self.nodes[end]) for end in (plan.edge.source, plan.edge.target))
        between = range(ends[0] + 1, ends[1])
        blocked = [
            (self.top[node.id] - CROSSING_CLEARANCE, self.bottom(node.id) + CROSSING_CLEARANCE)
            for node in self.topology.nodes
            if _column(node) in between
        ]
        blocked += [(y - LANE + 1, y + LANE - 1) for y in self.crossing.values()]
        return blocked

    def _cross(self, plan: _Plan, lowest: int) -> None:
        """Find where a far connector crosses: at its near port's height if free, else at the
        nearest free height, else in the channel below ``lowest``."""
        wanted = self._port_y(plan, self._near_end(plan))
        blocked = self._blocked(plan)
        for step in range(CROSSING_SEARCH):
            for y in (wanted + step * LANE, wanted - step * LANE):
                if y < lowest and not any(low <= y <= high for low, high in blocked):
                    self.crossing[plan.edge] = y
                    if step == 0:
                        self.direct.add(plan.edge)
                    return
        self.channel.append(plan)

    # --- widths --------------------------------------------------------------------------

    def _near_gutter(self, plan: _Plan) -> int:
        return plan.first_gutter if self._near_end(plan) == "source" else plan.last_gutter

    def _assign_far(self, plan: _Plan) -> None:
        for gutter in sorted({plan.first_gutter, plan.last_gutter}):
            if plan.edge not in self.direct or gutter != self._near_gutter(plan):
                self.gutters[gutter].lanes.append(plan)

    def _assign_gutters(self) -> None:
        for plan in self.plans:
            width = label_width(plan.edge.label)
            if plan.shape is Shape.INNER:
                self.inner_lanes[self.nodes[plan.edge.source].service or ""].append(plan)
                self.inner_labels = max(self.inner_labels, width)
                continue
            if plan.shape is Shape.BETWEEN_SERVICES:
                self.margin_lanes.append(plan)
                self.margin_labels = max(self.margin_labels, width)
                continue
            if plan.shape is Shape.FAR:
                self._assign_far(plan)
            else:
                self.gutters[plan.first_gutter].lanes.append(plan)
            last = self.gutters[plan.last_gutter]
            if plan.target_side is Side.LEFT:
                last.right_labels = max(last.right_labels, width)
            else:
                last.left_labels = max(last.left_labels, width)

    def _inner_width(self) -> int:
        lanes = max((len(plans) for plans in self.inner_lanes.values()), default=0)
        return INNER_PAD + lanes * LANE + self.inner_labels

    def _place_columns(self) -> int:
        for node in self.topology.nodes:
            column = _column(node)
            self.column_width[column] = max(
                self.column_width[column], text_width(node.label) + 2 * INNER_PAD
            )
        titles = [text_width(service) + 2 * INNER_PAD for service in self.topology.services]
        self.column_width[0] = max([self.column_width[0], *titles])
        margin = MARGIN + self.margin_labels + len(self.margin_lanes) * LANE + PAD
        self.frame_x, self.frame_width = (
            margin,
            self._inner_width() + self.column_width[0] + INNER_PAD,
        )
        x = margin + self._inner_width()
        for column in range(COLUMNS):
            self.column_x[column] = x
            right = x + self.column_width[column] + (INNER_PAD if column == 0 else 0)
            self.gutters[column].x = right
            x = right + self.gutters[column].width
        last = self.gutters[COLUMNS - 1]
        return last.x + (last.width if last.lanes else MARGIN)

    # --- points --------------------------------------------------------------------------

    def _port(self, plan: _Plan, end: str) -> tuple[int, int]:
        node_id = plan.edge.source if end == "source" else plan.edge.target
        side = plan.source_side if end == "source" else plan.target_side
        box = self.boxes[node_id]
        return (box.x if side is Side.LEFT else box.right), self._port_y(plan, end)

    def _crossing_y(self, plan: _Plan) -> int:
        if plan in self.channel:
            return self.channel_y + self.channel.index(plan) * LANE
        return self.crossing[plan.edge]

    def _ends_in(self, plan: _Plan, gutter: int) -> tuple[int, int]:
        """Where ``plan`` meets gutter ``gutter``'s left side and right side (its y's)."""
        source, target = self._port_y(plan, "source"), self._port_y(plan, "target")
        if plan.shape is not Shape.FAR:
            return (target, source) if plan.shape is Shape.BACK else (source, target)
        crossing = self._crossing_y(plan)
        if gutter == plan.first_gutter:
            return (source, crossing) if plan.source_side is Side.RIGHT else (crossing, source)
        return (crossing, target) if plan.target_side is Side.LEFT else (target, crossing)

    def _lane_key(self, plan: _Plan, gutter: int) -> tuple[int, int, int, Edge]:
        """Lanes left to right: those going down by where they end, lowest first, then those
        going up, highest first; so connectors fanning out of one side do not cross."""
        left, right = self._ends_in(plan, gutter)
        if right >= left:
            return (0, -right, -left, plan.edge)
        return (1, right, left, plan.edge)

    def _span(self, plan: _Plan) -> tuple[int, int, Edge]:
        a, b = self._port_y(plan, "source"), self._port_y(plan, "target")
        return min(a, b), max(a, b), plan.edge

    def _sort_lanes(self) -> None:
        for index, gutter in enumerate(self.gutters):
            keys = {id(plan): self._lane_key(plan, index) for plan in gutter.lanes}
            gutter.lanes.sort(key=lambda plan: keys[id(plan)])
        self.margin_lanes.sort(key=self._span)
        for lanes in self.inner_lanes.values():
            lanes.sort(key=self._span)

    def _lane_x(self, gutter: int, plan: _Plan) -> int:
        lanes = self.gutters[gutter]
        return lanes.lanes_x + LANE * lanes.lanes.index(plan)

    def _far_points(self, plan: _Plan) -> list[tuple[int, int]]:
        (sx, sy), (tx, ty) = self._port(plan, "source"), self._port(plan, "target")
        y = self._crossing_y(plan)
        if plan.edge in self.direct and self._near_end(plan) == "source":
            x = self._lane_x(plan.last_gutter, plan)
            return [(sx, sy), (x, sy), (x, ty), (tx, ty)]
        if plan.edge in self.direct:
            x = self._lane_x(plan.first_gutter, plan)
            return [(sx, sy), (x, sy), (x, ty), (tx, ty)]
        x1, x2 = self._lane_x(plan.first_gutter, plan), self._lane_x(plan.last_gutter, plan)
        return [(sx, sy), (x1, sy), (x1, y), (x2, y), (x2, ty), (tx, ty)]

    def _points(self, plan: _Plan) -> list[tuple[int, int]]:
        if plan.shape is Shape.FAR:
            return self._far_points(plan)
        (sx, sy), (tx, ty) = self._port(plan, "source"), self._port(plan, "target")
        if plan.shape is Shape.INNER:
            lanes = self.inner_lanes[self.nodes[plan.edge.source].service or ""]
            x = self.frame_x + INNER_PAD + LANE * lanes.index(plan)
        elif plan.shape is Shape.BETWEEN_SERVICES:
            x = self.frame_x - PAD - LANE * self.margin_lanes.index(plan)
        else:
            x = self._lane_x(plan.first_gutter, plan)
        return [(sx, sy), (x, sy), (x, ty), (tx, ty)]

    def _label(self, plan: _Plan, points: list[tuple[int, int]]) -> Label | None:
        text = plan.edge.label
        if not text:
            return None
        tx, ty = points[-1]
        if plan.shape is Shape.BETWEEN_SERVICES:
            leftmost = self.frame_x - PAD - LANE * (len(self.margin_lanes) - 1)
            middle = (points[1][1] + points[2][1]) // 2
            return Label(text, leftmost - LABEL_GAP - 2, middle + 4, "end")
        if plan.target_side is Side.LEFT:
            return Label(text, tx - LABEL_GAP, ty - LABEL_GAP, "end")
        return Label(text, tx + LABEL_GAP, ty - LABEL_GAP, "start")

    def _boxes(self) -> None:
        self.boxes = {
            node.id: Box(
                node,
                self.column_x[_column(node)],
                self.top[node.id],
                self.column_width[_column(node)],
                self.height_of(node),
            )
            for node in self.topology.nodes
        }

    def layout(self, top_of: int) -> Layout:
        columns_top = top_of + 22
        bottoms = [self._place_services(columns_top)]
        bottoms += [self._place_column(column, columns_top) for column in range(1, COLUMNS)]
        self._place_ports()
        self.channel_y = max(bottoms[1:3]) + PAD + LANE
        for plan in sorted(
            (plan for plan in self.plans if plan.shape is Shape.FAR), key=lambda plan: plan.edge
        ):
            self._cross(plan, max(bottoms))
        self._assign_gutters()
        width = self._place_columns()
        self._boxes()
        self._sort_lanes()
        routes = []
        for plan in self.plans:
            points = self._points(plan)
            routes.append(Route(plan.edge, tuple(points), self._label(plan, points)))
        frames = tuple(
            Frame(service, self.frame_x, y, self.frame_width, height)
            for service, (y, height) in self.frame_top.items()
        )
        lowest = max([*bottoms, self.channel_y + len(self.channel) * LANE])
        return Layout(
            width,
            lowest + MARGIN,
            top_of,
            tuple(self.column_x),
            frames,
            tuple(self.boxes[node.id] for node in self.topology.nodes),
            tuple(routes),
        )


def lay_out(topology: Topology, top: int) -> Layout:
    """Where everything goes, the columns starting at ``top`` (below the legend)."""
    return _Planner(topology).layout(top)
