"""``lambdamesh trace`` reading what the functions left: CloudWatch Logs and the dead-letter
queues under moto, and the command from its arguments to its output."""

from __future__ import annotations

import argparse
import io
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from lambdamesh.deploy.records import ServiceRecord, save_services
from lambdamesh.deploy.target import Target
from lambdamesh.trace import command as trace_command
from lambdamesh.trace.dead_letters import dead_letter_hops
from lambdamesh.trace.logs import (
    LogLine,
    hops_in,
    lines_for,
    log_groups,
    log_groups_by_prefix,
    wait_for_lines,
)
from lambdamesh_toolkit.correlation import use_correlation_id
from lambdamesh_toolkit.hops import hop
from lambdamesh_toolkit.logging import bind_invocation, get_logger
from lambdamesh_toolkit.trace_context import SpanContext
from tests.support.fake_aws import use_fake_aws
from tests.unit.trace_hops import CORRELATION_ID, TRACE, as_messages, confirmed_order

if TYPE_CHECKING:
    from mypy_boto3_logs.client import CloudWatchLogsClient
    from mypy_boto3_sqs.client import SQSClient

FUNCTIONS = {
    "orders": {"APIHandler": "lambdamesh-orders-APIHandler-1a2b"},
    "payments": {"HandleOrderEvents": "lambdamesh-payments-HandleOrderEvents-3c4d"},
}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    use_fake_aws(monkeypatch)
    with mock_aws():
        yield


@pytest.fixture
def logs(aws: None) -> CloudWatchLogsClient:
    client: CloudWatchLogsClient = boto3.client("logs", region_name="us-east-1")
    for group in log_groups(FUNCTIONS):
        client.create_log_group(logGroupName=group)
        client.create_log_stream(logGroupName=group, logStreamName="2026/12/03/[$LATEST]abc")
    return client


def write(logs: CloudWatchLogsClient, function: str, *messages: str) -> None:
    """Lines a function wrote, as Lambda ships them to its log group."""
    now = int(time.time() * 1000)
    logs.put_log_events(
        logGroupName=f"/aws/lambda/{function}",
        logStreamName="2026/12/03/[$LATEST]abc",
        logEvents=[{"timestamp": now + n, "message": text} for n, text in enumerate(messages)],
    )


