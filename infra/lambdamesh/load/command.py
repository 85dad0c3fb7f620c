"""``lambdamesh load``: orders from many clients at once, cold then warm, measured."""

from __future__ import annotations

import argparse
import functools
import json
import sys

import urllib3

from lambdamesh.arguments import add_endpoint, add_port, positive
from lambdamesh.demo import start_target
from lambdamesh.deploy import DeployError, deploy_all
from lambdamesh.deploy import command as deploy_command
from lambdamesh.emulator.paths import ProjectPaths
from lambdamesh.emulator.process import EmulatorError

from .report import report_document, report_lines
from .runner import LoadPlan, run_load

NAME = "load"
DESCRIPTION = (
    "Start the embedded LocalStack (or use --endpoint / $LAMBDAMESH_ENDPOINT), deploy every\n"
    "service, restock the shelves, then make every function cold (a change of its\n"
    "configuration, as a deploy makes) and let the clients place their orders all at once: the\n"
    "cold phase. The same again at once is the warm phase. Each order is one POST /orders, never\n"
    "retried. For each phase: orders accepted, throughput (orders accepted per second),\n"
    "POST /orders p50/p90/p99/max, errors by status (503, other 5xx, timeouts) and the time from\n"
    "the first POST until every order is confirmed or cancelled. Exits 1 when an order was\n"
    "refused or never decided.\n\n"
    "examples:\n"
    "  lambdamesh load                           # 16 clients, 10 orders each (make load)\n"
    "  lambdamesh load --clients 4 --orders-per-client 5 --json\n"
    "  LAMBDAMESH_ENDPOINT=http://127.0.0.1:4566 lambdamesh load   # LocalStack in Docker"
)

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_FAILURE = 2


def configure(parser: argparse.ArgumentParser) -> None:
    """The run's size, the output and the emulator selection."""
    default = LoadPlan()
    parser.add_argument(
        "--clients",
        type=positive,
        default=default.clients,
        help=f"clients placing orders at once (default: {default.clients})",
    )
    parser.add_argument(
        "--orders-per-client",
        type=positive,
        default=default.orders_per_client,
        help=f"orders each client places per phase (default: {default.orders_per_client})",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON document")
    add_port(parser)
    add_endpoint(parser)


def plan_from(args: argparse.Namespace) -> LoadPlan:
    """The plan the arguments ask for.

    >>> plan_from(argparse.Namespace(clients=4, orders_per_client=5)).orders_per_phase
    20
    """
    return LoadPlan(clients=args.clients, orders_per_client=args.orders_per_client)


def run(args: argparse.Namespace) -> int:
    """Run ``load``; exit 0 when every order was accepted and decided, 1 when not, 2 on an error."""
    paths = ProjectPaths.discover()
    # With --json, progress goes to stderr so that stdout stays one JSON document.
    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout, flush=True)
    try:
        target, state_dir = start_target(args, paths, say)
        say(f"==> deploying every service to {target.label}")
        report = deploy_all(target, deploy_command.build_options(paths, state_dir), say)
        load = run_load(target, report, plan_from(args), say=say)
    except (DeployError, EmulatorError, urllib3.exceptions.HTTPError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(report_document(load), sort_keys=True))
    else:
        for line in report_lines(load):
            print(line)
    return EXIT_OK if load.ok else EXIT_BROKEN
