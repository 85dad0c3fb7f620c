"""The ``lambdamesh dlq`` subcommand: ``list``, ``show`` and ``redrive``."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdamesh.arguments import add_target, positive
from lambdamesh.deploy.command import select_target
from lambdamesh.deploy.services import MESSAGING
from lambdamesh.deploy.target import Target
from lambdamesh.dlq.formatting import (
    format_letters,
    format_queues,
    letter_document,
    queue_document,
    redrive_document,
)
from lambdamesh.dlq.letters import failure_finder, read_dead_letters
from lambdamesh.dlq.queues import (
    QueueNotFoundError,
    describe_dead_letter_queue,
    list_dead_letter_queues,
    resolve_dead_letter_queue,
)
from lambdamesh.dlq.redrive import RedriveError, redrive
from lambdamesh.emulator.paths import ProjectPaths

if TYPE_CHECKING:
    from mypy_boto3_cloudformation.client import CloudFormationClient
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sqs.client import SQSClient

NAME = "dlq"
DESCRIPTION = """\
Look into the messaging topology's dead-letter queues (<prefix>-*-dlq, <prefix>-*-dlq.fifo)
and send their messages back to the queue they came from.

  list              every dead-letter queue with its depth and the queue it serves
  show QUEUE        its messages, left in place: event type, correlation id, receive count,
                    and the last error the consumer recorded (EventFailuresTable, by message id)
  redrive QUEUE     move them back to their source queue: StartMessageMoveTask where the
                    endpoint has it (standard queues, no --max), else receive, send, then
                    delete each message (FIFO: same MessageGroupId, a new deduplication id)

QUEUE is a name (lambdamesh-orders-outcomes-dlq), a short name (orders-outcomes) or a URL.
Target: the embedded LocalStack on --port, the LocalStack at --endpoint / $LAMBDAMESH_ENDPOINT,
or real AWS with --aws.

examples:
  lambdamesh dlq list
  lambdamesh dlq show orders-outcomes --max 5
  lambdamesh dlq show lambdamesh-payments-orders-dlq.fifo --json | jq '.messages[].last_error'
  lambdamesh dlq redrive orders-outcomes
  lambdamesh dlq redrive payments-orders --max 1
  LAMBDAMESH_ENDPOINT=http://127.0.0.1:4566 lambdamesh dlq list   # LocalStack in Docker"""

