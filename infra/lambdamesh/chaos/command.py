"""``lambdamesh chaos``: place orders while faults are on, then check every invariant."""

from __future__ import annotations

import argparse
import dataclasses
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

from .invariants import format_table
from .plan import ChaosPlan
from .runner import ChaosReport, run_chaos

NAME = "chaos"
DESCRIPTION = (
    "Start the embedded LocalStack (or use --endpoint / $LAMBDAMESH_ENDPOINT), deploy every\n"
    "service, then place orders with several clients while faults are switched on through the\n"
    "functions' configuration: card declines, consumer processes killed mid-batch, inventory\n"
    "slower than its timeout, a users outage answering 503, duplicate events and poison events.\n"
    "Then the faults go off, every dead-letter queue is redriven, and the invariants are checked\n"
    "and printed as a table: every order terminal, none charged twice, cancelled charges\n"
    "refunded, stock conserved and never negative, poison in a DLQ with its reason, no mail\n"
    "twice, nothing in flight. Exits 1 when an invariant does not hold.\n\n"
    "examples:\n"
    "  lambdamesh chaos                      # 1 000 orders (make chaos)\n"
    "  lambdamesh chaos --orders 100 --clients 4\n"
    "  lambdamesh chaos --small              # the run inside make test\n"
    "  LAMBDAMESH_ENDPOINT=http://127.0.0.1:4566 lambdamesh chaos   # LocalStack in Docker"
)

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_FAILURE = 2


def configure(parser: argparse.ArgumentParser) -> None:
    """The run's size and the emulator selection."""
    default = ChaosPlan()
    parser.add_argument(
        "--orders", type=positive, help=f"orders to place (default: {default.orders})"
    )
    parser.add_argument(
        "--clients",
        type=positive,
        help=f"clients placing them at once (default: {default.clients})",
    )
    parser.add_argument(
        "--small",
        action="store_true",
        help="the short run of 'make test': few orders, every fault more often",
    )
    parser.add_argument("--seed", type=int, help="seed of the baskets (default: random)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_port(parser)
    add_endpoint(parser)


def plan_from(args: argparse.Namespace) -> ChaosPlan:
    """The plan the arguments ask for.

    >>> plan_from(argparse.Namespace(small=False, orders=50, clients=None)).orders
    50
    >>> plan_from(argparse.Namespace(small=True, orders=None, clients=2)).clients
    2
    """
    plan = ChaosPlan.small() if args.small else ChaosPlan()
    changes = {name: getattr(args, name) for name in ("orders", "clients")}
    return dataclasses.replace(plan, **{k: v for k, v in changes.items() if v is not None})


def report_lines(chaos: ChaosReport) -> list[str]:
    """The run's figures and the invariants' table."""
    placement = chaos.placement
    faults = ", ".join(f"{name} {n}" for name, n in sorted(chaos.faults.items())) or "none logged"
    seconds = chaos.timings.get("total", 0.0)
    return [
        "",
        f"run {chaos.run_id}: {chaos.plan.orders} orders, {chaos.plan.clients} clients, "
        f"{seconds:.0f} s",
        f"  faults injected (from the functions' logs): {faults}",
        f"  503 answers retried by the clients: {placement.retried_503}",
        f"  poison events published: {chaos.poison}; dead letters redriven: {chaos.redriven}",
        *(
            f"  {seconds:6.0f} s  {step}"
            for step, seconds in chaos.timings.items()
            if step != "total"
        ),
        "",
        *format_table(chaos.checks),
        "",
        "all invariants hold" if chaos.holds else "SOME INVARIANTS DO NOT HOLD",
    ]


def report_document(chaos: ChaosReport) -> dict[str, object]:
    """The run as JSON data."""
    return {
        "run_id": chaos.run_id,
        "plan": dataclasses.asdict(chaos.plan),
        "holds": chaos.holds,
        "checks": [dataclasses.asdict(check) for check in chaos.checks],
        "faults": dict(chaos.faults),
        "orders_placed": len(chaos.placement.placed),
        "orders_refused": len(chaos.placement.refused),
        "retried_503": chaos.placement.retried_503,
        "poison": chaos.poison,
        "redriven": chaos.redriven,
        "timings_s": {name: round(value, 1) for name, value in chaos.timings.items()},
    }


def run(args: argparse.Namespace) -> int:
    """Run ``chaos``; exit 0 when every invariant holds, 1 when one does not, 2 on an error."""
    paths = ProjectPaths.discover()
    plan = plan_from(args)
    # With --json, progress goes to stderr so that stdout stays one JSON document.
    say = functools.partial(print, file=sys.stderr if args.json else sys.stdout, flush=True)
    try:
        target, state_dir = start_target(args, paths, say)
        say(f"==> deploying every service to {target.label}")
        report = deploy_all(target, deploy_command.build_options(paths, state_dir), say)
        chaos = run_chaos(target, report, plan, say=say, seed=args.seed)
    except (DeployError, EmulatorError, urllib3.exceptions.HTTPError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(report_document(chaos), sort_keys=True))
    else:
        for line in report_lines(chaos):
            print(line)
    return EXIT_OK if chaos.holds else EXIT_BROKEN