def recent(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The lines moved to now: CloudWatch Logs takes no event older than 14 days."""
    shift = int(time.time() * 1000) - min(line["start_ms"] for line in lines)
    return [{**line, "start_ms": line["start_ms"] + shift} for line in lines]


def by_service(lines: list[dict[str, Any]], service: str) -> list[str]:
    return as_messages([line for line in lines if line["service"] == service])


# --- CloudWatch Logs ----------------------------------------------------------------------


def test_the_lines_of_a_correlation_id_are_read_from_every_group_in_time_order(
    logs: CloudWatchLogsClient,
) -> None:
    # GIVEN two functions' logs holding lines of two requests, and a group that never ran
    write(
        logs,
        FUNCTIONS["orders"]["APIHandler"],
        f'{{"message": "a", "correlation_id": "{CORRELATION_ID}"}}',
    )
    write(
        logs,
        FUNCTIONS["payments"]["HandleOrderEvents"],
        '{"message": "b", "correlation_id": "other"}',
        f'{{"message": "c", "correlation_id": "{CORRELATION_ID}"}}',
    )
    groups = {**log_groups(FUNCTIONS), "/aws/lambda/lambdamesh-gone-1": "gone"}
    # WHEN the lines of one correlation id are read
    lines = lines_for(logs, groups, CORRELATION_ID)
    # THEN only its lines, each with its service, in time order
    assert [(line.service, json.loads(line.message)["message"]) for line in lines] == [
        ("orders", "a"),
        ("payments", "c"),
    ]
    # AND nothing is read of what was logged before the time asked for
    assert lines_for(logs, groups, CORRELATION_ID, since_ms=lines[-1].timestamp + 1000) == []


def test_without_records_the_functions_are_found_by_their_log_groups_prefix(
    logs: CloudWatchLogsClient,
) -> None:
    # GIVEN the functions' log groups and one of another prefix
    logs.create_log_group(logGroupName="/aws/lambda/other-orders-APIHandler-9")
    # WHEN they are looked up by the stacks' prefix
    groups = log_groups_by_prefix(logs, "lambdamesh")
    # THEN each of the prefix's groups is found with its service
    assert groups == {group: service for group, service in log_groups(FUNCTIONS).items()}


def test_reading_goes_on_until_the_lines_stop_changing_or_the_wait_is_over() -> None:
    # GIVEN lines that arrive in two batches, on a clock that moves only when slept
    now = [0.0]
    batches = [[], [LogLine(1, "orders", "a")], [LogLine(1, "orders", "a"), LogLine(2, "x", "b")]]
    reads: list[int] = []

    def read() -> list[LogLine]:
        reads.append(1)
        return batches[min(len(reads) - 1, len(batches) - 1)]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    # WHEN it waits for at most 10 s
    lines = wait_for_lines(read, wait_s=10, settle_s=2, clock=lambda: now[0], sleep=sleep)
    # THEN it read until both batches were in and stayed so for 2 s, well before 10 s
    assert len(lines) == 2
    assert now[0] < 4
    # AND without a wait it reads once
    reads.clear()
    assert wait_for_lines(read, wait_s=0) == []
    assert len(reads) == 1


def test_hop_records_written_by_the_toolkit_are_read_back_as_the_same_hops(
    logs: CloudWatchLogsClient,
) -> None:
    # GIVEN a function that logged a request and the call it made, with the toolkit's hops
    stream = io.StringIO()
    logger = get_logger(f"orders-{uuid.uuid4().hex[:6]}", stream=stream)
    bind_invocation(logger, use_correlation_id(CORRELATION_ID), "req-1")
    caller = SpanContext(TRACE, "00f067aa0ba902b7")
    with hop("api", "POST /orders", parent=caller, logger=logger) as request:
        with hop("http", "users-api", parent=request.span, logger=logger, method="GET") as call:
            call.answered(200)
        request.answered(201)
    write(logs, FUNCTIONS["orders"]["APIHandler"], *stream.getvalue().splitlines())
    # WHEN they are read back
    hops = hops_in(lines_for(logs, log_groups(FUNCTIONS), CORRELATION_ID))
    # THEN they are the same hops, joined as they were made
    assert [(h.kind, h.peer, h.status, h.span_id, h.parent_span_id) for h in hops] == [
        ("http", "users-api", "200", call.span.span_id, request.span.span_id),
        ("api", "POST /orders", "201", request.span.span_id, caller.span_id),
    ]
    assert {h.trace_id for h in hops} == {TRACE}
    assert hops[0].details == {"method": "GET"}


# --- dead letters -------------------------------------------------------------------------


def test_the_dead_letters_of_a_correlation_id_are_hops_and_stay_in_their_queue(aws: None) -> None:
    # GIVEN a DLQ holding a letter of the request (with trace context) and one of another
    sqs: SQSClient = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName="lambdamesh-payments-orders-dlq")["QueueUrl"]
    sqs.create_queue(QueueName="lambdamesh-inventory-orders-dlq")  # empty: not read
    traceparent = f"00-{TRACE}-00000000000000e1-01"
    for correlation_id in (CORRELATION_ID, "someone-else"):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=json.dumps({"id": "e-1", "type": "order.placed", "source": "orders"}),
            MessageAttributes={
                "correlation_id": {"DataType": "String", "StringValue": correlation_id},
                "traceparent": {"DataType": "String", "StringValue": traceparent},
                "type": {"DataType": "String", "StringValue": "order.placed"},
            },
        )
    # WHEN the dead letters of the request are read
    [letter] = dead_letter_hops(sqs, "lambdamesh", CORRELATION_ID)
    # THEN its letter is a failed hop of payments under the span that sent it there
    assert (letter.kind, letter.service, letter.peer) == (
        "dlq",
        "payments",
        "lambdamesh-payments-orders-dlq",
    )
    assert (letter.parent_span_id, letter.outcome, letter.status) == (
        "00000000000000e1",
        "failed",
        "waiting",
    )
    # AND both letters are still there
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    assert attributes["Attributes"]["ApproximateNumberOfMessages"] == "2"


# --- the command --------------------------------------------------------------------------


def arguments(*words: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    trace_command.configure(parser)
    return parser.parse_args(list(words))


@pytest.fixture
def deployed(
    logs: CloudWatchLogsClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> CloudWatchLogsClient:
    """The functions deployed on (moto's) AWS and recorded by deploy, their logs holding the
    saga of an order."""
    save_services(
        tmp_path,
        "aws:us-east-1",
        {
            service: ServiceRecord(stack=f"lambdamesh-{service}", api_url=None, functions=names)
            for service, names in FUNCTIONS.items()
        },
    )
    monkeypatch.setattr(
        trace_command, "select_target", lambda args, paths: (Target.aws("us-east-1"), tmp_path)
    )
    saga = recent(confirmed_order())
    for service, names in FUNCTIONS.items():
        [function] = names.values()
        write(logs, function, *by_service(saga, service))
    return logs


def test_trace_draws_the_tree_of_the_hops_the_functions_logged(
    deployed: CloudWatchLogsClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the recorded functions' logs (orders and payments lines of an order's saga)
    # WHEN the correlation id is traced
    code = trace_command.run(arguments(CORRELATION_ID, "--aws"))
    # THEN the tree shows the request as root and the payments' hops under the publish; the
    # outcome of inventory's reservation, whose publish no recorded function logged, is a root
    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"correlation id {CORRELATION_ID} · 11 hops · 1 trace"
    assert lines[1].startswith("├── api orders ← POST /orders · ok 201 · 84.2 ms · ")
    assert any(
        "consume payments ← lambdamesh-payments-orders.fifo order.placed · ok" in line
        for line in lines
    )
    roots = [line for line in lines if line.startswith("└── ") or line.startswith("├── ")]
    assert len(roots) == 2
    assert "consume orders ← lambdamesh-orders-outcomes inventory.reserved" in roots[1]


def test_trace_writes_json_and_mermaid_for_one_of_the_traces(
    deployed: CloudWatchLogsClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the recorded functions' logs
    # WHEN the trace is asked for as JSON, then as Mermaid, by the first characters of its id
    json_code = trace_command.run(
        arguments(CORRELATION_ID, "--aws", "--format", "json", "--trace-id", TRACE[:8])
    )
    document = json.loads(capsys.readouterr().out)
    mermaid_code = trace_command.run(arguments(CORRELATION_ID, "--aws", "--format", "mermaid"))
    chart = capsys.readouterr().out
    # THEN both describe the same hops
    assert (json_code, mermaid_code) == (0, 0)
    assert (document["traces"], document["hop_count"]) == ([TRACE], 11)
    assert chart.startswith("flowchart TD\n")
    assert chart.count("-->") == 9  # 11 hops, 2 roots


def test_trace_of_an_id_nothing_carries_exits_1_saying_what_to_do(
    deployed: CloudWatchLogsClient, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the recorded functions' logs  WHEN an id none of their lines carries is traced
    code = trace_command.run(arguments("no-such-id", "--aws"))
    # THEN exit 1, one line on stderr saying what to check, nothing on stdout
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.strip() == (
        "error: no log line carries correlation id no-such-id (last 1440 min); is the id right "
        "and the system deployed? run `lambdamesh status`"
    )


def test_trace_of_something_that_is_no_correlation_id_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN / WHEN an id with characters no correlation id has is traced
    code = trace_command.run(arguments('x" OR "y'))
    # THEN exit 2 before anything is read
    assert code == 2
    assert "is not a correlation id" in capsys.readouterr().err


def test_trace_with_nothing_deployed_says_to_deploy(
    aws: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a target where nothing was deployed or recorded
    monkeypatch.setattr(
        trace_command, "select_target", lambda args, paths: (Target.aws("us-east-1"), tmp_path)
    )
    # WHEN a correlation id is traced
    code = trace_command.run(arguments(CORRELATION_ID, "--aws"))
    # THEN exit 1, telling how to deploy
    assert code == 1
    assert "`lambdamesh deploy`" in capsys.readouterr().err
