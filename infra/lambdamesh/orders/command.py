"""``lambdamesh orders rebuild``: rebuild the orders' read model from their events.

The orders service keeps nothing but events; what its read routes answer is a projection of
them, kept by a function on the event store's stream. This command invokes the service's own
``rebuild_projection`` function (found through the orders stack's outputs), which rebuilds every
order from its stream and compares it with the live projection: it reports the orders the
projection lacks, holds at an older version, holds with other content, or holds without any
event telling of them. With ``--apply`` the rebuilt orders are written over the live ones.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from lambdamesh.arguments import add_target
from lambdamesh.command import EXIT_FAILURE, EXIT_OK, err, say
from lambdamesh.deploy.command import select_target
from lambdamesh.deploy.stacks import StackError, existing_stack_outputs
from lambdamesh.emulator.paths import ProjectPaths

NAME = "orders"
DESCRIPTION = """\
rebuild: read every order's event stream, rebuild the order, and compare it with the read
model GET /orders/{id} and GET /users/{id}/orders answer from. Prints how many orders the
events tell of and which ones the read model lacks (missing), holds at an older version
(stale), holds with other content (different) or holds with no events behind them (extra).
Exits 1 when anything differs, unless --apply wrote the rebuilt orders over the live ones.

examples:
  lambdamesh orders rebuild
  lambdamesh orders rebuild --apply
  lambdamesh orders rebuild --json | jq '.missing'"""

REBUILD_OUTPUT = "RebuildProjectionFunctionName"
"""The orders stack's output naming the function that rebuilds the read model."""
DIFFERENCES = ("missing", "stale", "different", "extra")


def configure(parser: argparse.ArgumentParser) -> None:
    """Add ``orders``' actions and their arguments."""
    actions = parser.add_subparsers(dest="orders_action", metavar="<action>", required=True)
    rebuild = actions.add_parser(
        "rebuild",
        help="rebuild the read model from the events; report the differences",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rebuild.add_argument(
        "--apply", action="store_true", help="write the rebuilt orders over the live read model"
    )
    add_target(
        rebuild, prefix_help="the prefix deploy used: stack <prefix>-orders (default: lambdamesh)"
    )
    rebuild.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """Run ``orders rebuild``; the exit code (1 when the read model differs)."""
    chosen = select_target(args, ProjectPaths.discover())
    if isinstance(chosen, str):
        err(f"error: {chosen}")
        return EXIT_FAILURE
    target, _ = chosen
    try:
        outputs = existing_stack_outputs(
            target.client("cloudformation"), f"{args.stack_prefix}-orders"
        )
        function = outputs.get(REBUILD_OUTPUT)
        if function is None:
            err(f"error: the orders stack has no {REBUILD_OUTPUT} output: deploy again")
            return EXIT_FAILURE
        if not args.json:
            say(f"==> rebuilding the orders' read model from their events ({target.label})")
        report = invoke(target.client("lambda"), function, apply=args.apply)
    except StackError as error:
        err(f"error: {error}")
        return EXIT_FAILURE
    except (ClientError, BotoCoreError, RebuildFailedError) as error:
        err(f"error: {target.label}: {error}")
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for line in describe(report):
            say(line)
    return EXIT_OK if report.get("matches") or report.get("applied") else EXIT_FAILURE


class RebuildFailedError(RuntimeError):
    """The rebuild function failed (its error, as Lambda reported it)."""


def invoke(lambda_client: Any, function: str, *, apply: bool) -> dict[str, Any]:
    """Invoke the rebuild function; its report.

    Raises
    ------
    RebuildFailedError
        When the function failed.
    """
    answer = lambda_client.invoke(
        FunctionName=function, Payload=json.dumps({"apply": apply}).encode()
    )
    payload = json.loads(answer["Payload"].read() or b"null")
    if answer.get("FunctionError"):
        message = payload.get("errorMessage") if isinstance(payload, dict) else payload
        raise RebuildFailedError(f"{function} failed: {message}")
    if not isinstance(payload, dict):
        raise RebuildFailedError(f"{function} answered {payload!r}, not a report")
    return payload


def describe(report: dict[str, Any]) -> list[str]:
    """The report in lines for people.

    >>> describe({"streams": 3, "orders": 2, "missing": ["o-1"], "stale": [], "different": [],
    ...           "extra": [], "applied": False, "matches": False})
    ['3 stream(s), 2 order(s) told by their events', 'missing (1): o-1', \
'the read model differs from the events: run again with --apply to rebuild it']
    """
    lines = [f"{report['streams']} stream(s), {report['orders']} order(s) told by their events"]
    for name in DIFFERENCES:
        ids = report.get(name) or []
        if ids:
            shown = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
            lines.append(f"{name} ({len(ids)}): {shown}")
    if report.get("matches"):
        lines.append("the read model matches the events")
    elif report.get("applied"):
        lines.append("rebuilt: the read model now matches the events")
    else:
        lines.append("the read model differs from the events: run again with --apply to rebuild it")
    return lines
