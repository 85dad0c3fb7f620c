"""``lambdamesh trace CORRELATION_ID``: one request's hops, drawn as a tree.

Finds the deployed functions as ``lambdamesh status`` does (what ``lambdamesh deploy`` recorded
for the target, else the log groups of ``<prefix>-*`` functions), reads their hop records that
carry the correlation id from CloudWatch Logs (:mod:`.logs`) and the dead letters that carry it
(:mod:`.dead_letters`), joins them by span id (:mod:`.tree`) and draws them
(:mod:`.rendering`).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from lambdamesh.arguments import add_target, positive
from lambdamesh.command import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, err, say
from lambdamesh.deploy.command import select_target
from lambdamesh.deploy.records import load_services
from lambdamesh.deploy.services import MESSAGING
from lambdamesh.deploy.target import Target
from lambdamesh.dlq.letters import failure_finder
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.trace.dead_letters import dead_letter_hops
from lambdamesh.trace.logs import (
    hops_in,
    lines_for,
    log_groups,
    log_groups_by_prefix,
    wait_for_lines,
)
from lambdamesh.trace.records import HopRecord
from lambdamesh.trace.rendering import FORMATS, PLAIN_WIDTH, json_document, mermaid, tree
from lambdamesh.trace.tree import HopNode, build_forest, in_trace, trace_ids, walk
from lambdamesh_toolkit.correlation import is_valid_correlation_id

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_logs.client import CloudWatchLogsClient
    from mypy_boto3_sqs.client import SQSClient

NAME = "trace"
DESCRIPTION = """\
Rebuild the path of one request from the hop record every function logs at the end of each
hop (API request, HTTP call, RPC call and call served, SNS publish, SQS delivery and its
retries, dead-lettering, DynamoDB stream record) and from the dead-letter queues' messages that
carry the correlation id: every hop with its service, what it reached, its outcome, its
duration and when it started, joined into trees by their W3C trace context (traceparent).

Target: the embedded LocalStack on --port, the LocalStack at --endpoint / $LAMBDAMESH_ENDPOINT,
or real AWS with --aws. Exits 1 when nothing carries the id.

examples:
  lambdamesh trace demo-1a2b3c4d5e6f
  lambdamesh trace demo-1a2b3c4d5e6f --trace-id 4bf92f35          # one of its traces
  lambdamesh trace try-1 --format mermaid > try-1.mmd
  lambdamesh trace try-1 --format json | jq '.. | objects | select(.outcome? == "failed")'
  lambdamesh trace try-1 --wait 10     # the last hops may reach the logs a moment later"""

DEFAULT_SINCE_MINUTES: Final = 24 * 60


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``trace``'s arguments."""
    parser.add_argument("correlation_id", metavar="CORRELATION_ID", help="the request's id")
    parser.add_argument(
        "--format", choices=FORMATS, default="tree", help="how to draw it (default: tree)"
    )
    parser.add_argument(
        "--trace-id",
        metavar="ID",
        default=None,
        help="only this trace of the correlation id (its first characters are enough)",
    )
    parser.add_argument(
        "--since",
        type=positive,
        default=DEFAULT_SINCE_MINUTES,
        metavar="MINUTES",
        help=f"read the logs of the last MINUTES (default: {DEFAULT_SINCE_MINUTES})",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="read again until the lines found stop changing, for at most SECONDS (default: 0)",
    )
    parser.add_argument(
        "--no-dead-letters",
        action="store_true",
        help="do not look into the dead-letter queues (they are read without being consumed)",
    )
    add_target(
        parser,
        prefix_help="the prefix deploy used: functions <prefix>-*, queues <prefix>-*-dlq "
        "(default: lambdamesh)",
    )


@dataclass(frozen=True)
class Findings:
    """What carries the correlation id.

    Attributes
    ----------
    log_lines
        How many log lines carry it.
    hops
        The hops read: hop records and dead letters.
    """

    log_lines: int
    hops: list[HopRecord]


def run(args: argparse.Namespace) -> int:
    """Run ``trace``; the exit code (1 when nothing carries the id)."""
    if not is_valid_correlation_id(args.correlation_id):
        err(
            f"error: {args.correlation_id!r} is not a correlation id (letters, digits and "
            "'.', '_', ':', '-', at most 128)"
        )
        return EXIT_USAGE
    chosen = select_target(args, ProjectPaths.discover())
    if isinstance(chosen, str):
        err(f"error: {chosen}")
        return EXIT_FAILURE
    target, records = chosen
    try:
        findings = gather(
            target,
            records,
            args.correlation_id,
            stack_prefix=args.stack_prefix,
            since_minutes=args.since,
            wait_s=args.wait,
            dead_letters=not args.no_dead_letters,
        )
    except NothingDeployedError as error:
        err(f"error: {error}")
        return EXIT_FAILURE
    except (ClientError, BotoCoreError) as error:
        err(f"error: {target.label}: {error}")
        return EXIT_FAILURE
    hops = findings.hops if args.trace_id is None else in_trace(findings.hops, args.trace_id)
    problem = nothing_found(args.correlation_id, findings, hops, args.trace_id, args.since)
    if problem is not None:
        err(f"error: {problem}")
        return EXIT_FAILURE
    show(args.format, args.correlation_id, build_forest(hops))
    return EXIT_OK


