"""The topology's pictures: mermaid and SVG from the model, deterministic, escaped, hashed."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable

import pytest

from lambdamesh.topology.layout import LABEL_CHAR_WIDTH, Box, lay_out
from lambdamesh.topology.mermaid import mermaid_hash, render_mermaid
from lambdamesh.topology.model import EdgeKind, Topology, TopologyBuilder
from lambdamesh.topology.svg import render_svg, svg_hash

SVG = "{http://www.w3.org/2000/svg}"


def _add_shop(builder: TopologyBuilder, *, tricky_label: bool = False) -> None:
    """Services calling each other, publishing, consuming queues and a stream, with DLQs."""
    users_api = builder.add_rest_api("users", "RestAPI")
    users = builder.add_function("users", "APIHandler")
    builder.connect(users_api, users, EdgeKind.INVOKES)
    orders_api = builder.add_rest_api("orders", "RestAPI")
    orders = builder.add_function("orders", "APIHandler")
    builder.connect(orders_api, orders, EdgeKind.INVOKES)
    rpc = builder.add_function("catalog", "Rpc")
    builder.connect(orders, users_api, EdgeKind.HTTP, "HTTP")
    builder.connect(orders, rpc, EdgeKind.RPC, "RPC (Invoke)")
    stream = builder.add_stream("orders", "OrderEventsTable")
    publisher = builder.add_function("orders", "PublishOrderEvents")
    builder.event_source(stream, publisher, 100)
    saga = builder.add_function("orders", "HandleOutcomes")
    users_topic, orders_topic = builder.add_topic("users"), builder.add_topic("orders.fifo")
    payments_topic = builder.add_topic("payments")
    builder.connect(users, users_topic, EdgeKind.PUBLISHES)
    builder.connect(publisher, orders_topic, EdgeKind.PUBLISHES)
    charge = builder.add_function("payments", "HandleOrderEvents")
    builder.connect(charge, payments_topic, EdgeKind.PUBLISHES)
    mail = builder.add_function("notifications", "HandleUserEvents")
    types = ['say "hi" <b> & co'] if tricky_label else ["user.created"]
    for topic, queue, consumer, policy in (
        (users_topic, "notifications-users", mail, {"type": types}),
        (orders_topic, "payments-orders.fifo", charge, {"type": ["order.placed"]}),
        (payments_topic, "orders-outcomes", saga, {"type": ["payment.processed"]}),
    ):
        node = builder.add_queue(queue)
        builder.subscribe(topic, node, filter_policy=policy, scope=None, raw=True)
        builder.event_source(node, consumer, 10)
        builder.redrive(node, builder.add_queue(queue.replace(".fifo", "") + "-dlq"), 5)
    builder.on_failure(publisher, builder.add_queue("order-events-dlq"), 10)


def shop(*, tricky_label: bool = False) -> Topology:
    builder = TopologyBuilder()
    _add_shop(builder, tricky_label=tricky_label)
    return builder.build()


RENDERERS: dict[str, Callable[[Topology], str]] = {"mermaid": render_mermaid, "svg": render_svg}


@pytest.mark.parametrize("renderer", RENDERERS.values(), ids=RENDERERS.keys())
def test_the_same_model_gives_the_same_bytes(renderer: Callable[[Topology], str]) -> None:
    # GIVEN the same facts gathered twice, in another order the second time
    builder = TopologyBuilder()
    builder.add_queue("zzz-late")
    _add_shop(builder)
    reordered = builder.build()
    assert reordered != shop()  # one more node
    # WHEN each is drawn twice
    # THEN the drawings of one model are equal, byte for byte
    assert renderer(shop()) == renderer(shop())
    assert renderer(reordered) == renderer(reordered)


def test_the_model_hash_changes_with_any_fact() -> None:
    # GIVEN the shop, and the shop with one filter policy changed
    # WHEN both are hashed  THEN the hashes differ, and both pictures carry their model's hash
    plain, tricky = shop(), shop(tricky_label=True)
    assert plain.content_hash() != tricky.content_hash()
    for model in (plain, tricky):
        assert mermaid_hash(render_mermaid(model)) == model.content_hash()
        assert svg_hash(render_svg(model)) == model.content_hash()


def test_mermaid_has_a_subgraph_per_service_and_every_edge_with_its_words() -> None:
    # GIVEN the shop  WHEN drawn as mermaid
    lines = render_mermaid(shop()).splitlines()
    # THEN it is a left-to-right flowchart, a subgraph per service, and edges carry their words
    assert lines[1] == "flowchart LR"
    subgraphs = [line.strip() for line in lines if line.strip().startswith("subgraph svc_")]
    assert subgraphs == [
        f'subgraph svc_{name}["{name}"]'
        for name in ("catalog", "notifications", "orders", "payments", "users")
    ]
    assert '  topic_users -->|"type: user.created; raw"| queue_notifications_users' in lines
    assert '  queue_orders_outcomes -->|"batch 10"| orders_HandleOutcomes' in lines
    assert '  queue_orders_outcomes -.->|"maxReceiveCount 5"| queue_orders_outcomes_dlq' in lines
    assert '  orders_APIHandler ==>|"RPC (Invoke)"| catalog_Rpc' in lines
    assert "  users_RestAPI --> users_APIHandler" in lines


def test_mermaid_labels_are_escaped() -> None:
    # GIVEN a filter policy with quotes and angle brackets
    # WHEN drawn as mermaid
    text = render_mermaid(shop(tricky_label=True))
    # THEN the label holds entity codes, not characters that would end it
    assert '|"type: say #quot;hi#quot; #lt;b#gt; & co; raw"|' in text


def test_the_svg_is_a_document_with_every_node_and_escaped_words() -> None:
    # GIVEN a shop whose filter policy holds quotes, an angle bracket and an ampersand
    model = shop(tricky_label=True)
    # WHEN drawn as SVG and parsed (our own output)
    root = ElementTree.fromstring(render_svg(model))  # noqa: S314
    # THEN it parses, and every node's label and the tricky words are there as text
    texts = {element.text for element in root.iter(f"{SVG}text")}
    assert {node.label for node in model.nodes} <= texts
    assert 'type: say "hi" <b> & co; raw' in texts
    polylines = list(root.iter(f"{SVG}polyline"))
    assert len(polylines) == len(model.edges) + len(EdgeKind)  # the legend has one a kind


def _inside(box: Box, x: int, y: int) -> bool:
    return box.x < x < box.right and box.y < y < box.bottom


def _crosses(box: Box, start: tuple[int, int], end: tuple[int, int]) -> bool:
    """Whether an orthogonal segment passes through the inside of ``box``."""
    (x1, y1), (x2, y2) = start, end
    if x1 == x2:
        return box.x < x1 < box.right and min(y1, y2) < box.bottom and max(y1, y2) > box.y
    return box.y < y1 < box.bottom and min(x1, x2) < box.right and max(x1, x2) > box.x


def test_the_layout_keeps_boxes_apart_and_connectors_around_them() -> None:
    # GIVEN the shop's layout
    layout = lay_out(shop(), 100)
    boxes = {box.node.id: box for box in layout.boxes}
    # THEN no two boxes overlap
    for first in layout.boxes:
        for second in layout.boxes:
            if first is not second:
                overlap = (
                    first.x < second.right
                    and second.x < first.right
                    and first.y < second.bottom
                    and second.y < first.bottom
                )
                assert not overlap, (first.node.id, second.node.id)
    # AND every connector is orthogonal, starts and ends on its boxes' sides, and passes
    # through no box
    for route in layout.routes:
        points = route.points
        for start, end in itertools.pairwise(points):
            assert start[0] == end[0] or start[1] == end[1], route.edge
            for box in layout.boxes:
                assert not _crosses(box, start, end), (route.edge, box.node.id)
        source, target = boxes[route.edge.source], boxes[route.edge.target]
        assert points[0][0] in (source.x, source.right)
        assert source.y < points[0][1] < source.bottom
        assert points[-1][0] in (target.x, target.right)
        assert target.y < points[-1][1] < target.bottom


def test_edge_words_do_not_cover_boxes() -> None:
    # GIVEN the shop's layout
    layout = lay_out(shop(), 100)
    # WHEN each label's extent is reckoned from its anchor and length
    for route in layout.routes:
        label = route.label
        if label is None:
            continue
        width = round(len(label.text) * LABEL_CHAR_WIDTH)
        left = label.x - width if label.anchor == "end" else label.x
        # THEN no box holds any of its corners
        for box in layout.boxes:
            for x in (left, left + width):
                for y in (label.y, label.y - 9):
                    assert not _inside(box, x, y), (label.text, box.node.id)