EXIT_OK = 0
EXIT_FAILURE = 1
DEFAULT_SHOW_MAX = 10


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_target(
        parser,
        prefix_help="the prefix deploy used: queues <prefix>-*-dlq, stack <prefix>-messaging "
        "(default: lambdamesh)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document, for scripts")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``dlq``'s actions and their arguments."""
    actions = parser.add_subparsers(dest="dlq_action", metavar="<action>", required=True)
    listing = actions.add_parser(
        "list",
        help="every dead-letter queue with its depth",
        description="Every <prefix>-*-dlq[.fifo] queue: messages waiting, in flight, and the\n"
        "queue it serves.\n\nexamples:\n  lambdamesh dlq list\n"
        "  lambdamesh dlq list --json | jq '.[] | select(.messages > 0) | .name'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(listing)
    show = actions.add_parser(
        "show",
        help="a queue's messages (not consumed) with their last error",
        description="Read up to --max messages without consuming them (each is hidden for a\n"
        "few seconds, then released) and show event type, correlation id, receive count\n"
        "and the last error its consumer recorded in the EventFailuresTable.\n\n"
        "examples:\n  lambdamesh dlq show orders-outcomes\n"
        "  lambdamesh dlq show lambdamesh-payments-orders-dlq.fifo --max 50 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("queue", metavar="QUEUE", help="dead-letter queue name, short name or URL")
    show.add_argument(
        "--show-personal-data",
        action="store_true",
        help="print names and email addresses in bodies and errors as they are "
        "(masked by default: a***@example.com)",
    )
    show.add_argument(
        "--max",
        type=positive,
        default=DEFAULT_SHOW_MAX,
        metavar="N",
        help=f"show at most N messages (default: {DEFAULT_SHOW_MAX})",
    )
    _add_common(show)
    move = actions.add_parser(
        "redrive",
        help="move a queue's messages back to their source",
        description="Move messages back to the queue they were dead-lettered from, with\n"
        "progress. A message leaves the dead-letter queue only after its copy was sent.\n\n"
        "examples:\n  lambdamesh dlq redrive orders-outcomes\n"
        "  lambdamesh dlq redrive payments-orders --max 1   # FIFO: group kept, new dedup id",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    move.add_argument("queue", metavar="QUEUE", help="dead-letter queue name, short name or URL")
    move.add_argument(
        "--max", type=positive, default=None, metavar="N", help="move at most N (default: all)"
    )
    _add_common(move)


def _print(line: str, *, error: bool = False) -> None:
    print(line, file=sys.stderr if error else sys.stdout, flush=True)


def _list(target: Target, args: argparse.Namespace) -> int:
    sqs: SQSClient = target.client("sqs")
    queues = list_dead_letter_queues(sqs, args.stack_prefix)
    if args.json:
        _print(json.dumps([queue_document(queue) for queue in queues], sort_keys=True))
    else:
        for line in format_queues(queues):
            _print(line)
    return EXIT_OK


def _show(target: Target, args: argparse.Namespace) -> int:
    sqs: SQSClient = target.client("sqs")
    queue = describe_dead_letter_queue(
        sqs, resolve_dead_letter_queue(sqs, args.queue, args.stack_prefix)
    )
    cfn: CloudFormationClient = target.client("cloudformation")
    dynamodb: DynamoDBClient = target.client("dynamodb")
    table, find_failures = failure_finder(cfn, dynamodb, f"{args.stack_prefix}-{MESSAGING}")
    letters = read_dead_letters(
        sqs, queue.url, args.max, find_failures, personal_data=args.show_personal_data
    )
    if args.json:
        document: dict[str, Any] = {
            "queue": queue_document(queue),
            "failures_table": table,
            "messages": [letter_document(letter) for letter in letters],
        }
        _print(json.dumps(document, sort_keys=True, default=str))
    else:
        for line in format_letters(queue, letters, table):
            _print(line)
    return EXIT_OK


def _redrive(target: Target, args: argparse.Namespace) -> int:
    sqs: SQSClient = target.client("sqs")
    queue = describe_dead_letter_queue(
        sqs, resolve_dead_letter_queue(sqs, args.queue, args.stack_prefix)
    )
    # With --json, progress goes to stderr so that stdout stays one JSON document.
    say = functools.partial(_print, error=args.json)
    sources = ", ".join(queue.source_names) or "its source queue"
    say(f"==> redriving {queue.name} (~{queue.messages} message(s)) to {sources}")
    result = redrive(sqs, queue, max_messages=args.max, progress=say)
    left = describe_dead_letter_queue(sqs, queue.url).messages
    if args.json:
        _print(json.dumps(redrive_document(queue, result, left), sort_keys=True))
    else:
        _print(
            f"==> moved {result.moved} message(s) ({result.method}); ~{left} left in {queue.name}"
        )
    return EXIT_OK


_ACTIONS: dict[str, Callable[[Target, argparse.Namespace], int]] = {
    "list": _list,
    "show": _show,
    "redrive": _redrive,
}


def run(args: argparse.Namespace) -> int:
    """Run ``dlq``; returns the exit code."""
    chosen = select_target(args, ProjectPaths.discover())
    if isinstance(chosen, str):
        _print(f"error: {chosen}", error=True)
        return EXIT_FAILURE
    target, _ = chosen
    try:
        return _ACTIONS[args.dlq_action](target, args)
    except (QueueNotFoundError, RedriveError) as error:
        _print(f"error: {error}", error=True)
    except (ClientError, BotoCoreError) as error:
        _print(f"error: {target.label}: {error}", error=True)
    return EXIT_FAILURE