class NothingDeployedError(LookupError):
    """No deployed function is known for the target."""


def gather(
    target: Target,
    records: Path,
    correlation_id: str,
    *,
    stack_prefix: str = "lambdamesh",
    since_minutes: int,
    wait_s: float = 0.0,
    dead_letters: bool = True,
) -> Findings:
    """Read the hop records (of the last ``since_minutes``, waiting up to ``wait_s`` for the
    first) and, with ``dead_letters``, the dead letters that carry ``correlation_id``.

    Raises
    ------
    NothingDeployedError
        When neither deploy's records nor the log groups name a function of the prefix.
    botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError
        When the target refuses or cannot be reached.
    """
    logs: CloudWatchLogsClient = target.client("logs")
    functions = {
        service: record.get("functions") or {} for service, record in load_services(records).items()
    }
    groups = log_groups(functions) or log_groups_by_prefix(logs, stack_prefix)
    if not groups:
        raise NothingDeployedError(
            f"no function of {stack_prefix}-* is deployed on {target.label}: deploy with "
            "`lambdamesh deploy`; `lambdamesh status` shows what is there"
        )
    since_ms = int((time.time() - since_minutes * 60) * 1000)
    lines = wait_for_lines(
        lambda: lines_for(logs, groups, correlation_id, since_ms=since_ms),
        wait_s=max(0.0, wait_s),
    )
    hops = hops_in(lines)
    if dead_letters:
        sqs: SQSClient = target.client("sqs")
        cfn: CloudFormationClient = target.client("cloudformation")
        dynamodb: DynamoDBClient = target.client("dynamodb")
        _, find_failures = failure_finder(cfn, dynamodb, f"{stack_prefix}-{MESSAGING}")
        hops += dead_letter_hops(sqs, stack_prefix, correlation_id, find_failures)
    return Findings(len(lines), hops)


def nothing_found(
    correlation_id: str,
    findings: Findings,
    hops: list[HopRecord],
    trace_id: str | None,
    since_minutes: int,
) -> str | None:
    """What to tell when there is nothing to draw, and what to do about it; ``None`` otherwise.

    >>> nothing_found("c-1", Findings(0, []), [], None, 60)  # doctest: +ELLIPSIS
    'no log line carries correlation id c-1 (last 60 min); is the id right and the system ...'
    """
    if hops:
        return None
    if findings.log_lines == 0 and not findings.hops:
        return (
            f"no log line carries correlation id {correlation_id} (last {since_minutes} min); "
            "is the id right and the system deployed? run `lambdamesh status`"
        )
    if trace_id is not None and findings.hops:
        return (
            f"no hop of correlation id {correlation_id} is in trace {trace_id}; "
            f"`lambdamesh trace {correlation_id}` shows its traces"
        )
    return (
        f"{findings.log_lines} log line(s) carry correlation id {correlation_id} but none is a "
        "hop record: deploy again (`lambdamesh deploy`) so that the functions log their hops"
    )


def title(correlation_id: str, forest: list[HopNode]) -> str:
    """The line above the tree: the id, how many hops and traces.

    >>> title("c-1", [])
    'correlation id c-1 · 0 hops · 0 traces'
    """
    count = sum(1 for _ in walk(forest))
    traces = len(trace_ids(forest))
    return (
        f"correlation id {correlation_id} · {count} hop{'s' * (count != 1)}"
        f" · {traces} trace{'s' * (traces != 1)}"
    )


def show(form: str, correlation_id: str, forest: list[HopNode]) -> None:
    """Print the forest as ``form`` (``tree`` in colour on a terminal)."""
    if form == "json":
        say(json.dumps(json_document(correlation_id, forest), indent=2))
    elif form == "mermaid":
        say(mermaid(forest))
    else:
        from rich.console import Console

        console = Console(emoji=False)
        if not console.is_terminal:  # piped: long lines kept whole, not wrapped at 80
            console = Console(emoji=False, width=PLAIN_WIDTH)
        console.print(tree(forest, title(correlation_id, forest)))
