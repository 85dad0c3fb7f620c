"""``lambdamesh trace`` without AWS: hop records read, joined into trees, drawn three ways."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from lambdamesh.dlq.letters import DeadLetter
from lambdamesh.trace.command import Findings, nothing_found, title
from lambdamesh.trace.records import HopRecord, hop_from_dead_letter, hop_from_log_message
from lambdamesh.trace.rendering import json_document, mermaid, tree_text
from lambdamesh.trace.tree import HopNode, build_forest, in_trace, trace_ids, walk
from lambdamesh_toolkit.events.bookkeeping import RecordFailure
from tests.unit.trace_hops import (
    CLIENT_SPAN,
    CORRELATION_ID,
    TRACE,
    as_messages,
    confirmed_order,
    hop_line,
)

SAGA_TREE = """\
correlation id demo-0123456789ab · 17 hops · 1 trace
└── api orders ← POST /orders · ok 201 · 84.2 ms · 12:13:20.000 UTC · trace 4bf92f35
    ├── http orders → users-api GET · ok 200 · 12.0 ms · +3 ms
    │   └── api users ← GET /users/{user_id} · ok 200 · 4.1 ms · +5 ms
    ├── rpc.call orders → catalog GetProduct · ok · 9.5 ms · +18 ms
    │   └── rpc.serve catalog ← GetProduct · ok · 3.2 ms · +20 ms
    └── stream orders ← lambdamesh-orders-OrderEventsTable · ok · 31.0 ms · +140 ms
        └── publish orders → lambdamesh-orders.fifo order.placed · ok · 25.3 ms · +142 ms
            ├── consume payments ← lambdamesh-payments-orders.fifo order.placed · ok · 40.1 ms · +190 ms
            │   └── publish payments → lambdamesh-payments payment.processed · ok · 11.0 ms · +200 ms
            │       └── consume orders ← lambdamesh-orders-outcomes payment.processed · ok · 22.0 ms · +260 ms
            ├── consume inventory ← lambdamesh-inventory-orders.fifo order.placed · failed TimeoutError · 3000.4 ms · +195 ms
            └── retry inventory ⟳ lambdamesh-inventory-orders.fifo order.placed attempt 2 · ok · 35.0 ms · +4210 ms
                └── publish inventory → lambdamesh-inventory inventory.reserved · ok · 9.9 ms · +4230 ms
                    └── consume orders ← lambdamesh-orders-outcomes inventory.reserved · ok · 48.5 ms · +4290 ms
                        └── stream orders ← lambdamesh-orders-OrderEventsTable · ok · 20.0 ms · +4400 ms
                            └── publish orders → lambdamesh-orders.fifo order.confirmed · ok · 14.0 ms · +4402 ms
                                └── consume notifications ← lambdamesh-notifications-orders.fifo order.confirmed · ok · 61.7 ms · +4460 ms"""  # noqa: E501


def saga_hops(**common: Any) -> list[HopRecord]:
    hops = [
        hop_from_log_message(message, "?") for message in as_messages(confirmed_order(**common))
    ]
    assert None not in hops
    return [hop for hop in hops if hop is not None]


def record(span: str, parent: str | None, start_ms: int, trace_id: str = TRACE) -> HopRecord:
    return HopRecord("api", "users", "GET /users/{user_id}", start_ms, 1.0, "ok", "200",
                     trace_id, span, parent)  # fmt: skip


# --- records ------------------------------------------------------------------------------


def test_a_hop_record_line_becomes_a_hop_and_every_other_line_is_skipped() -> None:
    # GIVEN a hop record, an ordinary JSON line, a runtime line and a hop record missing a key
    hop = json.dumps(hop_line("payments", "consume", "q", "e1", "d2", 190, 40.1, attempt=3))
    broken = json.dumps({"message": "hop", "hop": "api", "span_id": "x"})  # no start_ms
    lines = [hop, '{"message": "payment recorded"}', "START RequestId: r-1", broken]
    # WHEN they are read
    read = [hop_from_log_message(line, "from-the-group") for line in lines]
    # THEN only the hop record is a hop, with the service it names and its details
    assert read[1:] == [None, None, None]
    assert read[0] == HopRecord(
        kind="consume",
        service="payments",
        peer="q",
        start_ms=1796300000190,
        duration_ms=40.1,
        outcome="ok",
        status=None,
        trace_id=TRACE,
        span_id="e1",
        parent_span_id="d2",
        details={"attempt": 3},
    )


def test_a_dead_letter_is_a_failed_hop_under_the_span_its_traceparent_names() -> None:
    # GIVEN a message in the notifications' DLQ, moved there by the consumer's dead_letter hop
    letter = DeadLetter(
        message_id="m-9",
        event_type="order.confirmed",
        event_id="e-9",
        correlation_id=CORRELATION_ID,
        source="orders",
        receive_count=1,
        sent_at="2026-12-03T12:13:25+00:00",
        group_id="o-1",
        source_queue_arn=None,
        body_preview="{}",
        last_error=RecordFailure(
            "m-9",
            "notifications",
            "q",
            "PermanentFailure: unknown user",
            1,
            None,  # type: ignore[arg-type]
        ),
        traceparent=f"00-{TRACE}-0000000000000dd1-01",
    )
    # WHEN it is read as a hop
    hop = hop_from_dead_letter(letter, "lambdamesh-notifications-orders-dlq.fifo", "lambdamesh")
    # THEN it is a failed `dlq` hop of the consumer, under that span, with its reason
    assert (hop.kind, hop.service, hop.outcome) == ("dlq", "notifications", "failed")
    assert (hop.trace_id, hop.parent_span_id) == (TRACE, "0000000000000dd1")
    assert hop.status == "PermanentFailure: unknown user"
    assert hop.start_ms == 1796300005000
    assert hop.details == {"attempt": 1, "message_id": "m-9", "event_type": "order.confirmed"}
    # AND one without trace context or recorded failure is a root that waits
    bare = hop_from_dead_letter(
        dataclasses.replace(letter, traceparent=None, last_error=None),
        "lambdamesh-x-dlq",
        "lambdamesh",
    )
    assert (bare.parent_span_id, bare.trace_id, bare.status) == (None, None, "waiting")


# --- trees --------------------------------------------------------------------------------


def test_hops_join_into_one_tree_by_span_id_children_in_the_order_they_started() -> None:
    # GIVEN the saga's hop records, in no particular order
    hops = list(reversed(saga_hops()))
    # WHEN they are joined
    forest = build_forest(hops)
    # THEN the request is the one root (its client logs nothing), and every hop is in it once
    [root] = forest
    assert (root.hop.span_id, root.hop.parent_span_id, root.parent_found) == (
        "a1",
        CLIENT_SPAN,
        False,
    )
    assert sorted(node.hop.span_id for node, _ in walk(forest)) == sorted(h.span_id for h in hops)
    assert [child.hop.span_id for child in root.children] == ["b1", "c1", "d1"]
    # AND a publish's deliveries, the retry among them, are its children in time order
    [publish] = root.children[2].children
    assert [child.hop.span_id for child in publish.children] == ["e1", "f1", "f2"]
    depth = {node.hop.span_id: level for node, level in walk(forest)}
    assert depth["h3"] == 8  # a1 d1 d2 f2 f3 g2 h1 h2 h3: the mail, eight hops down


def test_a_span_read_twice_counts_once_and_a_hop_whose_parent_is_missing_is_a_root() -> None:
    # GIVEN a request read twice, and a delivery whose publish was never logged
    hops = [record("a", None, 1), record("a", None, 1), record("x", "lost", 0)]
    # WHEN they are joined
    forest = build_forest(hops)
    # THEN two roots, in the order they started
    assert [(node.hop.span_id, node.parent_found) for node in forest] == [
        ("x", False),
        ("a", False),
    ]


def test_spans_that_name_each_other_as_parents_do_not_loop() -> None:
    # GIVEN two records naming each other as parent (a corrupted log)
    hops = [record("a", "b", 1), record("b", "a", 2)]
    # WHEN they are joined  THEN both are roots and nothing loops
    assert [node.hop.span_id for node in build_forest(hops)] == ["a", "b"]


def test_one_trace_of_a_correlation_id_is_chosen_by_its_first_characters() -> None:
    # GIVEN hops of two traces under one correlation id
    other = "0af7651916cd43dd8448eb211c80319c"
    hops = [record("a", None, 1), record("z", None, 2, trace_id=other)]
    # WHEN one trace is asked for by a prefix
    chosen = in_trace(hops, "0AF76519")
    # THEN only its hops are kept, and the forest lists its traces in start order
    assert [hop.span_id for hop in chosen] == ["z"]
    assert trace_ids(build_forest(hops)) == [TRACE, other]


# --- drawing ------------------------------------------------------------------------------


def test_the_tree_shows_each_hop_with_its_service_outcome_duration_and_start() -> None:
    # GIVEN the saga's hops joined
    forest = build_forest(saga_hops())
    # WHEN it is drawn as text
    drawn = tree_text(forest, title(CORRELATION_ID, forest))
    # THEN every hop is a line under the one that caused it
    assert drawn == SAGA_TREE


def test_mermaid_draws_every_hop_and_every_edge_and_colours_what_failed() -> None:
    # GIVEN the saga's hops joined
    forest = build_forest(saga_hops())
    # WHEN it is drawn as Mermaid
    chart = mermaid(forest).splitlines()
    # THEN a flowchart: a node per hop, an edge per parent, the failed delivery coloured
    assert chart[0] == "flowchart TD"
    nodes = [line for line in chart if line.startswith("  h") and "[" in line]
    edges = [line for line in chart if "-->" in line]
    assert (len(nodes), len(edges)) == (17, 16)
    assert nodes[0] == '  h1["api · orders<br/>← POST /orders<br/>ok 201 · 84.2 ms"]'
    [failed] = [line for line in nodes if line.endswith(":::failed")]
    assert "failed TimeoutError" in failed
    assert "  h1 --> h2" in edges


def test_json_nests_the_hops_with_their_spans_and_details() -> None:
    # GIVEN the saga's hops joined
    forest = build_forest(saga_hops())
    # WHEN it is written as JSON
    document = json.loads(json.dumps(json_document(CORRELATION_ID, forest)))
    # THEN the id, its trace and the nested hops, each with its span, parent and details
    assert (document["correlation_id"], document["traces"], document["hop_count"]) == (
        CORRELATION_ID,
        [TRACE],
        17,
    )
    [root] = document["hops"]
    assert (root["hop"], root["service"], root["status"], root["parent_found"]) == (
        "api",
        "orders",
        "201",
        False,
    )
    http = root["children"][0]
    assert (http["peer"], http["method"], http["parent_span_id"]) == ("users-api", "GET", "a1")
    assert http["children"][0]["parent_found"] is True


# --- nothing to draw ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("findings", "trace_id", "says"),
    [
        (Findings(0, []), None, "no log line carries correlation id c-1 (last 60 min); is the id "
         "right and the system deployed? run `lambdamesh status`"),
        (Findings(4, []), None, "4 log line(s) carry correlation id c-1 but none is a hop record: "
         "deploy again (`lambdamesh deploy`) so that the functions log their hops"),
        (Findings(4, [record("a", None, 1)]), "0af7", "no hop of correlation id c-1 is in trace "
         "0af7; `lambdamesh trace c-1` shows its traces"),
    ],
    ids=["nothing", "no-hop-records", "not-in-that-trace"],
)  # fmt: skip
def test_when_nothing_is_found_the_error_says_what_to_do(
    findings: Findings, trace_id: str | None, says: str
) -> None:
    # GIVEN what was found  WHEN nothing is left to draw  THEN one line says why and what to do
    assert nothing_found("c-1", findings, [], trace_id, 60) == says


def test_something_to_draw_is_no_error() -> None:
    # GIVEN / WHEN hops were found  THEN nothing is said
    hops = [record("a", None, 1)]
    assert nothing_found("c-1", Findings(1, hops), hops, None, 60) is None
    assert title("c-1", [HopNode(hops[0])]) == "correlation id c-1 · 1 hop · 1 trace"
