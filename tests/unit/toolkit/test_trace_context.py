"""The W3C trace context: a ``traceparent`` read, written, and the current span kept."""

from __future__ import annotations

import pytest

from lambdamesh_toolkit.trace_context import (
    SpanContext,
    current_span,
    current_traceparent,
    parse_traceparent,
    using_span,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_names_its_trace_its_span_and_its_flags() -> None:
    # GIVEN the specification's own example
    # WHEN it is read
    span = parse_traceparent(VALID)
    # THEN its fields are the span's, and written back it is the same text
    assert span == SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1)
    assert span.sampled
    assert span.traceparent() == VALID


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "garbage",
        VALID.upper(),
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        VALID + "-extra",
        VALID[:-1],
    ],
    ids=[
        "none",
        "not-text",
        "empty",
        "garbage",
        "upper-case",
        "zero-trace",
        "zero-span",
        "version-ff",
        "version-00-with-more",
        "short",
    ],
)
def test_an_invalid_traceparent_is_dropped(value: object) -> None:
    # GIVEN / WHEN a value the specification does not accept is read
    # THEN it names no span (the hop starts a new trace instead)
    assert parse_traceparent(value) is None


def test_a_later_version_is_read_by_its_first_four_fields() -> None:
    # GIVEN a traceparent of a version after 00, with a field 00 does not know
    value = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next"
    # WHEN it is read
    span = parse_traceparent(value)
    # THEN the fields 00 knows are kept, and it is written back as version 00
    assert span is not None
    assert (span.trace_id, span.span_id, span.sampled) == (
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "00f067aa0ba902b7",
        False,
    )
    assert span.traceparent().startswith("00-4bf92f35")


def test_a_child_span_keeps_the_trace_and_the_flags_with_an_id_of_its_own() -> None:
    # GIVEN a span that is not sampled
    parent = SpanContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0)
    # WHEN two children are made
    first, second = parent.child(), parent.child()
    # THEN both are of its trace, with its flags, and each has an id of its own
    assert {first.trace_id, second.trace_id} == {parent.trace_id}
    assert first.flags == second.flags == 0
    assert len({parent.span_id, first.span_id, second.span_id}) == 3
    assert parse_traceparent(first.traceparent()) == first


def test_a_new_trace_is_sampled_and_random() -> None:
    # GIVEN / WHEN two traces are started
    one, other = SpanContext.new_trace(), SpanContext.new_trace()
    # THEN they share nothing, are sampled, and read back as themselves
    assert one.trace_id != other.trace_id
    assert one.sampled
    assert parse_traceparent(one.traceparent()) == one


def test_using_a_span_makes_it_current_and_restores_the_one_before() -> None:
    # GIVEN no current span, then two nested ones
    outer, inner = SpanContext.new_trace(), SpanContext.new_trace()
    assert current_span() is None
    # WHEN they are used one inside the other
    with using_span(outer):
        with using_span(inner):
            during = current_traceparent()
        after_inner = current_span()
    # THEN the innermost is current while it runs, and each one before comes back after
    assert during == inner.traceparent()
    assert after_inner == outer
    assert current_span() is None
